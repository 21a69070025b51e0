"""Comparing selections (pure): teacher shares, agreement, and the summary and rounds tables."""

from __future__ import annotations

import pytest

from scas_hub.compare import Pick, agreement, format_shares, teacher_shares
from scas_hub.publish.summary import students_summary, summary_markdown
from scas_hub.rounds.context import card_rows

A = {"q1": Pick("a", "x"), "q2": Pick("b", "y"), "q3": Pick("a", "z"), "q4": Pick("c", "w")}


def test_teacher_shares_largest_first_ties_by_name():
    assert list(teacher_shares(A).items()) == [("a", 0.5), ("b", 0.25), ("c", 0.25)]
    assert format_shares(teacher_shares(A)) == "a 50.0%, b 25.0%, c 25.0%"


def test_agreement_counts_only_questions_selected_in_both():
    b = {"q1": Pick("a", "x"), "q2": Pick("a", "y2"), "q3": Pick("a", "other text"), "q9": Pick("a", "x")}
    agree = agreement(A, b)
    assert (agree.same, agree.compared) == (1, 3)  # same teacher with another answer text is a change
    assert agree.share == pytest.approx(1 / 3) and agree.changed_share == pytest.approx(2 / 3)
    assert agreement(A, {}).share is None and agreement(A, {}).changed_share is None


def test_summary_tables():
    b = {"q1": Pick("a", "x"), "q2": Pick("a", "y2")}
    summary = students_summary({"s1": A, "s2": b}, {"s1": {"questions_selected": 4}, "s2": {"questions_selected": 2}})
    assert summary["agreement"] == [{"students": ["s1", "s2"], "questions_compared": 2, "same_answer": 1, "share": 0.5}]
    md = summary_markdown(summary)
    assert "| `a` | 50.0% | 100.0% |" in md and "| `c` | 25.0% | 0.0% |" in md
    assert "| questions selected | 4 | 2 |" in md and "| `s1` vs `s2` | 2 | 1 | 50.0% |" in md


def test_round_rows():
    rounds = [
        {
            "round": 1,
            "student": {"name": "s", "repo_id": "org/s", "revision": "abc"},
            "teacher_shares": {"a": 1.0},
            "changed": None,
            "training": {
                "steps": 12,
                "final_loss": 0.123456,
                "checkpoint": "round-1",
                "checkpoint_revision": "local-1234",
            },
        },
        {
            "round": 2,
            "student": {"name": "s", "repo_id": "org/s", "revision": "def"},
            "teacher_shares": {"a": 0.75, "b": 0.25},
            "changed": {"questions_compared": 8, "questions_changed": 2, "share": 0.25},
        },
    ]
    assert card_rows(rounds) == [
        {
            "round": "1",
            "student": "org/s",
            "revision": "abc",
            "shares": "a 100.0%",
            "changed": "n/a",
            "steps": "12",
            "final_loss": "0.1235",
            "checkpoint": "`round-1` @ `local-1234`",
        },
        # the newest round's student is not trained yet when its dataset is written
        {
            "round": "2",
            "student": "org/s",
            "revision": "def",
            "shares": "a 75.0%, b 25.0%",
            "changed": "25.0% (2 of 8)",
            "steps": "n/a",
            "final_loss": "n/a",
            "checkpoint": "not yet",
        },
    ]
