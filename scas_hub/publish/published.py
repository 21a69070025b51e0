"""A published scas-hub dataset as a source: its `candidates` config back to scored windows.

Used to re-select without scoring (`scas-hub select`) and to read the previous round's selection.
The dataset is an output folder or a Hub dataset repo at any revision; both hold the
`candidates` config (every scored candidate, with all proxy components) and `selection_stats.json`.

Rows set aside before scoring are not in the `candidates` config, and neither are questions left
with no scored candidate. Their counts are carried forward from `selection_stats.json`, so the
re-selected dataset's statistics still account for every row and question of the corpus.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..compare import Pick
from ..constants import CANDIDATES_CONFIG, STATS_FILENAME
from ..errors import CorpusFormatError, SourceError
from ..hub_access import describe, hub_error_types, is_local_path, missing_path_message, what_to_do
from ..records import SCORING_SKIP_REASONS
from ..run_record import RunRecord, ScoringRun, SourceFacts, StudentFacts, unknown_student
from ..schema import COMPONENTS, WINDOW_ROWS, window_schema
from ..stats import PipelineStats
from .folder import load_hub_config, load_stats

if TYPE_CHECKING:
    import pyarrow as pa

REQUIRED_COLUMNS = (
    "question_id",
    "teacher",
    "messages",
    "answer_mean_nll",
    "question_mean_nll",
    "sim_aa",
    "sim_aq",
    "n_answer_tokens",
    "n_question_tokens",
)
NO_VALID_CANDIDATE = "no_valid_candidate"
BATCH_ROWS = 1024


@dataclass
class PublishedDataset:
    """The `candidates` rows and `selection_stats.json` of one version of a scas-hub dataset.

    Rows are read in batches (`batches`), never all at once as Python objects: a question's rows
    are contiguous in the config, so questions stream one by one.
    """

    location: str
    """The folder path or Hub repo id, as given."""
    repo_id: str | None
    revision: str | None
    """Commit SHA on the Hub; None for a local folder."""
    batches: Callable[[list[str] | None], Iterator[Any]]
    """`batches(columns)` -> Arrow record batches (or tables) of the config, in order."""
    n_rows: int
    record: RunRecord | None = None
    """`selection_stats.json`, None when the dataset has none."""

    @property
    def origin(self) -> dict[str, Any]:
        """Where the scores came from, as recorded in the new dataset."""
        scoring_run = self.scoring_run()
        return {
            "location": self.location,
            "repo_id": self.repo_id,
            "revision": self.revision,
            "stats_carried_forward": self.record is not None,
            "scoring_run": scoring_run.to_dict() if scoring_run is not None else None,
        }

    def scoring_run(self) -> ScoringRun | None:
        """Facts of the run that computed these scores (for a re-selection's card): the student as
        scored, when, on what, how many tokens. A re-selection of a re-selection passes on the
        original scoring run. None without `selection_stats.json`."""
        record = self.record
        if record is None:
            return None
        if record.scores_from is not None and record.scores_from.scoring_run:
            return record.scores_from.scoring_run
        return ScoringRun(
            created=record.run.created,
            student=record.student.repo_id,
            student_revision=record.student.revision,
            weights=record.student.weights,
            dtype=record.student.dtype,
            hardware=record.run.hardware,
            tokens_scored=record.tokens_scored,
            scoring_seconds=record.scoring_seconds,
            version=record.version,
        )

    def student(self) -> StudentFacts:
        """The student that scored these candidates, as recorded (unknown without a record)."""
        return self.record.student if self.record is not None else unknown_student()

    def source(self) -> SourceFacts:
        """The corpus the candidates came from, as recorded (named by this dataset without a record)."""
        if self.record is not None:
            return self.record.source
        return SourceFacts.from_dict({"name": self.location, "repo_id": None, "revision": None, "subsets": []})

    def windows(self, rows: int = WINDOW_ROWS) -> Iterator[Any]:
        """The config as window tables of whole questions (`score.scored_table.WINDOW_COLUMNS`,
        every row scored), about `rows` rows each. A question's rows are contiguous in the config;
        a question id seen again later is an error."""
        import pyarrow as pa

        seen: set[str] = set()
        pending: list = []
        n_pending = 0
        for batch in self.batches(None):
            part = _window_rows(
                pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch, self.location
            )
            ids = part.column("question_id").to_pylist()
            starts = [i for i in range(len(ids)) if i == 0 or ids[i] != ids[i - 1]]
            previous = pending[-1].column("question_id")[-1].as_py() if pending else None
            for i in starts:
                if ids[i] in seen and not (i == 0 and ids[i] == previous):
                    raise CorpusFormatError(
                        f"{self.location}: the rows of question {ids[i]!r} are not "
                        "together in the candidates config; was it written by scas-hub?"
                    )
                seen.add(ids[i])
            pending.append(part)
            n_pending += part.num_rows
            if n_pending >= rows and starts[-1] > 0:  # cut before the last question: it may go on
                whole = pa.concat_tables(pending)
                cut = n_pending - (part.num_rows - starts[-1])
                yield whole.slice(0, cut)
                pending, n_pending = [whole.slice(cut)], n_pending - cut
        if n_pending:
            yield pa.concat_tables(pending)

    def selection(self) -> dict[str, Pick]:
        """The selection this version published (`selected` rows), by question id."""
        out = {}
        for batch in self.batches(["question_id", "teacher", "messages", "selected"]):
            for row in batch.to_pylist():
                if row.get("selected"):
                    out[row["question_id"]] = Pick.of(
                        row["teacher"], _split_messages(row["messages"], self.location)[2]
                    )
        return out

    def verified_answers(self) -> Counter:
        """Verified answers per teacher, as `curate` counted them: scored rows plus rows that only
        scoring set aside (`too_long`, ...), which the candidates config does not hold."""
        counts: Counter = Counter()
        for batch in self.batches(["teacher"]):
            counts.update(batch.column(0).to_pylist())
        for teacher, reasons in (self.record.skipped_by_teacher if self.record is not None else {}).items():
            counts[teacher] += sum(n for reason, n in reasons.items() if reason in SCORING_SKIP_REASONS)
        return counts

    def carried_stats(self) -> PipelineStats:
        """A `PipelineStats` before selection: scored rows from the config; skipped rows and
        questions without a scored candidate carried forward from `selection_stats.json`."""
        record = self.record if self.record is not None else RunRecord()
        stats = PipelineStats(rows_scored=self.n_rows)
        stats.skipped.update(record.skipped)
        for teacher, reasons in record.skipped_by_teacher.items():
            stats.skipped_by_teacher[teacher] = Counter(reasons)
        stats.rows_in = stats.rows_scored + sum(stats.skipped.values())
        no_valid = record.questions_dropped.get(NO_VALID_CANDIDATE, 0)
        stats.questions_in += no_valid
        if no_valid:
            stats.questions_dropped[NO_VALID_CANDIDATE] += no_valid
        # the scoring figures describe the run that made these scores
        stats.tokens_scored = int(record.tokens_scored or 0)
        stats.scoring_seconds = float(record.scoring_seconds or 0.0)
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


def _window_rows(batch: pa.RecordBatch | pa.Table, location: str) -> pa.Table:
    """Config rows as window rows: the texts split out of `messages`, every row scored."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = batch.num_rows
    messages = batch.column("messages").combine_chunks()
    turns = pc.list_flatten(messages)
    parent = pc.list_parent_indices(messages).to_numpy(zero_copy_only=False)
    roles, contents = pc.struct_field(turns, "role"), pc.struct_field(turns, "content")
    texts = {}
    for role, name in (("system", "system"), ("user", "instruction"), ("assistant", "answer")):
        at = np.flatnonzero(pc.fill_null(pc.equal(roles, role), False).to_numpy(zero_copy_only=False))
        position = np.full(n, -1, np.int64)
        position[parent[at]] = at
        if role != "system" and (position < 0).any():
            raise CorpusFormatError(f"{location}: a candidate's messages lack a user or assistant turn")
        texts[name] = contents.take(pa.array(position, mask=position < 0))
    columns = {
        "question_id": batch.column("question_id"),
        "teacher": batch.column("teacher"),
        "source_dataset": _column_or_null(batch, "source_dataset", n),
        **texts,
        "reference_answer": _column_or_null(batch, "reference_answer", n),
        # datasets written before samples were kept have no `sample` column: one answer per teacher
        "sample": pc.fill_null(batch.column("sample"), 0)
        if "sample" in batch.column_names
        else pa.array(np.zeros(n, np.int64)),
        "scored": pa.array(np.ones(n, bool)),
    }
    columns.update({name: batch.column(name) for name in COMPONENTS})
    return pa.table(columns).cast(window_schema())


def _column_or_null(batch: pa.RecordBatch | pa.Table, name: str, n: int) -> pa.Array | pa.ChunkedArray:
    import pyarrow as pa

    return batch.column(name) if name in batch.column_names else pa.nulls(n, pa.string())


def _open_folder(folder: Path) -> PublishedDataset:
    import pyarrow.parquet as pq

    files = sorted((folder / "candidates").glob("*.parquet"))
    if not files:
        raise SourceError(f"{folder} has no candidates/*.parquet: pass an output folder written by `scas-hub curate`")
    _check_columns(pq.read_schema(files[0]).names, str(folder))

    def batches(columns: list[str] | None) -> Iterator[Any]:
        for f in files:
            yield from pq.ParquetFile(f).iter_batches(batch_size=BATCH_ROWS, columns=columns)

    n_rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    stats_path = folder / STATS_FILENAME
    record = RunRecord.from_dict(load_stats(stats_path, SourceError)) if stats_path.exists() else None
    return PublishedDataset(str(folder), None, None, batches, n_rows, record)


def _open_hub(repo_id: str, revision: str | None) -> PublishedDataset:
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        sha = HfApi().dataset_info(repo_id, revision=revision).sha
        assert sha is not None, "the Hub names the commit a revision resolves to"
    except RepositoryNotFoundError as err:
        raise SourceError(
            f"dataset {repo_id!r} not found on the Hub, and there is no local folder of that name "
            "(if the dataset is private, log in with `hf auth login`)"
        ) from err
    except RevisionNotFoundError as err:
        raise SourceError(
            f"dataset {repo_id!r} has no revision {revision!r}; pass a tag (v1, v2, ...), a branch or a commit SHA"
        ) from err
    except hub_error_types() as err:
        raise SourceError(
            f"cannot reach dataset {repo_id!r} on the Hub ({describe(err)}), and there is no local "
            f"folder of that name; {what_to_do()}"
        ) from err
    unreachable = f"cannot download dataset {repo_id}@{sha[:10]} from the Hub"
    download_errors: tuple[type[BaseException], ...] = (
        OSError,
        *hub_error_types(),
    )  # datasets reports some download failures as OSError
    try:
        # a memory-mapped Arrow dataset in the datasets cache: read below a batch at a time
        rows = load_hub_config(repo_id, CANDIDATES_CONFIG, sha, SourceError)
    except download_errors as err:
        raise SourceError(f"{unreachable} ({describe(err)}); {what_to_do()}") from err
    _check_columns(rows.column_names, f"{repo_id}@{sha}")

    def batches(columns: list[str] | None) -> Iterator[Any]:
        view = rows.select_columns(columns) if columns is not None else rows
        yield from view.with_format("arrow").iter(batch_size=BATCH_ROWS)

    try:
        record_path = hf_hub_download(repo_id, STATS_FILENAME, repo_type="dataset", revision=sha)
        record: RunRecord | None = RunRecord.from_dict(
            load_stats(Path(record_path), SourceError, f"{STATS_FILENAME} of {repo_id}@{sha[:10]}")
        )
    except EntryNotFoundError:
        record = None
    except hub_error_types() as err:
        raise SourceError(f"{unreachable} ({describe(err)}); {what_to_do()}") from err
    return PublishedDataset(repo_id, repo_id, sha, batches, rows.num_rows, record)


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
        raise SourceError(
            missing_path_message(source) + "; pass an output folder of `scas-hub curate` or a Hub dataset id (org/name)"
        )
    return _open_hub(str(source), revision)
