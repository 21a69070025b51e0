"""Push an output folder to a Hub dataset repo as a new version: one commit, tagged `vN`.

The order makes every step safe to retry and a failed push safe to run again:

1. check the repo id and the tag name (before anything is asked of the Hub); read the repo's refs
   (tags and the head of `main`);
2. pick the version (next `vN`, or the one asked for) and refuse an existing tag; only then create
   the repo if it does not exist;
3. read the version history from the head's `selection_stats.json`, add this version, and
   re-render `selection_stats.json` and README.md in the folder; when the repo id was derived from
   an org (`same_strategy`), refuse a repo whose latest version holds another strategy;
4. upload the folder's own files (the files at tool paths, `output.present_tool_files`: the card,
   `selection_stats.json`, parquet shards, figures; nothing else that sits in the folder) in one
   commit on top of the head read in 1 (`parent_commit`: a concurrent push fails instead of being
   overwritten); data and figure files missing from the folder are deleted, so the commit holds
   exactly the folder's data (other files, e.g. a LICENSE added on the Hub, are kept). If the
   commit landed but its answer was lost, the retry finds nothing to change and returns the head,
   i.e. that commit;
5. tag that commit. Only now does the version exist: a push that failed earlier leaves no tag.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..constants import STATS_FILENAME
from ..errors import PublishError
from ..hub_access import (
    RetryPolicy,
    describe,
    http_library,
    is_hub_error,
    missing_path_message,
    what_to_do,
    with_retries,
)
from ..run_record import Release, RunRecord
from .card import write_card
from .figures import FIGURES_DIR
from .folder import CONFIG_DIRS, read_stats, write_stats
from .lock import locks_output
from .output import present_tool_files

if TYPE_CHECKING:
    from huggingface_hub import HfApi

logger = logging.getLogger("scas_hub.publish")
VERSION_TAG = re.compile(r"v([0-9]+)")
TAG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
"""Tag names this tool creates or accepts (whole string: `fullmatch`, so no trailing newline)."""
REPO_TYPE = "dataset"
# remote files under these folders that are not in the local folder are deleted in the same commit
# (an old version's extra shard would otherwise be loaded with the new one); other files are kept
MANAGED = tuple(f"{d}/*" for d in (*CONFIG_DIRS.values(), FIGURES_DIR))


@dataclass(frozen=True)
class PushResult:
    """What a push made: the version tag and the commit it points to."""

    repo_id: str
    version: str
    commit: str


def next_version(existing_tags: list[str]) -> str:
    """`v1` for a new repo, else one past the highest `vN` tag."""
    numbers = [int(m.group(1)) for t in existing_tags if (m := VERSION_TAG.fullmatch(t))]
    return f"v{max(numbers, default=0) + 1}"


def check_tag_name(version: str) -> str:
    """Raise `PublishError` for a malformed tag name (checked before any work).

    A name is 1-100 of letters, digits, `.`, `_`, `-`, starting with a letter or digit, without `..`
    and not ending in `.` or `.lock` (git's rules for a ref name).
    """
    if (
        not (isinstance(version, str) and TAG_NAME.fullmatch(version))
        or ".." in version
        or version.endswith((".", ".lock"))
    ):
        raise PublishError(
            f"--version {version!r} is not a valid tag name; use e.g. v3 (letters, digits, . _ -, "
            "starting with a letter or digit). Nothing was done"
        )
    return version


def check_repo_id(repo_id: str, *, what: str = "--push") -> str:
    """Raise `PublishError` unless `repo_id` is a valid Hub repo id `org/name` (huggingface_hub's
    own rules: letters, digits, `-`, `_`, `.`; no `--` or `..`; at most 96 characters).
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise PublishError(f"{what} {repo_id!r} is not a Hub repo id: pass org/name. Nothing was done")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        reason = " ".join(str(err).split())
        raise PublishError(f"{what} {repo_id!r} is not a valid Hub repo id ({reason}). Nothing was done") from None
    return repo_id


def check_push_settings(push: str | None, repo_id: str | None, version: str | None) -> None:
    """Check `--push` (as given, and the repo id derived from it) and `--version` before any work.

    Raises:
        PublishError: a malformed tag name or repo id; nothing was done.
    """
    if version is not None:
        check_tag_name(version)
    if repo_id is not None:
        check_repo_id(repo_id, what="--push" if push == repo_id else f"the repo id derived from --push {push!r},")


def check_version(version: str, existing_tags: list[str], repo_id: str) -> str:
    """Raise `PublishError` for a malformed tag name or one that exists already (tags never move)."""
    check_tag_name(version)
    if version in existing_tags:
        raise PublishError(
            f"{repo_id} already has a tag {version!r}; published versions are never moved or reused. "
            f"Leave --version out to publish as {next_version(existing_tags)}, or pick another name."
        )
    return version


def version_entry(record: RunRecord, version: str, date: str) -> dict[str, Any]:
    """One row of the version history, from a folder's record."""
    student, source = record.student, record.source
    return {
        "version": version,
        "date": date,
        "student": student.repo_id,
        "student_revision": student.revision,
        "source": source.repo_id or source.name,
        "source_revision": source.revision,
        "strategy": record.selection.strategy,
        "rows": record.questions_selected,
        "candidates": record.rows_scored,
    }


def remote_history(api: HfApi, repo_id: str, revision: str) -> list[dict[str, Any]]:
    """The version history stored in the repo's `selection_stats.json` at `revision` ([] if none)."""
    from huggingface_hub.errors import EntryNotFoundError

    try:
        path = api.hf_hub_download(repo_id, STATS_FILENAME, repo_type=REPO_TYPE, revision=revision)
    except EntryNotFoundError:
        return []
    try:
        versions = json.loads(Path(path).read_text(encoding="utf-8")).get("versions", [])
    except (ValueError, AttributeError):
        logger.warning("%s in %s is not readable; starting a new version history", STATS_FILENAME, repo_id)
        return []
    return [v for v in versions if isinstance(v, dict) and "version" in v]


def _landed_commit(api: HfApi, repo_id: str, head: str | None, entry: dict[str, Any], retry: RetryPolicy | None) -> str:
    """The commit of an upload whose answer named none: main's new head, if its version history
    ends with this push's entry (version, date, numbers).

    Raises:
        PublishError: main does not hold this push (nothing was tagged; a rerun pushes again).
    """
    refs = with_retries(api.list_repo_refs, repo_id, repo_type=REPO_TYPE, what="list refs", policy=retry)
    now = next((b.target_commit for b in refs.branches if b.name == "main"), None)
    if (
        now
        and now != head
        and with_retries(remote_history, api, repo_id, now, what="read version history", policy=retry)[-1:] == [entry]
    ):
        logger.warning("the Hub's answer to the upload named no commit; main's new head %s holds this push", now)
        return now
    raise PublishError(
        f"the Hub answered the upload to {repo_id} without naming a commit, and main does not hold "
        "this push; nothing was tagged: run the same command again"
    )


def _tag(api: HfApi, repo_id: str, version: str, commit: str) -> None:
    """Create the tag; a 409 after a lost answer is fine if the tag already points at `commit`."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        api.create_tag(repo_id, repo_type=REPO_TYPE, tag=version, revision=commit)
    except HfHubHTTPError as err:
        if err.response is None or err.response.status_code != 409:
            raise
        tags = {t.name: t.target_commit for t in api.list_repo_refs(repo_id, repo_type=REPO_TYPE).tags}
        if tags.get(version) != commit:
            raise PublishError(
                f"tag {version!r} was created in {repo_id} by someone else during this push; your data is on "
                f"main at commit {commit} but untagged. Run the push again to publish it as the next version."
            ) from None


def _redact(text: str, token: str | None) -> str:
    from huggingface_hub import get_token

    for secret in {t for t in (token, get_token()) if t}:
        text = text.replace(secret, "<token>")
    return text


def check_strategy(history: list[dict[str, Any]], record: RunRecord, repo_id: str, folder: Path) -> None:
    """Refuse to make a selection of another strategy the latest version of `repo_id`.

    Raises:
        PublishError: the repo's latest version holds another strategy than `record`'s.
    """
    if not history:
        return
    latest, strategy = history[-1], record.selection.strategy
    if latest.get("strategy", strategy) != strategy:
        raise PublishError(
            f"{repo_id}'s latest version ({latest['version']}) holds the {latest['strategy']!r} selection, this one is "
            f"{strategy!r}: pushed there, it would become what load_dataset({repo_id!r}) returns. Nothing was pushed; "
            f"the folder {folder} is written. Push it to a repo of its own (by default --push ORG names it "
            f"ORG/scas-<student>-<strategy>), or, if {repo_id} is meant to hold it, name the repo in full: "
            f"scas-hub push {folder} {repo_id}"
        )


@locks_output(lambda a: a["folder"], what="folder")
def push_folder(
    folder: str | Path,
    repo_id: str,
    *,
    version: str | None = None,
    private: bool = False,
    token: str | None = None,
    retry: RetryPolicy | None = None,
    same_strategy: bool = False,
) -> PushResult:
    """Publish `folder` (a `scas-hub curate` output) to the Hub dataset repo `repo_id` as a new version.

    Args:
        folder: the output folder; its README.md and `selection_stats.json` are re-rendered with the
            release and the version history before upload.
        repo_id: `org/name`; created (private if `private`) when it does not exist.
        version: the tag to create; default `v<N+1>` after the highest `vN` tag in the repo.
        token: Hub token; default the logged-in one (`HF_TOKEN` or `hf auth login`).
        retry: how transient Hub failures are retried (default from `SCAS_HUB_PUSH_*` env vars).
        same_strategy: refuse when the repo's latest version holds another selection strategy (set
            when the repo name was derived from an org, not given in full).

    Returns:
        `PushResult` with the version and the commit it tags.

    Raises:
        PublishError: not a scas-hub folder, the tag exists, another strategy's repo (`same_strategy`),
            or the Hub refused the push (nothing tagged).
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    check_repo_id(repo_id, what="the repo id")
    if version is not None:
        check_tag_name(version)
    folder = Path(folder)
    if not folder.is_dir():
        raise PublishError(missing_path_message(folder) + "; push an output folder of `scas-hub curate` or `select`")
    record = RunRecord.from_dict(read_stats(folder))
    push = _Push(HfApi(token=token), repo_id, retry)
    try:
        version, head = push.settle_version(version, private)
        versions = push.stamp_release(folder, record, version, head, same_strategy=same_strategy)
        commit = push.upload(folder, record, version, head, versions)
        push.tag(version, commit)
    except HfHubHTTPError as err:
        hint = (
            "someone else pushed to main meanwhile; nothing was tagged, run the push again"
            if err.response is not None and err.response.status_code == 412
            else "nothing was tagged; run the same command again to retry"
        )
        raise PublishError(
            _redact(f"pushing {folder} to {repo_id} failed while {push.step}: {describe(err)} ({hint})", token)
        ) from err
    except (http_library().TransportError, OSError, RuntimeError, ValueError) as err:  # network, LFS, metadata
        hint = (
            f"{what_to_do()}, then run the same command again"
            if is_hub_error(err)
            else "run the same command again to retry"
        )
        raise PublishError(
            _redact(
                f"pushing {folder} to {repo_id} failed while {push.step}: {describe(err)} (nothing was tagged; {hint})",
                token,
            )
        ) from err
    return PushResult(repo_id, version, commit)


