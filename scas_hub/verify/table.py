"""The candidate table: every row of a corpus, normalised and verified, as memory-mapped Arrow.

Between the verify and the score stages the corpus lives as columns, one per `Candidate` field
(`skip_reason` included), sorted by question (natural order of ids, source order within a
question; rows that belong to no question come last). It is written once per corpus revision,
recipe and verification rule (`build.py`) into Arrow IPC shards under `table_cache_dir()`, and
every later run and every rank of a node memory-maps the same files: the pages are shared through
the page cache, and a process turns only the rows of the window it works on into `Candidate`s.

    <key>/candidates-00000.arrow ...   the rows (Arrow IPC files, record batches of BATCH_ROWS)
    <key>/table.json                    row and question counts, the stats of the verify stage
"""

from __future__ import annotations

import json
import mmap
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..records import Candidate, Question
from ..stats import PipelineStats

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pyarrow as pa

TABLE_VERSION = 4
"""Bump when the table's schema or the verify stage's rules change: old tables are then rebuilt."""
BATCH_ROWS = 1024
SHARD_ROWS = 65_536
META_FILE = "table.json"


def schema() -> pa.Schema:
    """The Arrow schema of a candidate table: the `Candidate` fields plus the question index."""
    import pyarrow as pa

    strings = [
        "question_id",
        "teacher",
        "instruction",
        "answer",
        "system",
        "source_dataset",
        "reference_answer",
        "reference_solution",
    ]
    return pa.schema(
        [
            *(pa.field(name, pa.string()) for name in strings),
            pa.field("verified", pa.bool_()),
            pa.field("provenance", pa.string()),
            pa.field("skip_reason", pa.string()),
            pa.field("sample", pa.int64()),
            pa.field("content_digest", pa.binary(16)),
            pa.field("chars", pa.int64()),
            pa.field("question_index", pa.int64()),
        ]
    )


def row_of(c: Candidate) -> dict[str, Any]:
    """A `Candidate` as a table row (without its question index)."""
    from ..schema import candidate_digest

    return {
        "question_id": c.question_id,
        "teacher": c.teacher,
        "instruction": c.instruction,
        "answer": c.answer,
        "system": c.system,
        "source_dataset": c.source_dataset,
        "reference_answer": c.reference_answer,
        "reference_solution": c.reference_solution,
        "verified": c.verified,
        "provenance": json.dumps(c.provenance) if c.provenance else None,
        "skip_reason": c.skip_reason,
        "sample": c.sample,
        "content_digest": candidate_digest(c),
        "chars": len(c.system_prompt) + len(c.instruction) + len(c.answer),
    }


def candidate_of(row: dict[str, Any]) -> Candidate:
    """A table row (`to_pylist` form) back to the `Candidate` record."""
    return Candidate(
        question_id=row["question_id"],
        teacher=row["teacher"],
        instruction=row["instruction"],
        answer=row["answer"],
        system=row["system"],
        source_dataset=row["source_dataset"],
        reference_answer=row["reference_answer"],
        reference_solution=row["reference_solution"],
        verified=row["verified"],
        provenance=json.loads(row["provenance"]) if row["provenance"] else {},
        skip_reason=row["skip_reason"],
        sample=row["sample"],
    )


class RowTaker:
    """`table.take(indices)` one record batch at a time. Arrow's `take` on a chunked string column
    first concatenates every chunk, a copy of the whole column per call, which made each window's
    take cost as much as the whole corpus (in time and in memory)."""

    def __init__(self, table: pa.Table):
        import numpy as np

        self.schema = table.schema
        self.batches = table.to_batches()
        self.offsets = np.cumsum([0, *(b.num_rows for b in self.batches)])

    def take(self, indices: npt.NDArray[np.int64]) -> pa.Table:
        """The rows at `indices` (positions in the table), in that order, as one-chunk Arrow table."""
        import numpy as np
        import pyarrow as pa

        indices = np.asarray(indices, np.int64)
        which = np.searchsorted(self.offsets, indices, side="right") - 1
        by_batch = np.argsort(which, kind="stable")
        bounds = np.flatnonzero(np.diff(which[by_batch])) + 1
        parts = [
            self.batches[which[group[0]]].take(pa.array(indices[group] - self.offsets[which[group[0]]]))
            for group in np.split(by_batch, bounds)
            if len(group)
        ]
        if not parts:
            return self.schema.empty_table()
        gathered = pa.Table.from_batches(parts, schema=self.schema).combine_chunks()
        back = np.empty(len(indices), np.int64)
        back[by_batch] = np.arange(len(indices))
        return gathered.take(pa.array(back, pa.int64()))


