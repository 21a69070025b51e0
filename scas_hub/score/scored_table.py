"""The candidate table after scoring: its rows plus one score outcome per row, read a window at a time.

Selection, the data files and the card numbers stream over `iter_questions()`: each batch of
questions becomes `Candidate`s (with `score`, `truncated` and the student's skip reasons applied)
only while it is being selected and written, so memory does not grow with the corpus.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from ..records import SCORING_SKIP_REASONS, Question
from ..verify.table import CandidateTable
from .cache import apply_outcome


class ScoredTable:
    """A `CandidateTable` and its score outcomes (`ScoreReport.scores`, aligned with its rows)."""

    def __init__(self, table: CandidateTable, scores=None):
        self.table, self.scores = table, scores
        """`None` before scoring: then only `verified_answers` is meaningful."""

    def iter_questions(self, per_batch: int = 256) -> Iterator[Question]:
        """Every question in order, with scores applied, materialised `per_batch` questions at a time."""
        table = self.table
        for start in range(0, table.n_questions, per_batch):
            stop = min(start + per_batch, table.n_questions)
            first, last = table.question_rows(start, stop)
            outcomes = self.scores.slice(first, last - first).to_pylist()
            questions = table.questions(start, stop)
            for c, outcome in zip((c for q in questions for c in q.candidates), outcomes, strict=True):
                if c.skip_reason is None:
                    apply_outcome(c, outcome)
            yield from questions
            table.release()

    def verified_answers(self) -> Counter:
        """Per teacher, the answers that passed verification (as `select.verified_answers`), by columns."""
        import pyarrow as pa
        import pyarrow.compute as pc

        t = self.table.table
        reason = t.column("skip_reason")
        if self.scores is not None:  # reasons set by the student count as verified
            reason = pc.coalesce(reason, self.scores.column("skip"))
        usable = pc.or_(pc.is_null(reason), pc.is_in(reason, pa.array(sorted(SCORING_SKIP_REASONS))))
        counted = pc.and_(usable, pc.invert(pc.fill_null(pc.equal(t.column("verified"), False), False)))
        grouped = pa.table({"teacher": t.column("teacher"), "n": pc.cast(counted, pa.int64())}
                           ).group_by("teacher", use_threads=False).aggregate([("n", "sum")])
        return Counter(dict(zip(grouped.column("teacher").to_pylist(), grouped.column("n_sum").to_pylist(),
                                strict=True)))
