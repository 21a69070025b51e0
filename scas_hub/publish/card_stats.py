"""The numbers the dataset card shows, computed from the `Candidate` records after selection.

Everything returns plain JSON-able dicts: they are stored in `selection_stats.json` and the card
template only formats them.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from typing import Any

from ..records import Candidate
from ..select import first_teacher_answer, lowest_nll, rank, strongest_teacher, verified_answers


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def teacher_table(candidates: list[Candidate], lam: float) -> list[dict[str, Any]]:
    """Per teacher, over all its samples: scored candidates, selected count and share of the
    selection, share of all scored candidates, mean and median SCAS score, mean answer tokens;
    most selected first."""
    scores: dict[str, list[float]] = defaultdict(list)
    tokens: dict[str, list[int]] = defaultdict(list)
    picked: Counter = Counter()
    for c in candidates:
        if c.score is None:
            continue
        scores[c.teacher].append(c.score.scas_score(lam))
        tokens[c.teacher].append(c.score.n_answer_tokens)
        picked[c.teacher] += c.selected
    n_selected = sum(picked.values())
    n_scored = sum(len(v) for v in scores.values())
    rows = [
        {"teacher": t, "candidates": len(v), "candidate_share": len(v) / n_scored, "selected": picked[t],
         "share": picked[t] / n_selected if n_selected else 0.0, "mean_score": _mean(v), "median_score": _median(v),
         "mean_answer_tokens": _mean(tokens[t])}
        for t, v in scores.items()
    ]
    return sorted(rows, key=lambda r: (-r["selected"], r["mean_score"], r["teacher"]))


def agreement(candidates: list[Candidate], lam: float, order: list[str] | None = None) -> dict[str, Any]:
    """How often the selection equals what simpler rules would have picked, per selected question.

    Rules: `argmin` (lowest SCAS score), `lowest-nll` (lowest answer mean NLL, GRAPE's rule) and
    `strongest` (the answer of the first teacher in `order` that answered, its lowest-score sample;
    default order: most verified answers in the corpus, as `select.strongest_teacher`); ties as in
    `select.rank`. For each rule and for the
    selection: mean SCAS score and mean answer tokens of the answers it picks, over the same questions.
    """
    by_question: dict[str, list[Candidate]] = defaultdict(list)
    for c in candidates:
        if c.score is not None:
            by_question[c.question_id].append(c)
    if order is None:
        order = strongest_teacher(verified_answers(candidates))
    # a teacher outside `order` (none of its answers verified) comes after every ranked one
    full_order = [*order, *sorted({c.teacher for c in candidates} - set(order))]
    rules = {
        "argmin": lambda cs: rank(cs, lam)[0],
        "lowest-nll": lowest_nll,
        "strongest": lambda cs: first_teacher_answer(cs, full_order, lam),
    }
    chosen: dict[str, list[Candidate]] = {name: [] for name in ["selection", *rules]}
    same: Counter = Counter()
    for group in by_question.values():
        winner = next((c for c in group if c.selected), None)
        if winner is None:
            continue
        chosen["selection"].append(winner)
        for name, rule in rules.items():
            other = rule(group)
            chosen[name].append(other)
            same[name] += other is winner
    n = len(chosen["selection"])

    def row(name: str, agreeing: int) -> dict[str, Any]:
        picks = chosen[name]
        return {"rule": name, "same": agreeing, "share": agreeing / n if n else 0.0,
                "mean_score": _mean([c.score.scas_score(lam) for c in picks]),
                "mean_answer_tokens": _mean([c.score.n_answer_tokens for c in picks])}

    return {"questions": n, "strongest_teacher": order[0] if order else None,
            "rules": [row("selection", n), *(row(name, same[name]) for name in rules)]}


def answer_tokens(candidates: list[Candidate]) -> dict[str, dict[str, float | None]]:
    """Answer length in student tokens: selected answers vs every scored candidate."""
    scored = [c.score.n_answer_tokens for c in candidates if c.score is not None]
    selected = [c.score.n_answer_tokens for c in candidates if c.score is not None and c.selected]
    return {name: {"mean": _mean(v), "median": _median(v), "count": len(v)}
            for name, v in (("selected", selected), ("all", scored))}


def score_distributions(candidates: list[Candidate], lam: float) -> dict[str, dict[str, list[float]]]:
    """Per teacher, the SCAS scores of all its scored candidates and of its selected ones (for the figure)."""
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"all": [], "selected": []})
    for c in candidates:
        if c.score is not None:
            s = c.score.scas_score(lam)
            out[c.teacher]["all"].append(s)
            if c.selected:
                out[c.teacher]["selected"].append(s)
    return dict(out)


def card_numbers(candidates: list[Candidate], lam: float, strongest_order: list[str] | None = None) -> dict[str, Any]:
    """Everything the card's statistics sections show, as stored in `selection_stats.json`."""
    return {"teachers": teacher_table(candidates, lam), "agreement": agreement(candidates, lam, strongest_order),
            "answer_tokens": answer_tokens(candidates)}
