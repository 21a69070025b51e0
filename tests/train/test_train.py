"""`train`: SFT on a curated folder with TRL. The tokens trained on are the tokens scored; the
checkpoint loads, scores, resumes after a crash and pushes to a model repo."""

from __future__ import annotations

import hashlib
import json
import sys

import pyarrow.parquet as pq
import pytest

from scas_hub import ScoringConfig, SelectionConfig, curate
from scas_hub.errors import ChatTemplateMismatchError, TrainError
from scas_hub.records import Candidate
from scas_hub.student.chat import ChatEncoder, chat_template_sha256, special_token_ids
from scas_hub.student.loading import resolve_student
from scas_hub.testing.corpus import synthetic_pool, write_pool
from scas_hub.train import TrainConfig, encode_for_training, to_prompt_completion, train
from scas_hub.train.card import FACTS_FILENAME

pytest.importorskip("trl")

TINY = TrainConfig(max_steps=2, effective_batch_size=2, save_steps=1)

CANDIDATES = [
    Candidate("q1", "t", "What is 6 x 7?", "6 x 7 = 42, so the answer is \\boxed{42}."),
    Candidate(
        "q2",
        "t",
        "Solve x + 1 = 3.",
        "Subtract 1:\n\n  x = 2\n\nAnswer: $\\boxed{2}$  ",
        system="You are a careful math tutor.",
    ),
    Candidate("q3", "t", "Déjà vu? Answer in one word.", " Oui — naïvement.\n"),
]


