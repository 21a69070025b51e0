"""The numbers the dataset card shows, accumulated window by window as the selection streams
(`CardNumbers`, on the columns of `select.columnar`), so a streamed selection needs no list of
every record.

Everything returns plain JSON-able dicts: they are stored in `selection_stats.json` and the card
template only formats them.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np

from ..select.columnar import ScoredWindow, WindowSelection

if TYPE_CHECKING:
    import numpy.typing as npt


def _mean(values: np.ndarray) -> float | None:
    # math.fsum: exactly rounded, so the figure does not depend on how the rows were windowed
    return math.fsum(values.tolist()) / len(values) if len(values) else None


def _median(values: np.ndarray) -> float | None:
    if not len(values):
        return None
    ordered = np.sort(values)
    mid = len(ordered) // 2
    return float(ordered[mid]) if len(ordered) % 2 else (ordered[mid - 1].item() + ordered[mid].item()) / 2


class _Chunks:
    """A growing 1-D numpy array, kept as chunks until read."""

    def __init__(self, dtype: npt.DTypeLike):
        self.dtype = dtype
        self.parts: list[np.ndarray] = []

    def add(self, values: np.ndarray) -> None:
        if len(values):
            self.parts.append(np.asarray(values, self.dtype))

    def array(self) -> np.ndarray:
        if len(self.parts) > 1:
            self.parts = [np.concatenate(self.parts)]
        return self.parts[0] if self.parts else np.zeros(0, self.dtype)


class CardNumbers:
    """The card's numbers, accumulated window by window as the selection streams past.

    Only numbers are kept (per teacher: scores and token counts; per rule: the picks' scores and
    token counts), never texts, so memory holds a few numbers per candidate.
    """

    RULES = ("argmin", "lowest-nll", "strongest")

    def __init__(self, lam: float, order: list[str]):
        self.lam, self.order = lam, order
        self.scores: dict[str, _Chunks] = defaultdict(lambda: _Chunks(np.float64))
        self.selected_scores: dict[str, _Chunks] = defaultdict(lambda: _Chunks(np.float64))
        self.tokens: dict[str, _Chunks] = defaultdict(lambda: _Chunks(np.int64))
        self.picked: Counter = Counter()
        self.all_tokens, self.selected_tokens = _Chunks(np.int64), _Chunks(np.int64)
        self.rule_scores = {name: _Chunks(np.float64) for name in ["selection", *self.RULES]}
        self.rule_tokens = {name: _Chunks(np.int64) for name in ["selection", *self.RULES]}
        self.same: Counter = Counter()

    def add(self, selection: WindowSelection) -> None:
        """One window's scored rows and what selection chose among them."""
        w, winners = selection.window, selection.winners
        selected = np.zeros(len(w.rows), bool)
        selected[winners] = True
        for code, teacher in enumerate(w.teachers):  # first-seen order, as the figure lists teachers
            mine = w.teacher == code
            self.scores[teacher].add(w.cost[mine])
            self.tokens[teacher].add(w.answer_tokens[mine])
            self.picked[teacher] += int(np.count_nonzero(selected & mine))
            self.selected_scores[teacher].add(w.cost[selected & mine])
        self.all_tokens.add(w.answer_tokens)
        self.selected_tokens.add(w.answer_tokens[selected])
        if not len(winners):
            return
        # a teacher outside `order` (none of its answers verified) comes after every ranked one, by name
        rules = {
            "argmin": w.lowest_cost(),
            "lowest-nll": w.lowest_nll(),
            "strongest": w.first_teacher(self.order, others_by_name=True),
        }
        self._record("selection", w, winners)
        asked = w.question[winners]
        for name, (questions, rows) in rules.items():
            by_question = np.full(w.n_questions, -1, np.int64)
            by_question[questions] = rows
            other = by_question[asked]
            self._record(name, w, other)
            self.same[name] += int(np.count_nonzero(other == winners))

    def _record(self, rule: str, w: ScoredWindow, rows: np.ndarray) -> None:
        self.rule_scores[rule].add(w.cost[rows])
        self.rule_tokens[rule].add(w.answer_tokens[rows])

    def teacher_table(self) -> list[dict[str, Any]]:
        """Per teacher, over all its samples: scored candidates, selected count and share of the
        selection, share of all scored candidates, mean and median SCAS score, mean answer tokens;
        most selected first."""
        n_selected = sum(self.picked.values())
        scores = {t: v.array() for t, v in self.scores.items()}
        n_scored = sum(len(v) for v in scores.values())
        rows = [
            {
                "teacher": t,
                "candidates": len(v),
                "candidate_share": len(v) / n_scored,
                "selected": self.picked[t],
                "share": self.picked[t] / n_selected if n_selected else 0.0,
                "mean_score": _mean(v),
                "median_score": _median(v),
                "mean_answer_tokens": _mean(self.tokens[t].array()),
            }
            for t, v in scores.items()
        ]
        return sorted(rows, key=lambda r: (-r["selected"], r["mean_score"], r["teacher"]))

    def agreement(self) -> dict[str, Any]:
        """How often the selection equals what simpler rules would have picked (see `agreement`)."""
        n = len(self.rule_scores["selection"].array())

        def row(name: str, agreeing: int) -> dict[str, Any]:
            return {
                "rule": name,
                "same": agreeing,
                "share": agreeing / n if n else 0.0,
                "mean_score": _mean(self.rule_scores[name].array()),
                "mean_answer_tokens": _mean(self.rule_tokens[name].array()),
            }

        return {
            "questions": n,
            "strongest_teacher": self.order[0] if self.order else None,
            "rules": [row("selection", n), *(row(name, self.same[name]) for name in self.RULES)],
        }

    def answer_tokens(self) -> dict[str, dict[str, float | None]]:
        return {
            name: {"mean": _mean(v), "median": _median(v), "count": len(v)}
            for name, v in (("selected", self.selected_tokens.array()), ("all", self.all_tokens.array()))
        }

    def score_distributions(self) -> dict[str, dict[str, np.ndarray]]:
        """Per teacher, the SCAS scores of all its scored candidates and of its selected ones."""
        return {t: {"all": v.array(), "selected": self.selected_scores[t].array()} for t, v in self.scores.items()}

    def numbers(self) -> dict[str, Any]:
        """Everything the card's statistics sections show, as stored in `selection_stats.json`."""
        return {"teachers": self.teacher_table(), "agreement": self.agreement(), "answer_tokens": self.answer_tokens()}
