"""Rounds: each round's checkpoint scores the corpus and writes the next version of the same dataset;
the card and `selection_stats.json` show every round so far."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pyarrow.parquet as pq
import pytest

from scas_hub import PublishConfig, PublishError, ScoringConfig, SelectionConfig, SelectionError, curate
from scas_hub.student.loading import resolve_student
from scas_hub.testing.corpus import synthetic_pool, write_pool
from scas_hub.testing.models import tiny_qwen2


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_pool(
        synthetic_pool(8, teachers=5, max_words=40, seed=11, subset="rounds"), tmp_path_factory.mktemp("corpus")
    )


@pytest.fixture(scope="module")
def checkpoints(tiny_qwen_dir, qwen_tokenizer, tmp_path_factory):
    """Two "rounds" of a student: the tiny model and another random init of the same shape."""
    second = tiny_qwen2(tmp_path_factory.mktemp("ckpt") / "round-2", seed=1, tokenizer=qwen_tokenizer)
    return tiny_qwen_dir, second


def run_round(student, corpus, out, n):
    return curate(
        str(student),
        str(corpus),
        out,
        round_number=n,
        scoring=ScoringConfig(progress=False),
        selection=SelectionConfig(strategy="argmin"),
    )


def selection(folder) -> dict[str, tuple[str, str]]:
    rows = pq.read_table(folder / "data").to_pylist()
    return {r["question_id"]: (r["teacher"], r["messages"][-1]["content"]) for r in rows}


@pytest.fixture(scope="module")
def two_rounds(checkpoints, corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("series") / "scas-student"
    first = run_round(checkpoints[0], corpus, out, 1)
    round1 = selection(out)
    second = run_round(checkpoints[1], corpus, out, 2)
    return out, first, second, round1, selection(out)


def test_round_one_records_itself(two_rounds, checkpoints):
    _, first, _, round1, _ = two_rounds
    [entry] = first.stats["rounds"]
    assert entry["round"] == 1 and entry["changed"] is None
    assert entry["student"]["revision"] == resolve_student(str(checkpoints[0])).revision
    counts = Counter(t for t, _ in round1.values())
    assert entry["teacher_shares"] == pytest.approx({t: n / len(round1) for t, n in counts.items()})


def test_round_two_compares_with_round_one(two_rounds, checkpoints):
    out, first, second, round1, round2 = two_rounds
    rounds = second.stats["rounds"]
    assert [r["round"] for r in rounds] == [1, 2]
    assert rounds[0] == first.stats["rounds"][0]
    assert rounds[1]["student"]["repo_id"] == f"local:{checkpoints[1].name}"
    for path in checkpoints:  # local paths stay on this machine
        assert str(path.resolve()) not in (out / "README.md").read_text()
        assert str(path.resolve()) not in (out / "selection_stats.json").read_text()
    common = round1.keys() & round2.keys()
    changed = sum(round1[q] != round2[q] for q in common)
    assert rounds[1]["changed"] == {
        "questions_compared": len(common),
        "questions_changed": changed,
        "share": pytest.approx(changed / len(common)),
    }
    assert 0 < changed < len(common)  # two random students disagree on some questions, not all
    assert json.loads((out / "selection_stats.json").read_text())["rounds"] == rounds
    card = (out / "README.md").read_text()
    assert "## Re-selection and rounds" in card
    assert f"| 1 | `{rounds[0]['student']['repo_id']}` | `{rounds[0]['student']['revision']}` |" in card
    assert f"{100 * changed / len(common):.1f}% ({changed} of {len(common)})" in card


def test_a_round_cannot_be_written_twice_or_without_its_predecessor(two_rounds, checkpoints, corpus, tmp_path):
    out = two_rounds[0]
    with pytest.raises(SelectionError, match="already holds round 2; pass --round 3"):
        run_round(checkpoints[1], corpus, out, 2)
    with pytest.raises(SelectionError, match="holds no scas-hub dataset"):
        run_round(checkpoints[1], corpus, tmp_path / "empty", 2)
    with pytest.raises(SelectionError, match="--round must be >= 1"):
        run_round(checkpoints[1], corpus, tmp_path / "empty", 0)
    with pytest.raises(PublishError, match="full repo id"):  # an org alone would name the repo per checkpoint
        curate(str(checkpoints[1]), str(corpus), out, round_number=3, publishing=PublishConfig(push="my-org"))


def test_a_dataset_built_without_rounds_counts_as_the_previous_round(two_rounds, checkpoints, corpus, tmp_path):
    plain = tmp_path / "plain"
    shutil.copytree(two_rounds[0], plain)
    record = json.loads((plain / "selection_stats.json").read_text())
    del record["rounds"]
    (plain / "selection_stats.json").write_text(json.dumps(record))
    result = run_round(checkpoints[0], corpus, plain, 3)
    rounds = result.stats["rounds"]
    assert [r["round"] for r in rounds] == [2, 3]
    assert rounds[0]["changed"] is None and rounds[0]["student"]["revision"] == record["student"]["revision"]
    # round 3 uses round 1's checkpoint again: it changes exactly the answers round 2 changed
    assert rounds[1]["changed"] == two_rounds[2].stats["rounds"][1]["changed"]


def test_a_checkpoint_saved_again_within_the_second_gets_a_new_tag(tmp_path):
    """The score cache keys a local checkpoint on its content tag: a retrained checkpoint written
    over the old one (same names, same sizes, same second) must not reuse the old scores."""
    import os

    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    weights = folder / "model.safetensors"
    weights.write_bytes(b"a" * 64)
    before = resolve_student(str(folder)).revision
    stat = weights.stat()
    weights.write_bytes(b"b" * 64)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000))  # a microsecond later
    assert resolve_student(str(folder)).revision != before
