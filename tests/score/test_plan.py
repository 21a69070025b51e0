"""The scoring plan (`score.runner.plan_scoring`) is decided without a model: which rows are usable,
which the score cache holds, and which windows of whole questions each rank scores."""

from __future__ import annotations

from scas_hub.proxy import ProxyComponents
from scas_hub.records import Candidate, Question
from scas_hub.schema import candidate_digest, outcome_schema
from scas_hub.score.cache import outcomes_table
from scas_hub.score.runner import merge_outcomes, plan_scoring
from scas_hub.stats import PipelineStats
from scas_hub.verify.table import CandidateTable


def corpus() -> list[Question]:
    questions = []
    for q in range(6):
        cands = [
            Candidate(f"q{q}", f"t{t}", f"question {q} " + "x" * 40, f"answer {q}/{t} " + "y" * (10 * t))
            for t in range(3)
        ]
        questions.append(Question(f"q{q}", cands))
    questions[1].candidates[0].skip_reason = "not_verified"  # set aside before scoring
    return questions


def test_plan_without_a_model_covers_every_pending_row_once():
    questions = corpus()
    table = CandidateTable.from_questions(questions)
    cached = [questions[0].candidates[1], questions[4].candidates[2]]
    for c in cached:
        c.score = ProxyComponents(1.0, 2.0, 0.5, 0.25, 3, 4)
    known = outcomes_table(cached, [candidate_digest(c) for c in cached])

    plan = plan_scoring(table, known, window_chars=300, world_size=2)

    rows = [c for q in questions for c in q.candidates]
    assert plan.usable.tolist() == [c.skip_reason is None for c in rows]
    assert plan.from_cache == 2
    assert plan.pending.tolist() == [c.skip_reason is None and c not in cached for c in rows]
    # windows are whole questions, in order, covering all of them; each window goes to exactly one rank
    assert plan.windows[0][0] == 0 and plan.windows[-1][1] == len(questions)
    assert all(a[1] == b[0] for a, b in zip(plan.windows, plan.windows[1:], strict=False))
    assert len(plan.windows) > 1
    assert sorted(i for rank in plan.assignment for i in rank) == list(range(len(plan.windows)))
    assert all(plan.assignment)  # both ranks get work
    chars = table.table.column("chars").to_pylist()
    assert sum(plan.sizes) == sum(n for n, p in zip(chars, plan.pending.tolist(), strict=True) if p) > 0


def test_plan_with_everything_cached_scores_nothing_and_merge_reads_the_cache():
    questions = corpus()
    table = CandidateTable.from_questions(questions)
    usable = [c for q in questions for c in q.candidates if c.skip_reason is None]
    for i, c in enumerate(usable):
        c.score = ProxyComponents(float(i), 1.0, 0.5, 0.5, 2, 2)
    known = outcomes_table(usable, [candidate_digest(c) for c in usable])

    plan = plan_scoring(table, known, window_chars=300, world_size=1)
    assert plan.from_cache == len(usable) and not plan.pending.any() and sum(plan.sizes) == 0

    stats = PipelineStats()
    facts = {"rank": 0, "device": "cpu", "candidates": 0, "tokens": 0, "seconds": 0.0}
    scores, ranks = merge_outcomes(
        plan, known, [{"outcomes": outcome_schema().empty_table(), "facts": facts}], table, stats
    )
    assert scores.num_rows == table.n_rows and ranks == [facts]
    assert stats.rows_scored == len(usable) and stats.scores_from_cache == len(usable)
    nll = scores.column("answer_mean_nll").to_pylist()
    assert [x for x in nll if x is not None] == [float(i) for i in range(len(usable))]
    assert nll[3] is None  # q1's first candidate, set aside before scoring
