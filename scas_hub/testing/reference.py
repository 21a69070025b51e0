"""Reference implementations kept for tests: the plain per-question forms of what runs columnar.

`pick` states each selection rule for one question (`select.columnar` must pick exactly the same);
`card_numbers` and its parts compute the card's numbers over a flat list of candidates (the
streamed `publish.card_stats.CardNumbers` must give the same).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from ..errors import SelectionError
from ..publish.card_stats import CardNumbers
from ..records import Candidate, Question
from ..score.scored_table import window_of
from ..select import (
    SelectionConfig,
    first_teacher_answer,
    group_of,
    lowest_nll,
    question_rng,
    rank,
    strongest_teacher,
    verified_answers,
)
from ..select.columnar import ScoredWindow, WindowSelection
from ..stats import PipelineStats


def pick(
    question: Question, config: SelectionConfig, stats: PipelineStats, order: list[str] | None = None
) -> Candidate | None:
    """Choose one candidate of a question (or None, with the reason counted in `stats`)."""
    scored = question.scored
    if not scored:
        stats.drop_question("no_valid_candidate")
        return None
    base, _, arg = config.strategy.partition(":")
    rng = question_rng(config.seed, question.question_id)
    if base == "scas":
        ranked = rank(scored, config.lam)
        m, g = len(ranked), config.groups
        members = [c for k, c in enumerate(ranked, 1) if group_of(k, m, g) == config.group]
        if not members:
            if config.small_policy == "drop":
                stats.drop_question("fewer_candidates_than_groups")
                return None
            groups = {group_of(k, m, g) for k in range(1, m + 1)}
            nearest = min(groups, key=lambda x: (abs(x - config.group), x))
            members = [c for k, c in enumerate(ranked, 1) if group_of(k, m, g) == nearest]
            stats.policy_applied["nearest_group"] += 1
        return rng.choice(members)
    if base == "argmin":
        return rank(scored, config.lam)[0]
    if base == "lowest-nll":
        return lowest_nll(scored)
    if base == "random":
        return rng.choice(sorted(scored, key=lambda c: (c.teacher, c.sample)))
    if base in {"teacher", "strongest"}:
        winner = first_teacher_answer(scored, order or [arg], config.lam)
        if winner is None:
            stats.drop_question("teacher_has_no_valid_answer")
        return winner
    raise SelectionError(f"unknown strategy {config.strategy!r}")


def _accumulated(candidates: list[Candidate], lam: float, order: list[str] | None = None) -> CardNumbers:
    """`CardNumbers` over a flat list of candidates (grouped by question id, first-seen order)."""
    by_question: dict[str, list[Candidate]] = defaultdict(list)
    for c in candidates:
        by_question[c.question_id].append(c)
    if order is None:
        order = strongest_teacher(verified_answers(candidates))
    numbers = CardNumbers(lam, order)
    questions = [Question(q, group) for q, group in by_question.items()]
    scored = [c for q in questions for c in q.candidates if c.score is not None]
    winners = np.array([i for i, c in enumerate(scored) if c.selected], np.int64)
    numbers.add(WindowSelection(ScoredWindow.of(window_of(questions), lam), winners))
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


def score_distributions(candidates: list[Candidate], lam: float) -> dict[str, dict[str, np.ndarray]]:
    """Per teacher, the SCAS scores of all its scored candidates and of its selected ones (for the figure)."""
    return _accumulated(candidates, lam, []).score_distributions()


def card_numbers(candidates: list[Candidate], lam: float, strongest_order: list[str] | None = None) -> dict[str, Any]:
    """Everything the card's statistics sections show, as stored in `selection_stats.json`."""
    return _accumulated(candidates, lam, strongest_order).numbers()
