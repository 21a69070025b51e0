"""The columnar selection (`select.columnar`) picks exactly what the per-question reference `select.pick`
picks, for every strategy and small-question policy, on random corpora with ties, NaN scores,
samples, unscored rows and questions smaller than the group count; and it counts the same."""

from __future__ import annotations

import copy
import math
import random

import numpy as np
import pytest

from scas_hub import Candidate, PipelineStats, ProxyComponents, Question, SelectionConfig
from scas_hub.score.scored_table import windows_of
from scas_hub.select import strongest_teacher, teacher_order, verified_answers
from scas_hub.select.columnar import ScoredWindow, select_window
from scas_hub.testing.reference import card_numbers, pick

TEACHERS = ["zeta", "alpha", "mid", "beta-2", "Beta"]


def random_corpus(seed: int, n_questions: int = 150) -> list[Question]:
    rng = random.Random(seed)
    nll_pool = [0.5, 1.0, 1.0, 2.0, float("nan")]  # repeated values give exact ties
    questions = []
    for q in range(n_questions):
        cands = []
        for teacher in rng.sample(TEACHERS, rng.randint(1, len(TEACHERS))):
            for sample in range(rng.choice([1, 1, 1, 2, 3])):
                c = Candidate(f"q{q}", teacher, f"question {q}", f"{teacher} answer {sample} to {q}", sample=sample)
                if rng.random() < 0.85:
                    nll = rng.choice(nll_pool) if rng.random() < 0.5 else rng.random() * 3
                    c.score = ProxyComponents(
                        answer_mean_nll=nll,
                        question_mean_nll=rng.choice([1.0, 2.0]),
                        sim_aa=rng.choice([0.5, rng.random()]),
                        sim_aq=rng.choice([0.25, 0.5]),
                        n_answer_tokens=rng.randint(1, 90),
                        n_question_tokens=7,
                    )
                elif rng.random() < 0.5:
                    c.skip_reason = "too_long"
                cands.append(c)
        rng.shuffle(cands)  # source order must not matter
        questions.append(Question(f"q{q}", cands))
    return questions


CONFIGS = [
    *(
        SelectionConfig(strategy="scas", groups=g, group=k, seed=s, small_policy=p, lam=lam)
        for g, k in [(5, 1), (5, 3), (5, 5), (3, 2), (1, 1)]
        for p in ("nearest", "drop")
        for s, lam in [(42, 0.5), (7, 0.0)]
    ),
    *(
        SelectionConfig(strategy=s, seed=7, lam=lam)
        for s in ("argmin", "lowest-nll", "random", "strongest")
        for lam in (0.5, 1.0)
    ),
    SelectionConfig(strategy="strongest", teacher_ranking=("mid", "zeta")),
    SelectionConfig(strategy="teacher:alpha"),
    SelectionConfig(strategy="teacher:Beta"),
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "config", CONFIGS, ids=lambda c: f"{c.strategy}-G{c.groups}g{c.group}-{c.small_policy}-s{c.seed}-l{c.lam}"
)
def test_columnar_equals_per_question_reference(config, seed):
    questions = random_corpus(seed)
    order = teacher_order(questions, config)
    reference_stats, stats = PipelineStats(), PipelineStats()
    expected = []
    for q in questions:
        reference_stats.questions_in += 1
        winner = pick(q, config, reference_stats, order)
        if winner is not None:
            reference_stats.questions_selected += 1
            expected.append((winner.question_id, winner.teacher, winner.sample))
    got = []
    for window in windows_of(questions, per_window=37):  # windows cut questions into uneven batches
        picked = select_window(ScoredWindow.of(window, config.lam), config, stats, order)
        rows = window.select(["question_id", "teacher", "sample"]).take(picked.selected_rows).to_pylist()
        got += [(r["question_id"], r["teacher"], r["sample"]) for r in rows]
    assert got == expected
    assert stats.to_dict() == reference_stats.to_dict()


def test_card_numbers_match_a_per_question_count():
    questions = random_corpus(3)
    config = SelectionConfig(strategy="scas", groups=3, seed=1)
    stats = PipelineStats()
    from scas_hub.select import select

    chosen = select(copy.deepcopy(questions), config, stats)
    chosen_keys = {(c.question_id, c.teacher, c.sample) for c in chosen}
    flat = [c for q in questions for c in q.candidates]
    for c in flat:
        c.selected = (c.question_id, c.teacher, c.sample) in chosen_keys
    numbers = card_numbers(flat, 0.5)
    scored = [c for c in flat if c.score is not None]
    by_teacher = {row["teacher"]: row for row in numbers["teachers"]}
    for teacher in {c.teacher for c in scored}:
        mine = [c for c in scored if c.teacher == teacher]
        row = by_teacher[teacher]
        assert row["candidates"] == len(mine)
        assert row["selected"] == sum(c.selected for c in mine)
        assert row["mean_answer_tokens"] == pytest.approx(np.mean([c.score.n_answer_tokens for c in mine]))
    # agreement with argmin, recomputed one question at a time with the reference rule
    order = strongest_teacher(verified_answers(flat))
    same_argmin = 0
    for q in questions:
        winner = next((c for c in q.candidates if c.selected), None)
        if winner is not None:
            same_argmin += pick(q, SelectionConfig(strategy="argmin"), PipelineStats(), order) is winner
    rules = {r["rule"]: r for r in numbers["agreement"]["rules"]}
    assert rules["argmin"]["same"] == same_argmin
    assert rules["selection"]["same"] == numbers["agreement"]["questions"] == len(chosen)
    assert math.isnan(rules["selection"]["mean_score"]) or rules["selection"]["mean_score"] == pytest.approx(
        np.mean([c.score.scas_score(0.5) for c in chosen])
    )
