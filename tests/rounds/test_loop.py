"""`run_rounds` / `scas-hub rounds`: score -> select -> publish -> train, twice, on a tiny student.
Round 2 is scored by the checkpoint trained on round 1; a crashed loop continues where it stopped
and ends with the same datasets; pushed rounds are versions v1 and v2 of one dataset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from datasets import load_dataset

from scas_hub.errors import ChatTemplateMismatchError
from scas_hub.publish.config import PublishConfig
from scas_hub.rounds import loop as loop_module
from scas_hub.rounds.loop import checkpoint_folder, round_folder, run_rounds
from scas_hub.select import SelectionConfig
from scas_hub.student.loading import resolve_student
from scas_hub.testing.corpus import synthetic_pool, write_pool
from scas_hub.train import TrainConfig

pytest.importorskip("trl")

ROOT = Path(__file__).resolve().parents[2]
TINY = TrainConfig(max_steps=2, effective_batch_size=2, save_steps=1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_pool(
        synthetic_pool(6, teachers=3, max_words=30, seed=21, subset="loop"), tmp_path_factory.mktemp("corpus")
    )


def loop(student, corpus, out, push=None):
    return run_rounds(
        str(student),
        2,
        out,
        source=str(corpus),
        selection=SelectionConfig(strategy="argmin"),
        publishing=PublishConfig(push=push),
        train_config=TINY,
        progress=False,
    )


REPO = "org/loop"


@pytest.fixture(scope="module")
def series(tiny_qwen_dir, corpus, tmp_path_factory, _fake_hub_server):
    """Two rounds pushed to the fake Hub (the module's tests after it read the repo as it was left)."""
    _fake_hub_server.reset()
    out = tmp_path_factory.mktemp("loop") / "rounds"
    return loop(tiny_qwen_dir, corpus, out, push=REPO)


def tables(folder: Path) -> dict[str, list[dict]]:
    return {config: pq.read_table(folder / config).to_pylist() for config in ("data", "candidates")}


def test_round_two_is_scored_with_the_checkpoint_trained_on_round_one(series, tiny_qwen_dir):
    out = series.out
    first = json.loads((round_folder(out, 1) / "selection_stats.json").read_text())
    second = json.loads((round_folder(out, 2) / "selection_stats.json").read_text())
    theta2 = resolve_student(str(checkpoint_folder(out, 1)))
    assert first["student"]["revision"] == resolve_student(str(tiny_qwen_dir)).revision
    assert second["student"]["revision"] == theta2.revision != first["student"]["revision"]
    assert second["student"]["repo_id"] == "local:round-1"
    before, after = (tables(round_folder(out, r))["candidates"] for r in (1, 2))
    assert [r["question_id"] for r in before] == [r["question_id"] for r in after]
    assert all(a["answer_mean_nll"] != b["answer_mean_nll"] for a, b in zip(after, before, strict=True))
    for r in (1, 2):
        rows = load_dataset(str(round_folder(out, r)), split="train")
        assert len(rows) == 6 and rows.column_names[:3] == ["question_id", "source_dataset", "messages"]
    facts = json.loads((checkpoint_folder(out, 2) / "training_facts.json").read_text())
    assert facts["student"]["revision"] == theta2.revision and facts["round"] == 2 and facts["steps"] == 2


def test_the_rounds_are_versions_v1_and_v2_of_one_dataset(series, _fake_hub_server):
    repo = _fake_hub_server.repo(REPO)
    assert set(repo.tags) == {"v1", "v2"} and repo.tags["v2"] == repo.branches["main"]
    for r, version in [(1, "v1"), (2, "v2")]:
        rows = load_dataset(REPO, split="train", revision=version)
        assert rows["question_id"] == [row["question_id"] for row in tables(round_folder(series.out, r))["data"]]
        stats = json.loads(_fake_hub_server.files(REPO, version)["selection_stats.json"])
        assert [e["round"] for e in stats["rounds"]] == list(range(1, r + 1))
        # each checkpoint was trained on exactly the pushed version
        dataset = json.loads((checkpoint_folder(series.out, r) / "training_facts.json").read_text())["dataset"]
        assert dataset == {"id": REPO, "version": version, "commit": repo.tags[version]}
    assert [r["dataset"]["version"] for r in series.rounds] == ["v1", "v2"]


def test_the_card_shows_training_and_the_rounds_figure(series):
    out = series.out
    record = json.loads((round_folder(out, 2) / "selection_stats.json").read_text())
    trained = json.loads((checkpoint_folder(out, 1) / "training_facts.json").read_text())
    assert [r["round"] for r in record["rounds"]] == [1, 2]
    training = record["rounds"][0]["training"]
    assert training == {
        "steps": 2,
        "final_loss": trained["final_loss"],
        "checkpoint": "local:round-1",
        "checkpoint_revision": record["student"]["revision"],
    }
    assert "training" not in record["rounds"][1]  # trained after this version was written
    card = (round_folder(out, 2) / "README.md").read_text()
    assert f"| 2 | {training['final_loss']:.4f} | `local:round-1` @ `{training['checkpoint_revision']}` |" in card
    assert "| not yet |" in card
    assert "![Teacher shares and changed selections per round](figures/rounds.png)" in card
    assert (round_folder(out, 2) / "figures" / "rounds.png").stat().st_size > 5_000
    summary = json.loads((out / "rounds.json").read_text())["rounds"]
    assert [r["training"]["final_loss"] for r in summary] == [r["training"]["final_loss"] for r in series.rounds]


def test_a_rerun_of_a_finished_loop_does_nothing_again(series, tiny_qwen_dir, corpus, monkeypatch, _fake_hub_server):
    def refuse(*args, **kwargs):
        raise AssertionError("a finished step ran again")

    stamps = {p: p.stat().st_mtime_ns for p in series.out.rglob("*") if p.is_file() and p.name != "rounds.json"}
    monkeypatch.setattr(loop_module, "curate", refuse)
    monkeypatch.setattr("scas_hub.train.run.SFTTrainer", refuse, raising=False)
    commits = len(_fake_hub_server.repo(REPO).commits)
    again = loop(tiny_qwen_dir, corpus, series.out, push=REPO)
    assert again.rounds == series.rounds
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}
    assert len(_fake_hub_server.repo(REPO).commits) == commits


