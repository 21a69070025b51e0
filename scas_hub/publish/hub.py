"""Push an output folder to a Hub dataset repo and tag the commit with a version."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import PublishError

VERSION_TAG = re.compile(r"^v(\d+)$")


def next_version(existing_tags: list[str]) -> str:
    """`v1` for a new repo, else one past the highest `vN` tag."""
    numbers = [int(m.group(1)) for t in existing_tags if (m := VERSION_TAG.match(t))]
    return f"v{max(numbers, default=0) + 1}"


def push_folder(folder: str | Path, repo_id: str, *, version: str | None = None, private: bool = False,
                token: str | None = None) -> tuple[str, str]:
    """Upload `folder` in one commit, then tag that commit. Returns `(version, commit_sha)`.

    Raises:
        PublishError: the tag exists already, or the Hub refused the upload.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        tags = [t.name for t in api.list_repo_refs(repo_id, repo_type="dataset").tags]
        version = version or next_version(tags)
        if version in tags:
            raise PublishError(f"{repo_id} already has tag {version!r}; tags are never moved. Pick another --version.")
        commit = api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=str(folder),
                                   commit_message=f"scas-hub: {version}")
        api.create_tag(repo_id, repo_type="dataset", tag=version, revision=commit.oid)
    except HfHubHTTPError as err:
        raise PublishError(f"pushing to {repo_id} failed: {err}") from err
    return version, commit.oid
