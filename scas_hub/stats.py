"""Counters collected where the work happens and rolled up into `selection_stats.json` and the card."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PipelineStats:
    """Every row and question is accounted for:

    `rows_in == rows_scored + sum(skipped.values())` and
    `questions_in == questions_selected + sum(questions_dropped.values())`.
    """

    rows_in: int = 0
    rows_scored: int = 0
    skipped: Counter = field(default_factory=Counter)
    questions_in: int = 0
    questions_selected: int = 0
    questions_dropped: Counter = field(default_factory=Counter)
    policy_applied: Counter = field(default_factory=Counter)
    skipped_by_teacher: dict[str, Counter] = field(default_factory=dict)
    rows_truncated: int = 0
    """Scored rows cut to `--max-length` tokens (only with `--truncate`; they count as scored)."""
    tokens_scored: int = 0
    scoring_seconds: float = 0.0
    scores_from_cache: int = 0
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    """Wall time per stage of this process (`{"started": epoch seconds, "seconds": ...}`), recorded
    under `run.stages` in `selection_stats.json`; not a counter, so not in `to_dict`."""

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time one stage (`source_verify`, `score`, `select_write`)."""
        started, clock = time.time(), time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = {"started": started, "seconds": round(time.perf_counter() - clock, 3)}

    def skip(self, reason: str, teacher: str | None = None, n: int = 1) -> None:
        self.skipped[reason] += n
        if teacher is not None:
            self.skipped_by_teacher.setdefault(teacher, Counter())[reason] += n

    def drop_question(self, reason: str) -> None:
        self.questions_dropped[reason] += 1

    def check_balanced(self) -> None:
        """Raise if a row or question went missing without a counted reason."""
        rows = self.rows_scored + sum(self.skipped.values())
        if rows != self.rows_in:
            raise AssertionError(f"row accounting broken: {self.rows_in} in, {rows} accounted for")
        questions = self.questions_selected + sum(self.questions_dropped.values())
        if questions != self.questions_in:
            raise AssertionError(f"question accounting broken: {self.questions_in} in, {questions} accounted for")

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_in": self.rows_in,
            "rows_scored": self.rows_scored,
            "skipped": dict(sorted(self.skipped.items())),
            "questions_in": self.questions_in,
            "questions_selected": self.questions_selected,
            "questions_dropped": dict(sorted(self.questions_dropped.items())),
            "policy_applied": dict(sorted(self.policy_applied.items())),
            "skipped_by_teacher": {t: dict(c) for t, c in sorted(self.skipped_by_teacher.items())},
            "rows_truncated": self.rows_truncated,
            "tokens_scored": self.tokens_scored,
            "scoring_seconds": round(self.scoring_seconds, 3),
            "scores_from_cache": self.scores_from_cache,
        }