def trained_sequences(tokenizer, model_dir, candidates, tmp_path, *, trl_tokenizes: bool = False):
    """What TRL's SFTTrainer trains on for each candidate: input ids and labels after its dataset
    preparation and its data collator (labels == -100 carry no loss). The rows are tokenized as
    `train` does (`encode_for_training`), or by TRL itself from the prompt-completion rows."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTTrainer

    rows = [to_prompt_completion(c.messages()) for c in candidates]
    dataset = Dataset.from_list(rows) if trl_tokenizes else encode_for_training(rows, tokenizer)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    trainer = SFTTrainer(
        model=model,
        args=TrainConfig().sft_config(tmp_path / "trainer", progress=False),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    batches = [trainer.data_collator([trainer.train_dataset[i]]) for i in range(len(rows))]
    return [(b["input_ids"][0].tolist(), b["labels"][0].tolist()) for b in batches]


def check_trained_tokens_are_scored_tokens(tokenizer, sequences):
    special = special_token_ids(tokenizer)
    encoded = ChatEncoder(tokenizer).encode(CANDIDATES)
    for enc, (input_ids, labels) in zip(encoded, sequences, strict=True):
        assert input_ids == enc.input_ids  # the same rendered conversation, token for token
        trained = [i for i, label in enumerate(labels) if label != -100]
        assert trained == list(range(enc.n_prompt, len(enc.input_ids)))  # loss exactly on the answer region
        assert [labels[i] for i in trained] == enc.answer_ids
        # the scorer leaves special tokens (<|im_end|>) out of A; training learns to emit them
        scored = [t for t in enc.answer_ids if t not in special]
        assert [t for t in (labels[i] for i in trained) if t not in special] == scored
        assert len(scored) > 3 and any(labels[i] in special for i in trained)


@pytest.mark.parametrize("student", ["smollm2", "tiny_qwen"])
def test_the_tokens_trained_on_are_the_tokens_scored(student, request, tiny_qwen_dir, tmp_path):
    tokenizer = request.getfixturevalue(student)[1]
    check_trained_tokens_are_scored_tokens(tokenizer, trained_sequences(tokenizer, tiny_qwen_dir, CANDIDATES, tmp_path))


def test_conversations_over_max_length_are_counted_as_trl_cuts_and_drops_them(tiny_qwen, tiny_qwen_dir, tmp_path):
    from transformers import AutoModelForCausalLM
    from trl import SFTTrainer

    from scas_hub.train.data import over_length

    tokenizer = tiny_qwen[1]
    rows = [to_prompt_completion(c.messages()) for c in CANDIDATES]
    encoded = encode_for_training(rows, tokenizer)
    lengths = [len(ids) for ids in encoded["input_ids"]]
    starts = [mask.index(1) for mask in encoded["completion_mask"]]
    limit = sorted(starts)[1]  # one prompt fills the limit (left out), others are cut inside the answer
    cut, left_out = over_length(encoded, limit)
    assert (cut, left_out) == (sum(n > limit for n in lengths), sum(s >= limit for s in starts)) and left_out >= 1
    args = TrainConfig(max_length=limit).sft_config(tmp_path / "trainer", progress=False)
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_qwen_dir),
        args=args,
        train_dataset=encoded,
        processing_class=tokenizer,
    )
    assert len(trainer.train_dataset) == len(rows) - left_out
    assert max(len(ids) for ids in trainer.train_dataset["input_ids"]) == limit


@pytest.mark.slow  # datasets hashes the whole tokenizer to fingerprint TRL's tokenizing map (a minute here)
@pytest.mark.parametrize("student", ["smollm2", "tiny_qwen"])
def test_trl_tokenizes_the_prompt_completion_rows_to_the_scored_tokens_too(student, request, tiny_qwen_dir, tmp_path):
    """Plain TRL on `prompt`/`completion` rows trains on the same tokens (a user's own SFT script)."""
    tokenizer = request.getfixturevalue(student)[1]
    check_trained_tokens_are_scored_tokens(
        tokenizer, trained_sequences(tokenizer, tiny_qwen_dir, CANDIDATES, tmp_path, trl_tokenizes=True)
    )


@pytest.fixture(scope="module")
def curated(tiny_qwen_dir, tmp_path_factory):
    corpus = write_pool(
        synthetic_pool(6, teachers=3, max_words=30, seed=5, subset="train"), tmp_path_factory.mktemp("corpus")
    )
    out = tmp_path_factory.mktemp("curated") / "scas-tiny"
    curate(
        str(tiny_qwen_dir),
        str(corpus),
        out,
        scoring=ScoringConfig(progress=False),
        selection=SelectionConfig(strategy="argmin"),
    )
    return corpus, out


@pytest.fixture(scope="module")
def trained(curated, tiny_qwen_dir, tmp_path_factory):
    return train(
        curated[1], str(tiny_qwen_dir), tmp_path_factory.mktemp("ckpt") / "round-1", config=TINY, progress=False
    )


def test_a_trained_checkpoint_loads_and_scores(trained, curated, tiny_qwen_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    assert trained.steps == 2 and trained.final_loss == pytest.approx(trained.facts["final_loss"])
    assert 0 < trained.final_loss < 20
    ckpt = trained.checkpoint
    assert not (ckpt / "trainer").exists()  # optimizer state is dropped once the run is finished
    AutoModelForCausalLM.from_pretrained(ckpt)
    assert resolve_student(str(ckpt)).revision != resolve_student(str(tiny_qwen_dir)).revision
    before = pq.read_table(curated[1] / "candidates").to_pylist()
    rescored = curate(
        str(ckpt),
        str(curated[0]),
        tmp_path / "rescored",
        scoring=ScoringConfig(progress=False),
        selection=SelectionConfig(strategy="argmin"),
    )
    after = pq.read_table(rescored.out / "candidates").to_pylist()
    assert len(after) == len(before)
    assert all(a["answer_mean_nll"] != b["answer_mean_nll"] for a, b in zip(after, before, strict=True))
    assert rescored.stats["student"]["repo_id"] == f"local:{ckpt.name}"


def test_the_card_says_what_was_trained_on_what(trained, curated, tiny_qwen_dir):
    facts = json.loads((trained.checkpoint / FACTS_FILENAME).read_text())
    card = (trained.checkpoint / "README.md").read_text()
    record = json.loads((curated[1] / "selection_stats.json").read_text())
    assert facts["dataset"] == trained.dataset.to_dict() and trained.dataset.commit.startswith("local-")
    assert facts["student"]["revision"] == record["student"]["revision"]
    assert facts["rows"] == record["questions_selected"]
    data = pq.read_table(curated[1] / "data").to_pylist()
    prompts = {row["messages"][0]["content"] for row in data}
    assert len(prompts) == 1 and facts["system_prompt"] == prompts.pop()  # what evaluate asks with by default
    from transformers import AutoTokenizer

    sha = chat_template_sha256(AutoTokenizer.from_pretrained(trained.checkpoint))
    assert sha == chat_template_sha256(AutoTokenizer.from_pretrained(tiny_qwen_dir)) == facts["chat_template_sha256"]
    for text in [
        "| optimizer steps | 2 (",
        f"| conversations | {facts['rows']} (0 longer than 4096 tokens",
        f"| final loss | {trained.final_loss:.4f}",
        f"`{sha}`",
        f"@ `{trained.dataset.commit}`",
        "| learning rate | 1e-05, cosine schedule, warmup ratio 0.05",
        "| effective batch | 2 (1 per device x 1 processes x 2 accumulation steps)",
        "| max length | 4096 tokens",
        "| seed | 42",
    ]:
        assert text in card
    assert str(trained.checkpoint.resolve()) not in card


def test_a_finished_run_is_not_trained_again(trained, curated, tiny_qwen_dir):
    again = train(curated[1], str(tiny_qwen_dir), trained.checkpoint, config=TINY, progress=False)
    assert again.found_finished and not again.resumed and again.final_loss == trained.final_loss
    assert again.revision == trained.revision  # the folder was not touched


@pytest.mark.slow  # ~25 s: two trainings
def test_an_interrupted_run_resumes_from_its_last_checkpoint_and_ends_identical(
    trained, curated, tiny_qwen_dir, tmp_path, monkeypatch
):
    from trl import SFTTrainer

    original, calls = SFTTrainer.training_step, []

    def crash_on_second_step(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # 2 micro-batches per step: the first step and its checkpoint are done
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    out = tmp_path / "resumed"
    monkeypatch.setattr(SFTTrainer, "training_step", crash_on_second_step)
    with pytest.raises(KeyboardInterrupt):
        train(curated[1], str(tiny_qwen_dir), out, config=TINY, progress=False)
    monkeypatch.setattr(SFTTrainer, "training_step", original)
    assert (out / "trainer" / "checkpoint-1").is_dir() and not (out / FACTS_FILENAME).exists()

    resumed = train(curated[1], str(tiny_qwen_dir), out, config=TINY, progress=False)
    assert resumed.resumed and resumed.facts["resumed_from_step"] == 1 and resumed.steps == 2
    assert (resumed.final_loss, resumed.train_loss) == (trained.final_loss, trained.train_loss)
    from safetensors.torch import load_file

    a, b = load_file(out / "model.safetensors"), load_file(trained.checkpoint / "model.safetensors")
    assert all((a[k] == b[k]).all() for k in b)

    with pytest.raises(TrainError, match="other settings"):  # an unfinished run is resumed with its own settings
        monkeypatch.setattr(SFTTrainer, "training_step", crash_on_second_step)
        calls.clear()
        with pytest.raises(KeyboardInterrupt):
            train(curated[1], str(tiny_qwen_dir), tmp_path / "other", config=TINY, progress=False)
        train(
            curated[1],
            str(tiny_qwen_dir),
            tmp_path / "other",
            config=TrainConfig(max_steps=3, effective_batch_size=2),
            progress=False,
        )


def test_a_checkpoint_cut_short_by_a_kill_is_not_resumed_from(tmp_path):
    from scas_hub.train.run import last_complete_checkpoint

    trainer = tmp_path / "trainer"
    for step, state in [(1, '{"global_step": 1}'), (2, None), (3, '{"global_st')]:
        (trainer / f"checkpoint-{step}").mkdir(parents=True)
        (trainer / f"checkpoint-{step}" / "model.safetensors").write_bytes(b"w")
        if state is not None:
            (trainer / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    assert last_complete_checkpoint(trainer) == trainer / "checkpoint-1"
    assert sorted(p.name for p in trainer.iterdir()) == ["checkpoint-1"]
    assert last_complete_checkpoint(tmp_path / "none") is None


def test_a_student_with_another_chat_template_is_refused(curated, tiny_qwen_dir, tmp_path):
    import shutil

    dataset = tmp_path / "dataset"
    shutil.copytree(curated[1], dataset)
    record = json.loads((dataset / "selection_stats.json").read_text())
    record["student"]["chat_template_sha256"] = "0" * 64
    (dataset / "selection_stats.json").write_text(json.dumps(record))
    with pytest.raises(ChatTemplateMismatchError, match="was scored with 0000"):
        train(dataset, str(tiny_qwen_dir), tmp_path / "ckpt", config=TINY, progress=False)
    assert not (tmp_path / "ckpt").exists()

    # a dataset scored with an override template trains with that template, and the checkpoint keeps it
    from transformers import AutoTokenizer

    from scas_hub.testing.models import QWEN_CHAT_TEMPLATE

    override = QWEN_CHAT_TEMPLATE + "{# scored with an override #}"
    record["student"]["chat_template_sha256"] = hashlib.sha256(override.encode()).hexdigest()
    (dataset / "selection_stats.json").write_text(json.dumps(record))
    with pytest.raises(ChatTemplateMismatchError):
        train(dataset, str(tiny_qwen_dir), tmp_path / "ckpt", config=TINY, progress=False)
    result = train(
        dataset,
        str(tiny_qwen_dir),
        tmp_path / "ckpt",
        config=TrainConfig(max_steps=1, warmup_ratio=0, effective_batch_size=1),
        progress=False,
        chat_template=override,
    )
    assert AutoTokenizer.from_pretrained(result.checkpoint).chat_template == override
    assert result.chat_template_sha256 == record["student"]["chat_template_sha256"]


def test_settings_and_folders_that_cannot_work_are_refused(curated, tiny_qwen_dir, tmp_path, monkeypatch):
    from scas_hub.errors import ConfigError

    with pytest.raises(ConfigError, match="not a multiple"):
        train(
            curated[1],
            str(tiny_qwen_dir),
            tmp_path / "a",
            config=TrainConfig(effective_batch_size=3, per_device_batch_size=2),
        )
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    with pytest.raises(TrainError, match="not empty"):
        train(curated[1], str(tiny_qwen_dir), tmp_path / "b", config=TINY)
    assert (tmp_path / "b" / "notes.txt").read_text() == "mine"
    with pytest.raises(TrainError, match="holds no scas-hub dataset"):
        train(tmp_path / "b", str(tiny_qwen_dir), tmp_path / "c", config=TINY)
    monkeypatch.setitem(sys.modules, "trl", None)
    with pytest.raises(TrainError, match=r'pip install "scas-hub\[train\]"'):
        train(curated[1], str(tiny_qwen_dir), tmp_path / "d", config=TINY)


def test_push_sends_the_checkpoint_to_a_model_repo(trained, curated, tiny_qwen_dir, fake_hub):
    pushed = train(curated[1], str(tiny_qwen_dir), trained.checkpoint, config=TINY, push="me/tiny-scas", progress=False)
    files = fake_hub.files("me/tiny-scas", repo_type="model")
    assert {"config.json", "model.safetensors", "README.md", "tokenizer.json", FACTS_FILENAME} <= set(files)
    assert not any(p.startswith("trainer/") for p in files)
    assert pushed.repo_id == "me/tiny-scas" and pushed.commit == fake_hub.repo("me/tiny-scas", "model").branches["main"]
    assert pushed.revision == pushed.commit
    assert 'from_pretrained("me/tiny-scas")' in files["README.md"].decode()


def test_cli_flags_override_the_reference_recipe_one_by_one():
    from scas_hub.cli import build_parser
    from scas_hub.cli.common import train_config

    def config(*flags):
        return train_config(build_parser().parse_args(["train", "--dataset", "d", *flags]))

    assert config() == TrainConfig(
        learning_rate=1e-5,
        lr_scheduler_type="cosine",
        warmup_ratio=0.05,
        epochs=3,
        max_length=4096,
        effective_batch_size=8,
        seed=42,
        max_steps=None,
        bf16=None,
    )
    assert config("--batch-size", "2", "--grad-accum", "2").effective_batch_size == 4
    tuned = config(
        "--max-steps",
        "5",
        "--learning-rate",
        "2e-5",
        "--epochs",
        "1",
        "--max-length",
        "1024",
        "--seed",
        "7",
        "--no-bf16",
        "--effective-batch",
        "16",
        "--warmup-ratio",
        "0",
    )
    assert (
        tuned.max_steps,
        tuned.learning_rate,
        tuned.epochs,
        tuned.max_length,
        tuned.seed,
        tuned.bf16,
        tuned.effective_batch_size,
        tuned.warmup_ratio,
    ) == (5, 2e-5, 1, 1024, 7, False, 16, 0)
    rounds = build_parser().parse_args(["rounds", "--max-steps", "2", "--seed", "3", "--train-seed", "5"])
    assert (train_config(rounds).max_steps, train_config(rounds).seed, rounds.seed) == (2, 5, 3)


@pytest.mark.slow
def test_two_cpu_ranks_make_the_effective_batch_together(curated, tiny_qwen_dir, tmp_path):
    """`scas-hub train --num-processes 2` (accelerate launch, gloo): 1 per rank x 2 ranks = batch 2,
    no accumulation; rank 0 writes one finished checkpoint."""
    import subprocess

    out = tmp_path / "ddp"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "scas_hub",
            "train",
            "--dataset",
            str(curated[1]),
            "--student",
            str(tiny_qwen_dir),
            "--out",
            str(out),
            "--max-steps",
            "2",
            "--effective-batch",
            "2",
            "--no-progress",
            "--num-processes",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    facts = json.loads((out / FACTS_FILENAME).read_text())
    assert (facts["processes"], facts["gradient_accumulation_steps"], facts["steps"]) == (2, 1, 2)
    assert facts["epochs_done"] == pytest.approx(2 * 2 / facts["rows"])
    assert not (out / "trainer").exists()
