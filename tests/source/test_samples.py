"""Several samples per teacher: rows with the same (question, teacher) and different answers are all
kept, numbered by `sample`, and the teacher keeps its name; exact repeats are dropped and counted."""

from __future__ import annotations

import json
from dataclasses import replace

import pyarrow.parquet as pq
import pytest

from scas_hub import PipelineStats, ScoringConfig, SelectionConfig, curate, load_questions, reselect
from scas_hub.source import load_builder
from scas_hub.testing.corpus import write_rows


def row(i, teacher, answer, instruction="What is 6*7?"):
    return {
        "id": i,
        "source_dataset": "s",
        "teacher_name": teacher,
        "instruction": instruction,
        "teacher_output": answer,
        "reference_answer": "42",
    }


def sample_text(teacher: str, k: int) -> str:
    return f"Sample {k} of {teacher}: " + "six times seven " * (1 + 3 * k) + "= \\boxed{42}"


def long_corpus_rows() -> list[dict]:
    """2 teachers x 4 distinct samples of question 0 (interleaved), an exact repeat of a's sample 1,
    and question 1 with one answer each."""
    rows = [row(0, t, sample_text(t, k)) for k in range(4) for t in ("a", "b")]
    rows.append(row(0, "a", sample_text("a", 1)))
    rows += [row(1, "a", "1+1 = \\boxed{2}", "What is 1+1?"), row(1, "b", "It is \\boxed{2}.", "What is 1+1?")]
    return rows


def test_long_corpus_keeps_every_sample_and_drops_exact_repeats(tmp_path):
    write_rows(long_corpus_rows(), tmp_path / "corpus" / "mixed.jsonl")
    stats = PipelineStats()
    _, questions = load_questions(str(tmp_path / "corpus"), None, None, stats, "trusted")
    usable = [c for c in questions[0].candidates if c.skip_reason is None]
    assert len(usable) == 8
    assert sorted((c.teacher, c.sample) for c in usable) == [(t, k) for t in ("a", "b") for k in range(4)]
    assert all(c.answer == sample_text(c.teacher, c.sample) for c in usable)
    assert (stats.rows_in, dict(stats.skipped), stats.skipped_by_teacher) == (
        11,
        {"duplicate_row": 1},
        {"a": {"duplicate_row": 1}},
    )


@pytest.fixture(scope="module")
def curated(tmp_path_factory, tiny_qwen_dir):
    root = tmp_path_factory.mktemp("samples")
    write_rows(long_corpus_rows(), root / "corpus" / "mixed.jsonl")
    result = curate(
        str(tiny_qwen_dir),
        str(root / "corpus"),
        root / "teacher-b",
        verification="trusted",
        scoring=ScoringConfig(progress=False, score_cache=False),
        selection=SelectionConfig(strategy="teacher:b"),
    )
    return root, result


def lowest(rows, teacher, question_id="s/0"):
    mine = [r for r in rows if r["teacher"] == teacher and r["question_id"] == question_id]
    return min(mine, key=lambda r: r["scas_score"])


def test_teacher_strategy_picks_that_teachers_lowest_score_sample(curated):
    root, result = curated
    out = root / "teacher-b"
    candidates = pq.read_table(out / "candidates").to_pylist()
    assert len(candidates) == 10 and {r["teacher"] for r in candidates} == {"a", "b"}
    assert sorted((r["teacher"], r["sample"]) for r in candidates if r["question_id"] == "s/0") == [
        (t, k) for t in ("a", "b") for k in range(4)
    ]
    # the samples really differ in score, so "the lowest" is a real choice
    assert len({r["scas_score"] for r in candidates if r["teacher"] == "b" and r["question_id"] == "s/0"}) == 4
    best = lowest(candidates, "b")
    selected = {r["question_id"]: r for r in pq.read_table(out / "data").to_pylist()}
    assert (selected["s/0"]["teacher"], selected["s/0"]["sample"]) == ("b", best["sample"])
    assert selected["s/0"]["messages"][2]["content"] == sample_text("b", best["sample"])
    assert [r for r in candidates if r["selected"] and r["question_id"] == "s/0"][0]["sample"] == best["sample"]


