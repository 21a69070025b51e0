"""The candidate table after scoring: its rows plus one score outcome per row, read a window at a time.

Selection, the data files and the card numbers stream over `windows()`: Arrow tables of whole
questions (`WINDOW_COLUMNS`, about `WINDOW_ROWS` rows each), built from slices of the memory-mapped
table and the score outcomes. No `Candidate` objects are made, so memory does not grow with the
corpus. `window_of` builds the same table from `Question`s already held as objects.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from ..records import SCORING_SKIP_REASONS, Question
from ..schema import COMPONENTS, TEXT_COLUMNS, WINDOW_ROWS, window_schema
from ..verify.table import CandidateTable

if TYPE_CHECKING:
    import pyarrow as pa


def window_of(questions: Iterable[Question]) -> pa.Table:
    """Questions held as objects (scored or not) as one window table, in their order."""
    import pyarrow as pa

    cands = [c for q in questions for c in q.candidates]
    columns = {name: [getattr(c, name) for c in cands] for name in (*TEXT_COLUMNS, "sample")}
    columns["scored"] = [c.score is not None for c in cands]
    for name in COMPONENTS:
        columns[name] = [getattr(c.score, name) if c.score is not None else None for c in cands]
    return pa.table(columns, schema=window_schema())


def windows_of(questions: Iterable[Question], per_window: int = 1024) -> Iterator[pa.Table]:
    """`window_of` for `per_window` questions at a time (a list or an iterator, read once)."""
    batch: list[Question] = []
    for q in questions:
        batch.append(q)
        if len(batch) == per_window:
            yield window_of(batch)
            batch = []
    if batch:
        yield window_of(batch)


class ScoredTable:
    """A `CandidateTable` and its score outcomes (`ScoreReport.scores`, aligned with its rows)."""

    def __init__(self, table: CandidateTable, scores: pa.Table | None = None):
        self.table, self.scores = table, scores
        """`None` before scoring: then only `verified_answers` is meaningful."""

    def windows(self, rows: int = WINDOW_ROWS) -> Iterator[pa.Table]:
        """Every question in order, as window tables of whole questions of about `rows` rows
        (a question larger than that is a window of its own)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        table, starts, scores = self.table, self.table.question_starts, self.scores
        assert scores is not None, "windows() reads the rows of a scored table"
        q = 0
        while q < table.n_questions:
            stop = int(np.searchsorted(starts, starts[q] + rows, side="right")) - 1
            stop = min(max(stop, q + 1), table.n_questions)
            first, last = table.question_rows(q, stop)
            part = table.table.slice(first, last - first)
            outcomes = scores.slice(first, last - first)
            scored = pc.and_(
                pc.and_(pc.is_null(part.column("skip_reason")), pc.is_null(outcomes.column("skip"))),
                pc.is_valid(outcomes.column("answer_mean_nll")),
            )
            columns = {n: part.column(n) for n in (*TEXT_COLUMNS, "sample")}
            columns["scored"] = scored
            columns.update({n: outcomes.column(n) for n in COMPONENTS})
            yield pa.table(columns).cast(window_schema())
            table.release()
            q = stop

    def verified_answers(self) -> Counter[str]:
        """Per teacher, the answers that passed verification (as `select.verified_answers`), by columns."""
        import pyarrow as pa
        import pyarrow.compute as pc

        t = self.table.table
        reason = t.column("skip_reason")
        if self.scores is not None:  # reasons set by the student count as verified
            reason = pc.coalesce(reason, self.scores.column("skip"))
        usable = pc.or_(pc.is_null(reason), pc.is_in(reason, pa.array(sorted(SCORING_SKIP_REASONS))))
        counted = pc.and_(usable, pc.invert(pc.fill_null(pc.equal(t.column("verified"), False), False)))
        grouped = (
            pa.table({"teacher": t.column("teacher"), "n": pc.cast(counted, pa.int64())})
            .group_by("teacher", use_threads=False)
            .aggregate([("n", "sum")])
        )
        return Counter(
            dict(zip(grouped.column("teacher").to_pylist(), grouped.column("n_sum").to_pylist(), strict=True))
        )