@dataclass
class _Push:
    """The steps of one `push_folder`, each retried; `step` names the one running (for errors)."""

    api: HfApi
    repo_id: str
    retry: RetryPolicy | None
    step: str = "reading the repo's refs"

    def _refs(self) -> tuple[list[str], str | None]:
        refs = with_retries(
            self.api.list_repo_refs, self.repo_id, repo_type=REPO_TYPE, what="list refs", policy=self.retry
        )
        return [t.name for t in refs.tags], next((b.target_commit for b in refs.branches if b.name == "main"), None)

    def _is_private(self) -> bool:
        return bool(with_retries(self.api.dataset_info, self.repo_id, what="read repo info", policy=self.retry).private)

    def settle_version(self, version: str | None, private: bool) -> tuple[str, str | None]:
        """Step 1: the version to tag (checked against the repo's tags) and main's head; the repo is
        created (only once the version is known to be good) when it does not exist."""
        from huggingface_hub.errors import RepositoryNotFoundError

        self.step = "reading the repo's refs"
        tags: list[str] | None
        try:
            tags, head = self._refs()
        except RepositoryNotFoundError:
            tags, head = None, None
        version = check_version(version or next_version(tags or []), tags or [], self.repo_id)
        if tags is None:
            self.step = "creating the repo"
            with_retries(
                self.api.create_repo,
                self.repo_id,
                repo_type=REPO_TYPE,
                private=private,
                exist_ok=True,
                what=f"create {self.repo_id}",
                policy=self.retry,
            )
            self.step = "reading the repo's refs"
            tags, head = self._refs()
            check_version(version, tags, self.repo_id)
        if private and not self._is_private():
            raise PublishError(
                f"{self.repo_id} exists and is public, but a private push was asked for; nothing was "
                "pushed. Make the repo private in its settings on the Hub, or leave --private out."
            )
        return version, head

    def stamp_release(
        self, folder: Path, record: RunRecord, version: str, head: str | None, *, same_strategy: bool
    ) -> list[dict[str, Any]]:
        """Step 2: the folder's record and card re-rendered with this release and the version
        history (the repo's, with this version last); returns that history."""
        self.step = "reading the version history"
        history = (
            with_retries(remote_history, self.api, self.repo_id, head, what="read version history", policy=self.retry)
            if head
            else []
        )
        if same_strategy:
            check_strategy(history, record, self.repo_id, folder)
        date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        record.release = Release(repo_id=self.repo_id, version=version, date=date)
        versions = [v for v in history if v["version"] != version] + [version_entry(record, version, date)]
        record.versions = versions
        write_stats(folder, record.to_dict())
        write_card(folder)
        return versions

    def upload(
        self, folder: Path, record: RunRecord, version: str, head: str | None, versions: list[dict[str, Any]]
    ) -> str:
        """Step 3: one commit on main with the tool's files (parent: the head read in step 1)."""
        self.step = "uploading"
        logger.info("pushing %s to %s as %s", folder, self.repo_id, version)
        try:
            return with_retries(
                self.api.upload_folder,
                repo_id=self.repo_id,
                repo_type=REPO_TYPE,
                folder_path=str(folder),
                commit_message=f"scas-hub: publish {version}",
                commit_description=f"Student {record.student.repo_id}, strategy "
                f"{record.selection.strategy}, {record.questions_selected} rows.",
                parent_commit=head,
                allow_patterns=present_tool_files(folder),
                delete_patterns=list(MANAGED),
                what="upload",
                policy=self.retry,
            ).oid
        except KeyError:  # a 200 answer without the commit's id (`commitUrl`/`commitOid`): find the commit
            self.step = "finding the uploaded commit (the Hub's answer named none)"
            return _landed_commit(self.api, self.repo_id, head, versions[-1], self.retry)

    def tag(self, version: str, commit: str) -> None:
        """Step 4: the version tag on the uploaded commit."""
        self.step = f"tagging commit {commit}"
        with_retries(_tag, self.api, self.repo_id, version, commit, what=f"tag {version}", policy=self.retry)