def test_per_teacher_table_counts_samples(curated):
    root, result = curated
    stats = json.loads((root / "teacher-b" / "selection_stats.json").read_text())
    table = {r["teacher"]: r for r in stats["teachers"]}
    assert {t: (r["candidates"], r["selected"]) for t, r in table.items()} == {"a": (5, 0), "b": (5, 2)}
    assert stats["skipped"] == {"duplicate_row": 1}
    card = (root / "teacher-b" / "README.md").read_text()
    assert "| `a` | 5 | 0 |" in card and "| `b` | 5 | 2 |" in card
    assert "`teacher`, `sample`" in card


def test_reselection_round_trips_samples_and_strongest_takes_the_lowest_sample(curated):
    root, _ = curated
    out = root / "strongest-a"
    reselect(root / "teacher-b", out, selection=SelectionConfig(strategy="strongest", teacher_ranking=["a"]))
    key = ("question_id", "teacher", "sample", "scas_score")
    before, after = (pq.read_table(d / "candidates").to_pylist() for d in (root / "teacher-b", out))
    assert [tuple(r[k] for k in key) for r in after] == [tuple(r[k] for k in key) for r in before]
    selected = {r["question_id"]: r for r in pq.read_table(out / "data").to_pylist()}
    assert (selected["s/0"]["teacher"], selected["s/0"]["sample"]) == ("a", lowest(before, "a")["sample"])


def test_old_dataset_without_sample_column_reads_as_sample_zero(curated, tmp_path):
    import shutil

    root, _ = curated
    old = tmp_path / "old"
    shutil.copytree(root / "teacher-b", old)
    for path in (old / "candidates").glob("*.parquet"):
        table = pq.read_table(path)
        pq.write_table(table.drop_columns(["sample"]), path)
    reselect(old, tmp_path / "again", selection=SelectionConfig(strategy="teacher:b"))
    fresh = pq.read_table(root / "teacher-b" / "data").to_pylist()
    again = pq.read_table(tmp_path / "again" / "data").to_pylist()
    assert {r["sample"] for r in again} == {0}
    # the same answers are selected: samples stay apart by their text
    assert [r["messages"] for r in again] == [r["messages"] for r in fresh]


def openr1_row(uuid, problem, answer, generations, flags):
    return {
        "problem": problem,
        "solution": "...",
        "answer": answer,
        "uuid": uuid,
        "generations": generations,
        "correctness_math_verify": flags,
        "is_reasoning_complete": [True] * len(generations),
    }


def test_openr1_shaped_corpus_one_teacher_with_samples(tmp_path, tiny_qwen_dir):
    rows = [
        openr1_row("u-1", "Solve x+1=3.", "2", ["<think>x is 2</think> \\boxed{2}", "x = \\boxed{2}"], [True, True]),
        openr1_row(
            "u-2",
            "Compute 2^5.",
            "32",
            ["\\boxed{32}", "\\boxed{23}", "Two to the fifth: \\boxed{32}.", "32, so \\boxed{32}"],
            [True, False, True, True],
        ),
    ]
    write_rows(rows, tmp_path / "data" / "train-00000-of-00001.parquet")
    recipe = replace(load_builder("openr1_math"), repo_id=None, revision=None, local_path=str(tmp_path))
    result = curate(
        str(tiny_qwen_dir),
        recipe,
        tmp_path / "out",
        scoring=ScoringConfig(progress=False, score_cache=False),
        selection=SelectionConfig(strategy="teacher:DeepSeek-R1"),
    )
    assert result.stats["questions_selected"] == 2
    assert result.stats["skipped_by_teacher"] == {"DeepSeek-R1": {"not_verified": 1}}
    assert [(r["teacher"], r["candidates"]) for r in result.stats["teachers"]] == [("DeepSeek-R1", 5)]
    candidates = pq.read_table(tmp_path / "out" / "candidates").to_pylist()
    assert sorted((r["question_id"], r["sample"]) for r in candidates) == [
        ("default/u-1", 0),
        ("default/u-1", 1),
        ("default/u-2", 0),
        ("default/u-2", 2),
        ("default/u-2", 3),
    ]
    selected = {r["question_id"]: r for r in pq.read_table(tmp_path / "out" / "data").to_pylist()}
    for qid in ("default/u-1", "default/u-2"):
        assert selected[qid]["sample"] == lowest(candidates, "DeepSeek-R1", qid)["sample"]
