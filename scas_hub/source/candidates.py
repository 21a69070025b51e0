"""A published scas-hub dataset as a source: its `candidates` config back to scored `Candidate`s.

Used to re-select without scoring (`scas-hub select`) and to read the previous round's selection.
The dataset is an output folder or a Hub dataset repo at any revision; both hold the
`candidates` config (every scored candidate, with all proxy components) and `selection_stats.json`.

Rows set aside before scoring are not in the `candidates` config, and neither are questions left
with no scored candidate. Their counts are carried forward from `selection_stats.json`, so the
re-selected dataset's statistics still account for every row and question of the corpus.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..compare import Pick
from ..constants import CANDIDATES_CONFIG, STATS_FILENAME
from ..errors import CorpusFormatError, SourceError
from ..hub_access import describe, hub_error_types, is_local_path, missing_path_message, what_to_do
from ..records import SCORING_SKIP_REASONS, Candidate, Question
from ..score.proxy import ProxyComponents
from ..stats import PipelineStats

REQUIRED_COLUMNS = ("question_id", "teacher", "messages", "answer_mean_nll", "question_mean_nll", "sim_aa",
                    "sim_aq", "n_answer_tokens", "n_question_tokens")
NO_VALID_CANDIDATE = "no_valid_candidate"


@dataclass
class PublishedDataset:
    """The `candidates` rows and `selection_stats.json` of one version of a scas-hub dataset."""

    location: str
    """The folder path or Hub repo id, as given."""
    repo_id: str | None
    revision: str | None
    """Commit SHA on the Hub; None for a local folder."""
    rows: list[dict[str, Any]]
    record: dict[str, Any] | None = None
    """`selection_stats.json`, None when the dataset has none."""

    @property
    def origin(self) -> dict[str, Any]:
        """Where the scores came from, as recorded in the new dataset."""
        return {"location": self.location, "repo_id": self.repo_id, "revision": self.revision,
                "stats_carried_forward": self.record is not None, "scoring_run": self.scoring_run()}

    def scoring_run(self) -> dict[str, Any] | None:
        """Facts of the run that computed these scores (for a re-selection's card): the student as
        scored, when, on what, how many tokens. A re-selection of a re-selection passes on the
        original scoring run. None without `selection_stats.json`."""
        record = self.record
        if not record:
            return None
        earlier = (record.get("scores_from") or {}).get("scoring_run")
        if earlier:
            return earlier
        run, student = record.get("run") or {}, record.get("student") or {}
        return {"created": run.get("created"), "student": student.get("repo_id"),
                "student_revision": student.get("revision"), "weights": student.get("weights"),
                "dtype": student.get("dtype"), "hardware": run.get("hardware"),
                "tokens_scored": record.get("tokens_scored"), "scoring_seconds": record.get("scoring_seconds"),
                "version": (record.get("release") or {}).get("version")}

    def questions(self) -> list[Question]:
        """Fresh, scored, unselected `Candidate`s grouped per question (first-seen order)."""
        grouped: dict[str, Question] = {}
        for i, row in enumerate(self.rows):
            c = _candidate(row, i, self.location)
            grouped.setdefault(c.question_id, Question(c.question_id, [])).candidates.append(c)
        return list(grouped.values())

    def selection(self) -> dict[str, Pick]:
        """The selection this version published (`selected` rows), by question id."""
        return {row["question_id"]: Pick(row["teacher"], _split_messages(row["messages"], self.location)[2])
                for row in self.rows if row.get("selected")}

    def verified_answers(self) -> Counter:
        """Verified answers per teacher, as `curate` counted them: scored rows plus rows that only
        scoring set aside (`too_long`, ...), which the candidates config does not hold."""
        counts: Counter = Counter(row["teacher"] for row in self.rows)
        for teacher, reasons in ((self.record or {}).get("skipped_by_teacher") or {}).items():
            counts[teacher] += sum(n for reason, n in reasons.items() if reason in SCORING_SKIP_REASONS)
        return counts

    def carried_stats(self) -> PipelineStats:
        """A `PipelineStats` before selection: scored rows from the config; skipped rows and
        questions without a scored candidate carried forward from `selection_stats.json`."""
        record = self.record or {}
        stats = PipelineStats(rows_scored=len(self.rows))
        stats.skipped.update(record.get("skipped") or {})
        for teacher, reasons in (record.get("skipped_by_teacher") or {}).items():
            stats.skipped_by_teacher[teacher] = Counter(reasons)
        stats.rows_in = stats.rows_scored + sum(stats.skipped.values())
        no_valid = (record.get("questions_dropped") or {}).get(NO_VALID_CANDIDATE, 0)
        stats.questions_in += no_valid
        if no_valid:
            stats.questions_dropped[NO_VALID_CANDIDATE] += no_valid
        # the scoring figures describe the run that made these scores
        stats.tokens_scored = int(record.get("tokens_scored") or 0)
        stats.scoring_seconds = float(record.get("scoring_seconds") or 0.0)
        return stats


def _check_columns(columns: Iterable[str], location: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in set(columns)]
    if missing:
        raise CorpusFormatError(
            f"the candidates config of {location} lacks columns {', '.join(missing)}: "
            "pass an output folder or dataset written by `scas-hub curate`"
        )


def _split_messages(messages: list[dict[str, str]], location: str) -> tuple[str | None, str, str]:
    """`(system, user, assistant)` contents of a `[system, user, assistant]` conversation."""
    by_role = {m["role"]: m["content"] for m in messages}
    if "user" not in by_role or "assistant" not in by_role:
        raise CorpusFormatError(f"{location}: a candidate's messages lack a user or assistant turn")
    return by_role.get("system"), by_role["user"], by_role["assistant"]


def _candidate(row: dict[str, Any], index: int, location: str) -> Candidate:
    system, instruction, answer = _split_messages(row["messages"], location)
    c = Candidate(
        # datasets written before samples were kept have no `sample` column: one answer per teacher
        question_id=row["question_id"], teacher=row["teacher"], sample=row.get("sample") or 0,
        instruction=instruction, answer=answer,
        system=system, source_dataset=row.get("source_dataset"), reference_answer=row.get("reference_answer"),
        provenance={"candidates_row": index},
    )
    c.score = ProxyComponents(
        answer_mean_nll=row["answer_mean_nll"], question_mean_nll=row["question_mean_nll"],
        sim_aa=row["sim_aa"], sim_aq=row["sim_aq"],
        n_answer_tokens=row["n_answer_tokens"], n_question_tokens=row["n_question_tokens"],
    )
    return c


def _open_folder(folder: Path) -> PublishedDataset:
    import pyarrow.parquet as pq

    files = sorted((folder / "candidates").glob("*.parquet"))
    if not files:
        raise SourceError(f"{folder} has no candidates/*.parquet: pass an output folder written by `scas-hub curate`")
    table = pq.ParquetDataset([str(f) for f in files]).read()
    _check_columns(table.column_names, str(folder))
    stats_path = folder / STATS_FILENAME
    record = json.loads(stats_path.read_text(encoding="utf-8")) if stats_path.exists() else None
    return PublishedDataset(str(folder), None, None, table.to_pylist(), record)


def _open_hub(repo_id: str, revision: str | None) -> PublishedDataset:
    from datasets import load_dataset
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        sha = HfApi().dataset_info(repo_id, revision=revision).sha
    except RepositoryNotFoundError as err:
        raise SourceError(f"dataset {repo_id!r} not found on the Hub, and there is no local folder of that name "
                          "(if the dataset is private, log in with `hf auth login`)") from err
    except RevisionNotFoundError as err:
        raise SourceError(f"dataset {repo_id!r} has no revision {revision!r}; pass a tag (v1, v2, ...), "
                          "a branch or a commit SHA") from err
    except hub_error_types() as err:
        raise SourceError(f"cannot reach dataset {repo_id!r} on the Hub ({describe(err)}), and there is no local "
                          f"folder of that name; {what_to_do()}") from err
    unreachable = f"cannot download dataset {repo_id}@{sha[:10]} from the Hub"
    try:
        rows = load_dataset(repo_id, CANDIDATES_CONFIG, split="train", revision=sha)
    except ValueError as err:  # datasets raises ValueError for an unknown config name
        raise SourceError(f"{repo_id}@{sha[:10]} has no {CANDIDATES_CONFIG!r} config: "
                          "is it a dataset written by scas-hub?") from err
    except (OSError, *hub_error_types()) as err:  # datasets reports some download failures as OSError
        raise SourceError(f"{unreachable} ({describe(err)}); {what_to_do()}") from err
    _check_columns(rows.column_names, f"{repo_id}@{sha}")
    try:
        record_path = hf_hub_download(repo_id, STATS_FILENAME, repo_type="dataset", revision=sha)
        record = json.loads(Path(record_path).read_text(encoding="utf-8"))
    except EntryNotFoundError:
        record = None
    except hub_error_types() as err:
        raise SourceError(f"{unreachable} ({describe(err)}); {what_to_do()}") from err
    return PublishedDataset(repo_id, repo_id, sha, rows.to_list(), record)


def open_published(source: str | Path, revision: str | None = None) -> PublishedDataset:
    """Open a scas-hub dataset: an output folder, or a Hub dataset repo at `revision` (default: main).

    Raises:
        SourceError: not found, or not a scas-hub dataset (no `candidates` config).
        CorpusFormatError: the `candidates` config lacks the columns needed to rebuild scores.
    """
    local = Path(source).expanduser()
    if local.exists():
        if revision is not None:
            raise SourceError(f"{source} is a local folder: --revision applies to Hub datasets only")
        return _open_folder(local)
    if is_local_path(source):
        raise SourceError(missing_path_message(source) + "; pass an output folder of `scas-hub curate` "
                          "or a Hub dataset id (org/name)")
    return _open_hub(str(source), revision)