class MappedFiles:
    """Arrow IPC files memory-mapped read-only; `release()` drops the pages read so far from this
    process's resident memory (they stay in the page cache, shared with other processes)."""

    def __init__(self):
        self._maps: list[mmap.mmap] = []

    def read(self, path: str | Path) -> pa.Table:
        """The whole file as an Arrow table backed by the mapping (no copy)."""
        import pyarrow as pa

        with open(path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self._maps.append(mapped)
        return pa.ipc.open_file(pa.BufferReader(pa.py_buffer(mapped))).read_all()

    def release(self) -> None:
        for mapped in self._maps:
            if hasattr(mmap, "MADV_DONTNEED"):
                mapped.madvise(mmap.MADV_DONTNEED)


@dataclass
class TableStats:
    """What the verify stage counted, stored with the table so a reused table counts the same."""

    rows_in: int
    skipped: list[tuple[str, str | None, int]]
    """`(reason, teacher or None, rows)` in the order the verify stage met them."""

    def add_to(self, stats: PipelineStats) -> None:
        stats.rows_in += self.rows_in
        for reason, teacher, n in self.skipped:
            stats.skip(reason, teacher, n)

    @classmethod
    def of(cls, stats: PipelineStats) -> TableStats:
        """From a `PipelineStats` that counted only this table's rows."""
        teachers = {(reason, t): n for t, reasons in stats.skipped_by_teacher.items() for reason, n in reasons.items()}
        skipped: list[tuple[str, str | None, int]] = [(reason, t, n) for (reason, t), n in teachers.items()]
        without = Counter(stats.skipped)
        for reason, _, n in skipped:
            without[reason] -= n
        skipped += [(reason, None, n) for reason, n in without.items() if n]
        return cls(stats.rows_in, skipped)


class CandidateTable:
    """A built candidate table, memory-mapped; Python objects only for the rows asked for."""

    def __init__(self, folder: str | Path | None, table: pa.Table | None = None, meta: dict[str, Any] | None = None):
        import numpy as np
        import pyarrow as pa

        self.folder = Path(folder) if folder is not None else None
        self._files = MappedFiles()
        if self.folder is not None:
            meta = json.loads((self.folder / META_FILE).read_text(encoding="utf-8"))
            tables = [self._files.read(path) for path in sorted(self.folder.glob("candidates-*.arrow"))]
            table = pa.concat_tables(tables) if tables else schema().empty_table()
        assert table is not None and meta is not None, "an in-memory table comes with its meta (see from_questions)"
        self.table = table
        self.n_questions: int = meta["questions"]
        self.usable: int = meta["usable"]
        """Rows that passed verification (not set aside)."""
        self.stats = TableStats(meta["rows_in"], [tuple(x) for x in meta["skipped"]])
        # row offset of each question (the table is sorted by question, unassigned rows last)
        index = self.table.column("question_index").to_numpy()
        self.question_starts = np.searchsorted(index[index >= 0], np.arange(self.n_questions + 1)).astype(np.int64)
        self.release()

    @classmethod
    def from_questions(cls, questions: list[Question]) -> CandidateTable:
        """An in-memory table of questions already held as objects (e.g. by `scas_hub.score`)."""
        import pyarrow as pa

        rows = [{**row_of(c), "question_index": i} for i, q in enumerate(questions) for c in q.candidates]
        meta = {
            "questions": len(questions),
            "rows_in": len(rows),
            "skipped": [],
            "usable": sum(r["skip_reason"] is None for r in rows),
        }
        return cls(None, pa.Table.from_pylist(rows, schema=schema()), meta)

    def release(self) -> None:
        """Drop the pages read so far from this process's memory (they stay in the page cache,
        shared with the other ranks), so resident memory does not grow as windows are read."""
        self._files.release()

    def set_skip_reasons(self, reasons: pa.Array, usable: int) -> None:
        """Replace the `skip_reason` column (in memory; e.g. rows held out of this run)."""
        self.table = self.table.set_column(self.table.schema.get_field_index("skip_reason"), "skip_reason", reasons)
        self.usable = usable

    @property
    def n_rows(self) -> int:
        return self.table.num_rows

    def question_rows(self, start: int, stop: int) -> tuple[int, int]:
        """Row range `[first, last)` of questions `start..stop-1`."""
        return int(self.question_starts[start]), int(self.question_starts[stop])

    def questions(self, start: int = 0, stop: int | None = None) -> list[Question]:
        """Questions `start..stop-1` as `Question`s of fresh `Candidate`s (all of them by default)."""
        stop = self.n_questions if stop is None else stop
        first, last = self.question_rows(start, stop)
        rows = (
            self.table.slice(first, last - first)
            .drop_columns(["question_index", "content_digest", "chars"])
            .to_pylist()
        )
        out: list[Question] = []
        for q in range(start, stop):
            a, b = self.question_rows(q, q + 1)
            cands = [candidate_of(r) for r in rows[a - first : b - first]]
            out.append(Question(cands[0].question_id, cands))
        return out

    def iter_questions(self, per_batch: int = 256) -> Iterator[Question]:
        """Every question in order, materialised `per_batch` questions at a time."""
        for start in range(0, self.n_questions, per_batch):
            yield from self.questions(start, min(start + per_batch, self.n_questions))
            self.release()
