"""`scas-hub train` as a user runs it: settings that cannot train are refused before any work (and leave
nothing behind), every reported step moves the weights, a finished folder is reused only for its own
settings, and the checkpoint stops where it was taught to."""

from __future__ import annotations

import json

import pytest

from scas_hub import ScoringConfig, SelectionConfig, curate
from scas_hub.cli import main
from scas_hub.testing.corpus import synthetic_pool, write_pool
from scas_hub.train.card import FACTS_FILENAME

pytest.importorskip("trl")


@pytest.fixture(scope="module")
def dataset(tiny_qwen_dir, tmp_path_factory):
    corpus = write_pool(
        synthetic_pool(4, teachers=2, max_words=20, seed=3, subset="v"), tmp_path_factory.mktemp("corpus")
    )
    out = tmp_path_factory.mktemp("curated") / "scas-tiny"
    curate(
        str(tiny_qwen_dir),
        str(corpus),
        out,
        scoring=ScoringConfig(progress=False),
        selection=SelectionConfig(strategy="argmin"),
    )
    return out


def run_train(dataset, student, out, *flags):
    return main(
        [
            "train",
            "--dataset",
            str(dataset),
            "--student",
            str(student),
            "--out",
            str(out),
            "--no-progress",
            "--effective-batch",
            "2",
            *flags,
        ]
    )


def weights(folder):
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-steps", "1"], "warm-up"),
        (["--max-steps", "2", "--learning-rate", "inf"], "--learning-rate must be a finite number"),
        (["--max-steps", "2", "--learning-rate", "nan"], "--learning-rate must be a finite number"),
        (["--max-steps", "2", "--learning-rate", "0"], "--learning-rate must be a finite number > 0"),
        (["--epochs", "inf"], "--epochs must be a finite number"),
        (
            ["--max-steps", "2", "--lr-scheduler", "bogus"],
            "unknown --lr-scheduler 'bogus'; choose one of linear, cosine",
        ),
        (["--max-steps", "2", "--lr-scheduler", "warmup_stable_decay"], "cannot run with scas-hub's settings"),
        (["--max-steps", "2", "--warmup-ratio", "1"], "--warmup-ratio must be in"),
    ],
)
def test_settings_that_cannot_train_are_refused_before_any_work(
    flags, message, dataset, tiny_qwen_dir, tmp_path, capsys
):
    out = tmp_path / "ckpt"
    assert run_train(dataset, tiny_qwen_dir, out, *flags) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # nothing is left to refuse the corrected rerun


def test_every_reported_step_moves_the_weights_and_the_checkpoint_stops_at_the_end_of_turn(
    dataset, tiny_qwen_dir, tmp_path, capsys
):
    from transformers import AutoTokenizer, GenerationConfig

    base = weights(tiny_qwen_dir)
    for flags, at_zero in ((["--max-steps", "2"], 1), (["--max-steps", "1", "--warmup-ratio", "0"], 0)):
        out = tmp_path / "-".join(flags)
        assert run_train(dataset, tiny_qwen_dir, out, *flags) == 0
        trained = weights(out)
        moved = [k for k in base if not (trained[k] == base[k]).all()]
        assert len(moved) == len(base), f"{set(base) - set(moved)} did not move with {flags}"
        # the card says which reported steps ran at learning rate 0 (the warm-up's first)
        assert json.loads((out / FACTS_FILENAME).read_text())["steps_at_zero_lr"] == at_zero
        assert ("the first 1 at learning rate 0" in (out / "README.md").read_text()) == bool(at_zero)
    facts = json.loads((out / FACTS_FILENAME).read_text())
    tokenizer = AutoTokenizer.from_pretrained(out)
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    eos = GenerationConfig.from_pretrained(out).eos_token_id
    assert eos[0] == end_of_turn and tokenizer.eos_token_id in eos and facts["eos_token_id"] == eos
    card = (out / "README.md").read_text()
    assert f"| stops at | token ids {', '.join(map(str, eos))}" in card


def test_a_finished_folder_with_other_settings_is_refused(dataset, tiny_qwen_dir, tmp_path, capsys):
    out = tmp_path / "ckpt"
    assert run_train(dataset, tiny_qwen_dir, out, "--max-steps", "2") == 0
    before = weights(out)
    capsys.readouterr()
    assert run_train(dataset, tiny_qwen_dir, out, "--max-steps", "2") == 0
    assert "Found finished" in capsys.readouterr().out
    for flags in (["--max-steps", "3"], ["--max-steps", "2", "--learning-rate", "3e-5"]):
        assert run_train(dataset, tiny_qwen_dir, out, *flags) == 2
        err = capsys.readouterr().err
        assert "holds a finished training run with other settings (config)" in err
    assert all((weights(out)[k] == before[k]).all() for k in before)


@pytest.mark.slow  # ~16 s: a full training run to divergence (make test-slow)
def test_a_run_that_diverges_is_not_saved(dataset, tiny_qwen_dir, tmp_path, capsys):
    out = tmp_path / "ckpt"
    assert (
        run_train(dataset, tiny_qwen_dir, out, "--max-steps", "3", "--warmup-ratio", "0", "--learning-rate", "1e38")
        == 2
    )
    err = capsys.readouterr().err
    assert "training diverged" in err and "Lower --learning-rate" in err
    assert not out.exists()
    assert run_train(dataset, tiny_qwen_dir, out, "--max-steps", "2") == 0  # the corrected rerun trains


@pytest.mark.slow  # ~12 s (make test-slow)
def test_train_warns_when_it_trains_longer_conversations_than_were_scored(tiny_qwen_dir, tmp_path, caplog):
    from scas_hub.train import TrainConfig, train

    corpus = write_pool(synthetic_pool(4, teachers=2, max_words=200, seed=4, subset="w"), tmp_path / "corpus")
    scored = curate(
        str(tiny_qwen_dir),
        str(corpus),
        tmp_path / "cut",
        scoring=ScoringConfig(progress=False, max_length=100, truncate=True, score_cache=False),
        selection=SelectionConfig(strategy="argmin"),
    )
    assert scored.stats["student"]["max_length"] == 100 and scored.stats["rows_truncated"] > 0
    with caplog.at_level("WARNING", logger="scas_hub.train"):
        result = train(
            scored.out,
            str(tiny_qwen_dir),
            tmp_path / "ckpt",
            progress=False,
            config=TrainConfig(max_steps=2, effective_batch_size=2),
        )
    longer = result.facts["rows_longer_than_scored"]
    assert longer > 0
    assert f"{longer} of {result.facts['rows']} conversations are longer than the 100 tokens" in caplog.text
    assert "pass --max-length 100" in caplog.text
    assert "(the dataset was scored at 100; " in (result.checkpoint / "README.md").read_text()
