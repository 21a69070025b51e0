"""The numbers the dataset card shows, computed from the `Candidate` records after selection
(question by question, as `CardNumbers`, so a streamed selection needs no list of every record).

Everything returns plain JSON-able dicts: they are stored in `selection_stats.json` and the card
template only formats them.
"""

from __future__ import annotations

import statistics
from array import array
from collections import Counter, defaultdict
from typing import Any

from ..records import Candidate
from ..select import first_teacher_answer, lowest_nll, rank, strongest_teacher, verified_answers


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


class CardNumbers:
    """The card's numbers, accumulated question by question as the selection streams past.

    Only numbers are kept (per teacher: scores and token counts; per rule: the picks' scores and
    token counts), never texts, so memory holds a few floats per candidate.
    """

    RULES = ("argmin", "lowest-nll", "strongest")

    def __init__(self, lam: float, order: list[str]):
        self.lam, self.order = lam, order
        self.scores: dict[str, array] = defaultdict(lambda: array("d"))
        self.selected_scores: dict[str, array] = defaultdict(lambda: array("d"))
        self.tokens: dict[str, array] = defaultdict(lambda: array("q"))
        self.picked: Counter = Counter()
        self.all_tokens, self.selected_tokens = array("q"), array("q")
        self.rule_scores = {name: array("d") for name in ["selection", *self.RULES]}
        self.rule_tokens = {name: array("q") for name in ["selection", *self.RULES]}
        self.same: Counter = Counter()

    def add(self, candidates: list[Candidate]) -> None:
        """One question's candidates (scored or not), after selection."""
        group = [c for c in candidates if c.score is not None]
        for c in group:
            s = c.score.scas_score(self.lam)
            self.scores[c.teacher].append(s)
            self.tokens[c.teacher].append(c.score.n_answer_tokens)
            self.all_tokens.append(c.score.n_answer_tokens)
            self.picked[c.teacher] += c.selected
            if c.selected:
                self.selected_scores[c.teacher].append(s)
                self.selected_tokens.append(c.score.n_answer_tokens)
        winner = next((c for c in group if c.selected), None)
        if winner is None:
            return
        # a teacher outside `order` (none of its answers verified) comes after every ranked one
        full_order = [*self.order, *sorted({c.teacher for c in group} - set(self.order))]
        rules = {
            "argmin": lambda cs: rank(cs, self.lam)[0],
            "lowest-nll": lowest_nll,
            "strongest": lambda cs: first_teacher_answer(cs, full_order, self.lam),
        }
        self._record("selection", winner)
        for name, rule in rules.items():
            other = rule(group)
            self._record(name, other)
            self.same[name] += other is winner

    def _record(self, rule: str, c: Candidate) -> None:
        self.rule_scores[rule].append(c.score.scas_score(self.lam))
        self.rule_tokens[rule].append(c.score.n_answer_tokens)

    def teacher_table(self) -> list[dict[str, Any]]:
        """Per teacher, over all its samples: scored candidates, selected count and share of the
        selection, share of all scored candidates, mean and median SCAS score, mean answer tokens;
        most selected first."""
        n_selected = sum(self.picked.values())
        n_scored = sum(len(v) for v in self.scores.values())
        rows = [
            {"teacher": t, "candidates": len(v), "candidate_share": len(v) / n_scored, "selected": self.picked[t],
             "share": self.picked[t] / n_selected if n_selected else 0.0, "mean_score": _mean(v),
             "median_score": _median(v), "mean_answer_tokens": _mean(self.tokens[t])}
            for t, v in self.scores.items()
        ]
        return sorted(rows, key=lambda r: (-r["selected"], r["mean_score"], r["teacher"]))

    def agreement(self) -> dict[str, Any]:
        """How often the selection equals what simpler rules would have picked (see `agreement`)."""
        n = len(self.rule_scores["selection"])

        def row(name: str, agreeing: int) -> dict[str, Any]:
            return {"rule": name, "same": agreeing, "share": agreeing / n if n else 0.0,
                    "mean_score": _mean(self.rule_scores[name]), "mean_answer_tokens": _mean(self.rule_tokens[name])}

        return {"questions": n, "strongest_teacher": self.order[0] if self.order else None,
                "rules": [row("selection", n), *(row(name, self.same[name]) for name in self.RULES)]}

    def answer_tokens(self) -> dict[str, dict[str, float | None]]:
        return {name: {"mean": _mean(v), "median": _median(v), "count": len(v)}
                for name, v in (("selected", self.selected_tokens), ("all", self.all_tokens))}

    def score_distributions(self) -> dict[str, dict[str, list[float]]]:
        return {t: {"all": list(v), "selected": list(self.selected_scores.get(t, ()))} for t, v in self.scores.items()}

    def numbers(self) -> dict[str, Any]:
        """Everything the card's statistics sections show, as stored in `selection_stats.json`."""
        return {"teachers": self.teacher_table(), "agreement": self.agreement(), "answer_tokens": self.answer_tokens()}


def _accumulated(candidates: list[Candidate], lam: float, order: list[str] | None = None) -> CardNumbers:
    """`CardNumbers` over a flat list of candidates (grouped by question id, first-seen order)."""
    by_question: dict[str, list[Candidate]] = defaultdict(list)
    for c in candidates:
        by_question[c.question_id].append(c)
    if order is None:
        order = strongest_teacher(verified_answers(candidates))
    numbers = CardNumbers(lam, order)
    for group in by_question.values():
        numbers.add(group)
    return numbers


def teacher_table(candidates: list[Candidate], lam: float) -> list[dict[str, Any]]:
    """Per teacher: scored candidates, selected count and share of the selection, share of all
    scored candidates, mean and median SCAS score, mean answer tokens; most selected first."""
    return _accumulated(candidates, lam, []).teacher_table()


def agreement(candidates: list[Candidate], lam: float, order: list[str] | None = None) -> dict[str, Any]:
    """How often the selection equals what simpler rules would have picked, per selected question.

    Rules: `argmin` (lowest SCAS score), `lowest-nll` (lowest answer mean NLL, GRAPE's rule) and
    `strongest` (the answer of the first teacher in `order` that answered, its lowest-score sample;
    default order: most verified answers in the corpus, as `select.strongest_teacher`); ties as in
    `select.rank`. For each rule and for the
    selection: mean SCAS score and mean answer tokens of the answers it picks, over the same questions.
    """
    return _accumulated(candidates, lam, order).agreement()


def answer_tokens(candidates: list[Candidate]) -> dict[str, dict[str, float | None]]:
    """Answer length in student tokens: selected answers vs every scored candidate."""
    return _accumulated(candidates, 0.5, []).answer_tokens()


def score_distributions(candidates: list[Candidate], lam: float) -> dict[str, dict[str, list[float]]]:
    """Per teacher, the SCAS scores of all its scored candidates and of its selected ones (for the figure)."""
    return _accumulated(candidates, lam, []).score_distributions()


def card_numbers(candidates: list[Candidate], lam: float, strongest_order: list[str] | None = None) -> dict[str, Any]:
    """Everything the card's statistics sections show, as stored in `selection_stats.json`."""
    return _accumulated(candidates, lam, strongest_order).numbers()
