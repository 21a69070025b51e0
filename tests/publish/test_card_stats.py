"""The card's numbers, computed from hand-made candidates whose scores are known exactly."""

from __future__ import annotations

import pytest

from scas_hub import Candidate, ProxyComponents
from scas_hub.testing.reference import agreement, answer_tokens, card_numbers, teacher_table

LAM = 0.5


def cand(
    q: str, teacher: str, nll: float | None = None, sim_aa: float = 1.0, tokens: int = 30, selected: bool = False
) -> Candidate:
    """With sim_aq = 0 and lambda = 0.5 the SCAS score is 0.5 * nll^2 * sim_aa."""
    c = Candidate(question_id=q, teacher=teacher, instruction=q, answer=f"{teacher}:{q}", selected=selected)
    if nll is None:
        c.verified, c.skip_reason = False, "not_verified"
    else:
        c.score = ProxyComponents(
            answer_mean_nll=nll,
            question_mean_nll=1.0,
            sim_aa=sim_aa,
            sim_aq=0.0,
            n_answer_tokens=tokens,
            n_question_tokens=5,
        )
    return c


@pytest.fixture
def candidates() -> list[Candidate]:
    return [
        # q1: scores a 2.0, b 0.5, c 1.125; argmin b, lowest NLL a; selected b
        cand("q1", "a", 1.0, 4.0),
        cand("q1", "b", 2.0, 0.25, tokens=10, selected=True),
        cand("q1", "c", 1.5),
        # q2: scores a 0.5, b 4.5; argmin and lowest NLL a; the selection drew b (e.g. group sampling)
        cand("q2", "a", 1.0),
        cand("q2", "b", 3.0, tokens=10, selected=True),
        # q3: only b answered
        cand("q3", "b", 1.0, 2.0, tokens=10, selected=True),
        # q4: b's answer failed verification, so a (3/3 verified) is the strongest teacher
        cand("q4", "a", 1.0, tokens=10, selected=True),
        cand("q4", "b"),
    ]


def test_teacher_table(candidates):
    rows = {r["teacher"]: r for r in teacher_table(candidates, LAM)}
    assert [r["teacher"] for r in teacher_table(candidates, LAM)] == ["b", "a", "c"]  # most selected first
    assert rows["b"] == pytest.approx(
        {
            "teacher": "b",
            "candidates": 3,
            "candidate_share": 3 / 7,
            "selected": 3,
            "share": 0.75,
            "mean_score": 2.0,
            "median_score": 1.0,
            "mean_answer_tokens": 10.0,
        }
    )
    assert (rows["a"]["selected"], rows["a"]["mean_score"], rows["a"]["median_score"]) == (1, 1.0, 0.5)
    assert (rows["c"]["selected"], rows["c"]["share"], rows["c"]["mean_score"]) == (0, 0.0, 1.125)


def test_agreement_with_simple_rules(candidates):
    result = agreement(candidates, LAM)
    assert result["questions"] == 4 and result["strongest_teacher"] == "a"
    rules = {r["rule"]: r for r in result["rules"]}
    assert [r["rule"] for r in result["rules"]] == ["selection", "argmin", "lowest-nll", "strongest"]
    assert (rules["argmin"]["same"], rules["lowest-nll"]["same"], rules["strongest"]["same"]) == (3, 2, 2)
    assert rules["argmin"]["share"] == 0.75 and rules["selection"]["share"] == 1.0
    assert rules["selection"]["mean_score"] == pytest.approx((0.5 + 4.5 + 1.0 + 0.5) / 4)
    assert rules["argmin"]["mean_score"] == pytest.approx((0.5 + 0.5 + 1.0 + 0.5) / 4)
    assert rules["strongest"]["mean_answer_tokens"] == pytest.approx((30 + 30 + 10 + 10) / 4)


def test_answer_length_selected_vs_all(candidates):
    lengths = answer_tokens(candidates)
    assert lengths["selected"] == {"mean": 10.0, "median": 10.0, "count": 4}
    assert lengths["all"]["count"] == 7 and lengths["all"]["mean"] == pytest.approx(130 / 7)
    assert set(card_numbers(candidates, LAM)) == {"teachers", "agreement", "answer_tokens"}
