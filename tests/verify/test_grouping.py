"""Grouping by question in bounded memory: spilled runs give exactly the in-memory result."""

from __future__ import annotations

import random

from scas_hub import Candidate, PipelineStats
from scas_hub.verify import QuestionGrouper, iter_verified
from scas_hub.verify.grouping import natural_key


def shuffled_candidates(n_questions=40, teachers=5, seed=0):
    rng = random.Random(seed)
    rows = [
        Candidate(f"math/{q}", f"t{t}", f"question {q}?", f"answer {q}.{t}", verified=(q + t) % 7 != 0)
        for q in range(n_questions)
        for t in range(teachers)
    ]
    rng.shuffle(rows)
    return rows


def test_spilled_runs_match_in_memory_grouping(tmp_path):
    rows = shuffled_candidates()
    in_memory = list(QuestionGrouper().group(rows))
    spilling = QuestionGrouper(max_rows=7, tmp_dir=tmp_path)
    spilled = list(spilling.group(rows))
    assert spilling.runs_spilled == len(rows) // 7 + 1
    assert [[(c.question_id, c.teacher) for c in g] for g in spilled] == [
        [(c.question_id, c.teacher) for c in g] for g in in_memory
    ]
    # natural order of ids, source order within a question
    assert [g[0].question_id for g in spilled] == [f"math/{q}" for q in range(40)]
    order = {id(c): i for i, c in enumerate(rows)}
    first = [c for c in rows if c.question_id == "math/3"]
    assert [c.teacher for c in spilled[3]] == [c.teacher for c in sorted(first, key=lambda c: order[id(c)])]
    assert list(tmp_path.iterdir()) == []  # runs are removed


def test_spill_by_text_size_and_stats_unchanged(tmp_path):
    rows = shuffled_candidates(seed=1)
    a, b = PipelineStats(), PipelineStats()
    small = [
        (q.question_id, [c.skip_reason for c in q.candidates])
        for q in iter_verified(rows, a, rule="flags", grouper=QuestionGrouper(max_chars=200, tmp_dir=tmp_path))
    ]
    large = [(q.question_id, [c.skip_reason for c in q.candidates]) for q in iter_verified(rows, b, rule="flags")]
    assert small == large and a.to_dict() == b.to_dict()
    assert a.rows_in == 200 and a.skipped == {"not_verified": 28}


def test_natural_key_orders_numbers_as_numbers():
    ids = ["b/10", "a/2", "b/9", "a/10", "a/02", "x"]
    assert sorted(ids, key=lambda i: (natural_key(i), i)) == ["a/02", "a/2", "a/10", "b/9", "b/10", "x"]
