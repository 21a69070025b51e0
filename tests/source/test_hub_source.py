"""A Hub dataset as the source: teacher files are pulled at a revision resolved to a commit SHA (fake Hub)."""

from __future__ import annotations

import json

import pytest

from scas_hub import PipelineStats, SourceError, load_questions
from scas_hub.source import open_source


def jsonl(teacher: str, ids: range, subset: str = "math") -> str:
    return "".join(
        json.dumps(
            {
                "id": i,
                "source_dataset": subset,
                "teacher_name": teacher,
                "system": None,
                "instruction": f"question {i}?",
                "teacher_output": f"{teacher} says 42",
                "reference_answer": "42",
                "is_common_correct": True,
            }
        )
        + "\n"
        for i in ids
    )


@pytest.fixture
def pool(fake_hub):
    first = fake_hub.create_repo(
        "org/pool",
        files={
            "data/math/a.jsonl": jsonl("a", range(3)),
            "data/math/b.jsonl": jsonl("b", range(2)),
            "data/other/a.jsonl": jsonl("a", range(5), subset="other"),
            "README.md": "# pool\n",
        },
    )
    fake_hub.tag("org/pool", "v1")
    second = fake_hub.commit_files("org/pool", {"data/math/c.jsonl": jsonl("c", range(3))})
    return first, second


def test_hub_source_pins_the_resolved_commit(fake_hub, pool):
    first, second = pool
    latest = open_source("org/pool", subset="math")
    assert latest.info.repo_id == "org/pool" and latest.info.revision == second
    assert latest.info.subsets == ("math",)
    assert sorted(c.teacher for c in latest.candidates()) == ["a"] * 3 + ["b"] * 2 + ["c"] * 3

    pinned = open_source("org/pool", subset="math", revision="v1")
    assert pinned.info.revision == first
    stats = PipelineStats()
    _, questions = load_questions("org/pool", "math", "v1", stats)
    assert stats.rows_in == 5 and [q.question_id for q in questions] == ["math/0", "math/1", "math/2"]
    # only the requested subset's files were fetched
    assert not any("/other/" in r.path for r in fake_hub.requests if "/resolve/" in r.path)


def test_hub_source_errors_say_what_to_do(fake_hub, pool):
    with pytest.raises(SourceError, match="not found on the Hub"):
        open_source("org/missing", subset="math")
    with pytest.raises(SourceError, match="available"):
        open_source("org/pool", subset="geometry")