@pytest.mark.slow
def test_a_crash_in_round_two_then_a_rerun_ends_identical_and_pushes_v1_v2(
    series, tiny_qwen_dir, corpus, tmp_path, fake_hub, monkeypatch
):
    from trl import SFTTrainer

    original, steps = SFTTrainer.training_step, []

    def crash_in_round_two(self, *args, **kwargs):
        steps.append(1)
        if len(steps) == 4 + 3:  # round 1: 2 steps x 2 micro-batches; round 2: crash in its second step
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    out = tmp_path / "rounds"
    monkeypatch.setattr(SFTTrainer, "training_step", crash_in_round_two)
    with pytest.raises(KeyboardInterrupt):
        loop(tiny_qwen_dir, corpus, out, push=REPO)
    monkeypatch.setattr(SFTTrainer, "training_step", original)
    assert set(fake_hub.repo(REPO).tags) == {"v1", "v2"}
    assert (checkpoint_folder(out, 2) / "trainer" / "checkpoint-1").is_dir()

    scored = []
    monkeypatch.setattr(loop_module, "curate", lambda *a, **k: scored.append(a))
    resumed = loop(tiny_qwen_dir, corpus, out, push=REPO)
    assert scored == []  # both rounds' scoring was finished: nothing is scored again
    facts = json.loads((checkpoint_folder(out, 2) / "training_facts.json").read_text())
    assert facts["resumed_from_step"] == 1 and facts["steps"] == 2
    assert [r["training"]["final_loss"] for r in resumed.rounds] == [r["training"]["final_loss"] for r in series.rounds]
    for r in (1, 2):
        assert tables(round_folder(out, r)) == tables(round_folder(series.out, r))

    assert set(fake_hub.repo(REPO).tags) == {"v1", "v2"}  # the rerun pushed nothing new


def test_a_checkpoint_with_another_chat_template_stops_the_loop(series, tiny_qwen_dir, corpus, tmp_path):
    import shutil

    out = tmp_path / "rounds"
    shutil.copytree(series.out, out)
    shutil.rmtree(round_folder(out, 2))
    record_path = round_folder(out, 1) / "selection_stats.json"
    record = json.loads(record_path.read_text())
    record["student"]["chat_template_sha256"] = "f" * 64
    record_path.write_text(json.dumps(record))
    with pytest.raises(ChatTemplateMismatchError, match="round 1 was scored with ffff"):
        loop(tiny_qwen_dir, corpus, out, push=REPO)
    assert not round_folder(out, 2).exists()


@pytest.mark.slow
def test_make_rounds_killed_mid_training_then_rerun_ends_identical(series, tiny_qwen_dir, corpus, tmp_path):
    """`make rounds` as a user runs it, killed with SIGKILL while round 2 trains, then run again."""
    out = tmp_path / "rounds"
    cmd = [
        "make",
        "-s",
        "-C",
        str(ROOT),
        "rounds",
        f"STUDENT={tiny_qwen_dir}",
        f"SOURCE={corpus}",
        f"OUT={out}",
        "ROUNDS=2",
        "MAX_STEPS=2",
        "STRATEGY=argmin",
        "ARGS=--no-progress --effective-batch 2 --save-steps 1",
    ]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = checkpoint_folder(out, 2) / "trainer" / "checkpoint-1"
    deadline = time.monotonic() + 900
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (checkpoint_folder(out, 2) / "training_facts.json").exists()
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "round  dataset" in rerun.stdout
    for r in (1, 2):
        assert tables(round_folder(out, r)) == tables(round_folder(series.out, r))
    facts = json.loads((checkpoint_folder(out, 2) / "training_facts.json").read_text())
    assert facts["final_loss"] == series.rounds[1]["training"]["final_loss"]
