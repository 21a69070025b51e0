"""Per-teacher JSONL sources (the published pool's layout) and the verify stage."""

from __future__ import annotations

import json

import pytest

from scas_hub import CorpusFormatError, PipelineStats, SourceError, load_questions
from scas_hub.source import list_builders, open_source
from scas_hub.testing.corpus import demo_rows, write_pool


def row(i, teacher, answer="42", instruction=None, **kw):
    return {
        "id": i,
        "source_dataset": "math",
        "teacher_name": teacher,
        "system": None,
        "instruction": instruction or f"question {i}?",
        "teacher_output": answer,
        "reference_answer": "42",
        "reference_solution": "",
        "is_common_correct": True,
        **kw,
    }


def test_pool_layout_with_subsets(tmp_path):
    write_pool({"a": [row(0, "a"), row(1, "a")], "b": [row(0, "b", "41+1")]}, tmp_path / "data" / "math")
    write_pool({"a": [row(0, "a")]}, tmp_path / "data" / "other")
    opened = open_source(str(tmp_path), subset="math")
    assert opened.info.subsets == ("math",)
    stats = PipelineStats()
    _, questions = load_questions(str(tmp_path), "math", None, stats)
    assert [q.question_id for q in questions] == ["math/0", "math/1"]
    assert [c.teacher for c in questions[0].candidates] == ["a", "b"]
    assert stats.rows_in == 3
    _, everything = load_questions(str(tmp_path), None, None, PipelineStats())
    assert sum(len(q.candidates) for q in everything) == 4


def test_flat_folder_and_teacher_from_filename(tmp_path):
    r = row(3, "ignored")
    del r["teacher_name"]
    write_pool({"gpt-x": [r]}, tmp_path)
    _, questions = load_questions(str(tmp_path), None, None, PipelineStats())
    assert questions[0].candidates[0].teacher == "gpt-x"


def test_broken_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(row(0, "t")) + "\n{not json\n")
    with pytest.raises(CorpusFormatError, match=r"t\.jsonl:2"):
        load_questions(str(tmp_path), None, None, PipelineStats())


def test_unknown_source_and_missing_subset(tmp_path):
    with pytest.raises(SourceError, match="not a local path"):
        open_source("no-such-builder")
    write_pool({"a": [row(0, "a")]}, tmp_path / "data" / "math")
    with pytest.raises(SourceError, match="available"):
        open_source(str(tmp_path), subset="geometry")


def test_missing_path_object_is_a_source_error(tmp_path):
    # a Path that does not exist is told like its text (it used to fail with a TypeError)
    with pytest.raises(SourceError, match="no such file or folder"):
        open_source(tmp_path / "no" / "such-folder")


def test_verify_counts_every_set_aside_row(tmp_path):
    rows = {
        "a": [row(0, "a"), row(1, "a", answer=""), row(2, "a", is_correct=False), row("", "a")],
        "b": [row(0, "b"), row(1, "b", instruction="a different question?")],
        "c": [
            row(0, "c", answer="another", is_common_correct=None),
            row(0, "c", answer="again", is_common_correct=None),
        ],
    }
    write_pool(rows, tmp_path)
    stats = PipelineStats()
    _, questions = load_questions(str(tmp_path), None, None, stats)
    assert stats.rows_in == 8
    assert dict(stats.skipped) == {
        "empty_answer": 1,
        "not_verified": 1,
        "missing_question_id": 1,
        "duplicate_answer": 1,
        "question_text_mismatch": 1,
        "unverifiable": 2,
    }
    valid = [c.teacher for q in questions for c in q.candidates if c.skip_reason is None]
    assert valid == ["a"]
    assert stats.skipped_by_teacher["b"] == {"duplicate_answer": 1, "question_text_mismatch": 1}
    assert stats.skipped_by_teacher["c"] == {"unverifiable": 2}  # two samples, neither verifiable


def test_builders_registry_and_demo():
    builders = list_builders()
    assert {"demo", "scas_pool", "ultrafeedback", "openr1_math", "am_distilled"} <= set(builders)
    assert builders["scas_pool"].subsets == ("hendrycks_math", "deepscaler")
    opened = open_source("demo")
    assert opened.info.synthetic and opened.info.subsets == ("demo",)
    n = sum(1 for _ in opened.candidates())
    assert n == sum(len(v) for v in demo_rows().values())
