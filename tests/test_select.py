"""Selection rules, including questions with fewer candidates than groups."""

from __future__ import annotations

import pytest

from scas_hub import Candidate, PipelineStats, ProxyComponents, Question, SelectionConfig, SelectionError, select
from scas_hub.select import group_of, rank


def cand(qid: str, teacher: str, score: float, nll: float | None = None) -> Candidate:
    # with lam=0 and sim_aa=1, scas_score == answer_mean_nll**2 == score
    c = Candidate(qid, teacher, "q?", f"answer by {teacher}")
    c.score = ProxyComponents(answer_mean_nll=score**0.5, question_mean_nll=1.0, sim_aa=1.0, sim_aq=0.0,
                              n_answer_tokens=3, n_question_tokens=3)
    if nll is not None:  # decouple NLL from score: scale sim_aa
        c.score = ProxyComponents(nll, 1.0, score / nll**2, 0.0, 3, 3)
    return c


def question(qid: str, scores: dict[str, float]) -> Question:
    return Question(qid, [cand(qid, t, s) for t, s in scores.items()])


def run(questions, **kw):
    stats = PipelineStats()
    chosen = select(questions, SelectionConfig(lam=0.0, **kw), stats)
    return chosen, stats


def test_group_formula_matches_paper():
    # M=10, G=5: ranks 1-2 -> group 1, 3-4 -> 2, ..., 9-10 -> 5
    assert [group_of(k, 10, 5) for k in range(1, 11)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    # M=7, G=5: ceil(5k/7)
    assert [group_of(k, 7, 5) for k in range(1, 8)] == [1, 2, 3, 3, 4, 5, 5]


def test_scas_draws_only_from_group_one_and_is_seeded():
    scores = {f"t{i}": float(i) for i in range(10)}  # t0, t1 form group 1
    picks = set()
    for seed in range(40):
        chosen, stats = run([question("q", scores)], seed=seed)
        picks.add(chosen[0].teacher)
    assert picks == {"t0", "t1"}
    again = [run([question("q", scores)], seed=s)[0][0].teacher for s in range(40)]
    assert again == [run([question("q", scores)], seed=s)[0][0].teacher for s in range(40)]


def test_other_group():
    scores = {f"t{i}": float(i) for i in range(10)}
    chosen, _ = run([question("q", scores)], group=5, seed=1)
    assert chosen[0].teacher in {"t8", "t9"}


def test_ties_broken_by_teacher_name():
    q = question("q", {"b": 1.0, "a": 1.0, "c": 0.5})
    assert [c.teacher for c in rank(q.scored, 0.0)] == ["c", "a", "b"]
    chosen, _ = run([q], strategy="argmin")
    assert chosen[0].teacher == "c"


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_fewer_candidates_than_groups_nearest_keeps_question(m):
    scores = {f"t{i}": float(10 - i) for i in range(m)}  # lowest is t{m-1}
    chosen, stats = run([question("q", scores)])
    assert [c.teacher for c in chosen] == [f"t{m - 1}"]
    assert stats.policy_applied == {"nearest_group": 1}
    assert stats.questions_selected == 1 and not stats.questions_dropped


def test_fewer_candidates_than_groups_drop_is_counted():
    chosen, stats = run([question("q1", {"a": 1.0}), question("q2", {f"t{i}": i for i in range(5)})],
                        small_policy="drop")
    assert [c.question_id for c in chosen] == ["q2"]
    assert stats.questions_dropped == {"fewer_candidates_than_groups": 1}
    assert stats.questions_in == 2 and stats.questions_selected == 1


def test_exactly_g_candidates_uses_group_one():
    chosen, stats = run([question("q", {f"t{i}": float(i) for i in range(5)})])
    assert chosen[0].teacher == "t0" and not stats.policy_applied


def test_question_without_scored_candidates_is_dropped_with_reason():
    q = Question("q", [Candidate("q", "a", "x", "y", skip_reason="empty_answer")])
    chosen, stats = run([q])
    assert chosen == [] and stats.questions_dropped == {"no_valid_candidate": 1}


def test_selected_flag_set_once_per_question():
    qs = [question(f"q{i}", {f"t{j}": float((i * j) % 7) for j in range(6)}) for i in range(20)]
    chosen, stats = run(qs)
    assert len(chosen) == 20 == stats.questions_selected
    for q in qs:
        assert sum(c.selected for c in q.candidates) == 1


def test_lowest_nll_ignores_similarity():
    q = Question("q", [cand("q", "a", score=1.0, nll=2.0), cand("q", "b", score=5.0, nll=1.0)])
    assert run([q], strategy="lowest-nll")[0][0].teacher == "b"
    assert run([Question("q", list(q.candidates))], strategy="argmin")[0][0].teacher == "a"


def test_fixed_and_strongest_teacher():
    qs = [question("q1", {"a": 1.0, "b": 2.0}), question("q2", {"b": 1.0})]
    qs[0].candidates.append(Candidate("q1", "c", "x", "y", verified=False, skip_reason="not_verified"))
    chosen, stats = run(qs, strategy="teacher:a")
    assert [c.teacher for c in chosen] == ["a"] and stats.questions_dropped == {"teacher_has_no_valid_answer": 1}
    chosen, _ = run([question("q1", {"a": 1.0, "b": 2.0}), question("q2", {"b": 1.0})], strategy="strongest")
    assert [c.teacher for c in chosen] == ["b", "b"]  # b answered every question


@pytest.mark.parametrize("kw, msg", [
    ({"strategy": "best"}, "unknown strategy"),
    ({"group": 6}, "--group"),
    ({"groups": 0}, "--groups"),
    ({"small_policy": "ignore"}, "policy"),
    ({"strategy": "teacher:zed"}, "not in the corpus"),
])
def test_bad_settings_raise(kw, msg):
    with pytest.raises(SelectionError, match=msg):
        run([question("q", {"a": 1.0})], **kw)
