"""Selection rules, including questions with fewer candidates than groups."""

from __future__ import annotations

import pytest

from scas_hub import Candidate, PipelineStats, ProxyComponents, Question, SelectionConfig, SelectionError, select
from scas_hub.select import group_of, rank, strongest_teacher, teacher_order, verified_answers


def cand(qid: str, teacher: str, score: float, nll: float | None = None) -> Candidate:
    # with lam=0 and sim_aa=1, scas_score == answer_mean_nll**2 == score
    c = Candidate(qid, teacher, "q?", f"answer by {teacher}")
    c.score = ProxyComponents(
        answer_mean_nll=score**0.5,
        question_mean_nll=1.0,
        sim_aa=1.0,
        sim_aq=0.0,
        n_answer_tokens=3,
        n_question_tokens=3,
    )
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
    chosen, stats = run(
        [question("q1", {"a": 1.0}), question("q2", {f"t{i}": i for i in range(5)})], small_policy="drop"
    )
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


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"strategy": "best"}, "unknown strategy"),
        ({"group": 6}, "--group"),
        ({"groups": 0}, "--groups"),
        ({"small_policy": "ignore"}, "policy"),
        ({"strategy": "teacher:zed"}, "not in the corpus"),
    ],
)
def test_bad_settings_raise(kw, msg):
    with pytest.raises(SelectionError, match=msg):
        run([question("q", {"a": 1.0})], **kw)


# ---- every strategy: deterministic for a seed, independent of input order, ties by teacher name ----

STRATEGIES = ["scas", "argmin", "lowest-nll", "random", "strongest", "teacher:t1"]


def corpus_with_ties(n: int = 48) -> list[Question]:
    """Questions whose candidates share scores and NLLs, so every tie-break rule is exercised."""
    qs = []
    for i in range(n):
        qs.append(
            Question(
                f"q{i}",
                [cand(f"q{i}", f"t{j}", score=float((i + j) % 3), nll=1.0 + (j % 2)) for j in range(1 + i % 12)],
            )
        )
    return qs


def picks(questions: list[Question], **kw) -> dict[str, str]:
    chosen, _ = run(questions, **kw)
    return {c.question_id: c.teacher for c in chosen}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_strategy_is_deterministic_and_ignores_input_order(strategy):
    import random as _random

    reference = picks(corpus_with_ties(), strategy=strategy, seed=3)
    assert reference == picks(corpus_with_ties(), strategy=strategy, seed=3)
    shuffled = corpus_with_ties()
    rng = _random.Random(0)
    rng.shuffle(shuffled)
    for q in shuffled:
        rng.shuffle(q.candidates)
    assert picks(shuffled, strategy=strategy, seed=3) == reference


@pytest.mark.parametrize("strategy", ["scas", "random"])
def test_seeded_strategies_depend_on_the_seed(strategy):
    assert picks(corpus_with_ties(), strategy=strategy, seed=1) != picks(corpus_with_ties(), strategy=strategy, seed=2)


@pytest.mark.parametrize("strategy", ["argmin", "lowest-nll", "strongest", "teacher:t1"])
def test_unseeded_strategies_ignore_the_seed(strategy):
    assert picks(corpus_with_ties(), strategy=strategy, seed=1) == picks(corpus_with_ties(), strategy=strategy, seed=2)


def test_scas_tie_on_the_group_boundary_goes_by_teacher_name():
    # M=10, G=5: ranks 1-2 form group 1; "b" and "a" tie for rank 2, "a" wins it
    scores = {"t0": 0.0, "b": 1.0, "a": 1.0, **{f"u{i}": 2.0 + i for i in range(7)}}
    drawn = {picks([question("q", scores)], seed=s)["q"] for s in range(40)}
    assert drawn == {"t0", "a"}


def test_nearest_group_tie_prefers_the_lower_cost_group():
    # M=3, G=5: ranks fall in groups 2, 4, 5; group 3 is empty and 2 and 4 are equally near
    chosen, stats = run([question("q", {"a": 1.0, "b": 2.0, "c": 3.0})], group=3)
    assert chosen[0].teacher == "a" and stats.policy_applied == {"nearest_group": 1}


def test_argmin_exact_tie_goes_by_teacher_name():
    assert picks([question("q", {"b": 1.0, "a": 1.0, "c": 2.0})], strategy="argmin") == {"q": "a"}


def test_lowest_nll_tie_goes_by_teacher_name_not_score():
    q = Question(
        "q",
        [cand("q", "b", score=0.1, nll=1.5), cand("q", "a", score=9.0, nll=1.5), cand("q", "c", score=0.0, nll=2.0)],
    )
    assert picks([q], strategy="lowest-nll") == {"q": "a"}


