"""Compare selections: teacher shares, and how often two selections keep the same answer.

A selection maps each selected question id to its `Pick` (teacher and answer text). Rounds use
`agreement` for "share of questions whose selected answer changed since the previous round";
several-student runs use it for "share of questions on which two students select the same answer".
Both are computed over the questions selected in both selections.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .records import Candidate


@dataclass(frozen=True)
class Pick:
    """What was selected for one question: same teacher and same text = same answer (a teacher's
    samples differ in text, so they stay apart)."""

    teacher: str
    answer: str


@dataclass(frozen=True)
class Agreement:
    """How many of the questions selected in both selections got the same answer."""

    same: int
    compared: int

    @property
    def share(self) -> float | None:
        """`same / compared`; None when no question was selected in both."""
        return self.same / self.compared if self.compared else None

    @property
    def changed_share(self) -> float | None:
        return None if self.share is None else 1.0 - self.share


def selection_of(candidates: Iterable[Candidate]) -> dict[str, Pick]:
    """The selection marked on candidate records (`selected`), by question id."""
    return {c.question_id: Pick(c.teacher, c.answer) for c in candidates if c.selected}


def teacher_shares(selection: Mapping[str, Pick]) -> dict[str, float]:
    """Share of selected questions per teacher, largest first (ties by name)."""
    counts = Counter(p.teacher for p in selection.values())
    total = sum(counts.values())
    return {t: counts[t] / total for t in sorted(counts, key=lambda t: (-counts[t], t))}


def agreement(a: Mapping[str, Pick], b: Mapping[str, Pick]) -> Agreement:
    """Questions selected in both `a` and `b`, and how many of them have the same pick."""
    common = a.keys() & b.keys()
    return Agreement(same=sum(a[q] == b[q] for q in common), compared=len(common))


def format_shares(shares: Mapping[str, float]) -> str:
    """`a 50.0%, b 25.0%, ...` for cards and printed tables."""
    return ", ".join(f"{t} {100 * s:.1f}%" for t, s in shares.items())
