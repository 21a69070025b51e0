"""`scas-hub ablate` as a user runs it: each training seed of `random` trains on its own draw,
overlap is excluded by default, the arms are asked with the training data's system prompt, and the
README counts the answers cut at the token limit."""

from __future__ import annotations

import copy
import json

import pyarrow.parquet as pq
import pytest

from scas_hub.testing.corpus import synthetic_pool, write_pool

TRAINING_PROMPT = "Think first, then box the answer."


@pytest.fixture(scope="module")
def ablation(tiny_qwen_dir, tmp_path_factory):
    pytest.importorskip("trl")
    from scas_hub.cli import main

    rows = synthetic_pool(6, teachers=3, max_words=20, seed=5, subset="train", system=TRAINING_PROMPT)
    corpus = write_pool(rows, tmp_path_factory.mktemp("corpus"))
    bare = copy.deepcopy(rows)  # the same questions, without a system prompt of their own
    for teacher_rows in bare.values():
        for row in teacher_rows:
            row["system"] = ""
    eval_source = write_pool(bare, tmp_path_factory.mktemp("eval"))
    out = tmp_path_factory.mktemp("ablation") / "run"
    code = main(
        [
            "ablate",
            "--student",
            str(tiny_qwen_dir),
            "--source",
            str(corpus),
            "--eval",
            str(eval_source),
            "--strategies",
            "random",
            "--seeds",
            "2",
            "--limit",
            "2",
            "--max-new-tokens",
            "2",
            "--max-steps",
            "2",
            "--effective-batch",
            "1",
            "--no-baseline",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    return out


def _selected(folder) -> list[tuple[str, str]]:
    return sorted((r["question_id"], r["teacher"]) for r in pq.read_table(folder / "data").to_pylist())


def test_each_seed_of_random_trains_on_its_own_draw(ablation):
    first, second = ablation / "datasets" / "random", ablation / "datasets" / "random-selection-43"
    stats = [json.loads((f / "selection_stats.json").read_text()) for f in (first, second)]
    assert [s["selection"]["seed"] for s in stats] == [42, 43]
    assert _selected(first) != _selected(second)
    assert [q for q, _ in _selected(first)] == [q for q, _ in _selected(second)]  # the same questions
    trained_on = [
        json.loads((ablation / "arms" / "random" / f"seed-{s}.json").read_text())["training"]["dataset"]
        for s in (42, 43)
    ]
    assert trained_on[0]["commit"] != trained_on[1]["commit"]
    record = json.loads((ablation / "ablation.json").read_text())
    assert record["selection"]["per_training_seed"] == {"random": [42, 43]}


def test_overlap_is_excluded_by_default(ablation):
    record = json.loads((ablation / "ablation.json").read_text())
    assert record["exclude_overlap"] is True and record["excluded_from_training"]["rows"] == 6
    stats = json.loads((ablation / "datasets" / "random" / "selection_stats.json").read_text())
    assert stats["skipped"]["held_out"] == 6


def test_the_arms_are_asked_with_the_training_system_prompt(ablation):
    record = json.loads((ablation / "ablation.json").read_text())
    assert record["system_prompt"] == {"text": TRAINING_PROMPT, "source": "the training datasets' rows"}
    arm = json.loads((ablation / "arms" / "random" / "seed-42.json").read_text())
    assert arm["report"]["decoding"]["system_prompt"]["texts"] == [{"text": TRAINING_PROMPT, "questions": 2}]


def test_the_readme_counts_cut_answers_and_warns(ablation):
    record = json.loads((ablation / "ablation.json").read_text())
    random = record["strategies"]["random"]
    assert random["answers"] == 4 and random["cut_at_max_new_tokens"] == 4  # 2 tokens: every answer is cut
    assert random["accuracy_finished"] is None and "4 of 4 answers (100%) were cut" in random["cut_warning"]
    readme = (ablation / "README.md").read_text()
    assert "| cut answers | accuracy on finished |" in readme and "| 4 of 4 | - |" in readme
    assert "> **Warning (random)**: 4 of 4 answers (100%) were cut at 2 new tokens" in readme
    assert f"`{TRAINING_PROMPT}` (the training datasets' rows)" in readme