def test_nan_cost_sorts_last():
    q = Question("q", [cand("q", "a", score=float("nan")), cand("q", "b", score=5.0)])
    assert [c.teacher for c in rank(q.scored, 0.0)] == ["b", "a"]
    assert picks([q], strategy="argmin") == {"q": "b"}


def test_random_is_uniform_over_the_candidates():
    counts = {"a": 0, "b": 0, "c": 0}
    for s in range(300):
        counts[picks([question("q", {"a": 1.0, "b": 2.0, "c": 3.0})], strategy="random", seed=s)["q"]] += 1
    assert all(70 <= n <= 130 for n in counts.values()), counts


# ---- strongest: verified answers in the corpus, or a ranking the user gives ----


def strongest_corpus() -> list[Question]:
    """Verified answers: a 3 (one set aside by scoring, still verified), b 3, c 2 (+1 not verified)."""
    qs = [
        question("q1", {"a": 1.0, "b": 2.0, "c": 3.0}),
        question("q2", {"b": 1.0, "c": 0.5}),
        question("q3", {"a": 1.0, "b": 2.0}),
    ]
    qs[1].candidates.append(Candidate("q2", "a", "x", "long answer", skip_reason="too_long"))
    qs[2].candidates.append(Candidate("q3", "c", "x", "wrong", verified=False, skip_reason="not_verified"))
    qs[2].candidates.append(Candidate("q3", "d", "x", "same text", skip_reason="duplicate_answer"))
    return qs


def test_verified_answers_count_scoring_skips_but_not_verification_skips():
    counts = verified_answers(c for q in strongest_corpus() for c in q.candidates)
    assert counts == {"a": 3, "b": 3, "c": 2, "d": 0}
    assert strongest_teacher(counts) == ["a", "b", "c"]  # a and b tie on 3: by name; d has none


def test_strongest_picks_best_available_teacher_and_records_order():
    qs = strongest_corpus()
    assert teacher_order(qs, SelectionConfig(strategy="strongest")) == ["a", "b", "c"]
    # q2: a was set aside, so b
    assert picks(strongest_corpus(), strategy="strongest") == {"q1": "a", "q2": "b", "q3": "a"}


def test_strongest_with_a_user_ranking():
    got = picks(strongest_corpus(), strategy="strongest", teacher_ranking=("c", "b", "a"))
    assert got == {"q1": "c", "q2": "c", "q3": "b"}
    # a partial ranking: the listed teachers first, then the others by verified answers
    assert strongest_teacher({"a": 3, "b": 3, "c": 2}, ["c"]) == ["c", "a", "b"]
    assert picks(strongest_corpus(), strategy="strongest", teacher_ranking=("c",)) == {"q1": "c", "q2": "c", "q3": "a"}


def test_strongest_uses_given_counts_when_rows_are_missing():
    """Re-selection passes counts carried forward from the original run (rows not in `questions`)."""
    qs = [question("q1", {"a": 1.0, "b": 2.0})]
    chosen, _ = run(qs, strategy="strongest")
    assert chosen[0].teacher == "a"  # 1 each: by name
    stats = PipelineStats()
    chosen = select(
        [question("q1", {"a": 1.0, "b": 2.0})], SelectionConfig(strategy="strongest"), stats, verified={"a": 1, "b": 4}
    )
    assert chosen[0].teacher == "b"


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"strategy": "strongest", "teacher_ranking": ("a", "zed")}, "zed, not in the corpus"),
        ({"strategy": "strongest", "teacher_ranking": ("a", "a")}, "twice"),
        ({"strategy": "argmin", "teacher_ranking": ("a",)}, "only applies to --strategy strongest"),
        ({"strategy": "teacher:"}, "needs a teacher name"),
    ],
)
def test_bad_rankings_raise(kw, msg):
    with pytest.raises(SelectionError, match=msg):
        run([question("q", {"a": 1.0})], **kw)


def test_samples_of_one_teacher_are_ranked_by_score_then_sample_number_in_any_input_order():
    import itertools

    def samples():
        out = [cand("q", "a", 1.0), cand("q", "a", 1.0), cand("q", "a", 0.7), cand("q", "b", 0.5)]
        for k, c in zip([2, 0, 1, 0], out, strict=True):
            c.sample, c.answer = k, f"answer {k} by {c.teacher}"
        return out

    picks = set()
    for order in itertools.permutations(range(4)):
        cs = samples()
        q = Question("q", [cs[i] for i in order])
        assert [(c.teacher, c.sample) for c in rank(q.scored, 0.0)] == [("b", 0), ("a", 1), ("a", 0), ("a", 2)]
        got = tuple(
            (run([Question("q", list(q.candidates))], strategy=s, seed=3)[0][0].sample)
            for s in ("teacher:a", "random", "scas")
        )
        picks.add(got)
    # teacher:a takes a's lowest-score sample; random and scas draw the same sample whatever the order
    assert len(picks) == 1 and next(iter(picks))[0] == 1
