"""`train`: SFT of a student on a curated dataset with TRL's `SFTTrainer`, under accelerate.

The checkpoint folder is laid out as a Hub model repo:

    config.json, model.safetensors, tokenizer files   the trained student (loads with transformers)
    README.md                                        model card
    training_facts.json                              what the run was and measured (written last)
    trainer/checkpoint-N/                            Trainer checkpoints while unfinished

A crashed or killed run resumes from `trainer/`'s last checkpoint when called again with the same
settings; a finished folder (`training_facts.json`) is returned as it is for the same settings, and
refused for others. Settings are checked before any work: a run whose every step would train at
learning rate 0 is refused, and one whose weights end as NaN or infinity is not saved.
"""

from __future__ import annotations

import itertools
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..constants import DEFAULT_STUDENT
from ..distributed import distributed_state
from ..errors import ChatTemplateMismatchError, TrainError
from ..facts import hardware, version_lines
from ..publish.hub import check_repo_id
from ..publish.lock import locks_output
from ..student.chat import chat_template_sha256, read_chat_template
from ..student.loading import ResolvedStudent, resolve_student, student_slug
from .card import FACTS_FILENAME, read_facts, write_card, write_facts
from .config import TrainConfig
from .data import DatasetRef, TrainingData, encode_for_training, open_training_data, over_length
from .hub import TRAINER_DIR, push_checkpoint
from .lineage import base_model, student_facts, write_stop_ids

if TYPE_CHECKING:
    import torch
    from accelerate import PartialState
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase
    from trl import SFTConfig, SFTTrainer

logger = logging.getLogger("scas_hub.train")
RUN_FILENAME = "run.json"
"""In `trainer/`: the settings of the unfinished run, so a resume with other settings is refused."""


@dataclass
class TrainResult:
    """A finished training run: where the checkpoint is and what it was trained on."""

    checkpoint: Path
    steps: int
    final_loss: float
    dataset: DatasetRef
    config: TrainConfig
    student: dict[str, Any] = field(default_factory=dict)
    """The base student: name, repo_id (Hub id or `local:<folder>`), revision."""
    train_loss: float = 0.0
    """Mean loss over the run (Trainer's `train_loss`)."""
    chat_template_sha256: str | None = None
    repo_id: str | None = None
    commit: str | None = None
    """The model repo commit, when pushed."""
    resumed: bool = False
    """True when this call resumed an interrupted run from its last Trainer checkpoint."""
    found_finished: bool = False
    """True when `out` held the finished run already: nothing was trained."""
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def revision(self) -> str:
        """The checkpoint's revision: the pushed commit, else the content tag scoring records for it."""
        return self.commit or resolve_student(str(self.checkpoint)).revision

    @classmethod
    def from_facts(
        cls, folder: Path, facts: dict[str, Any], *, resumed: bool = False, found_finished: bool = False
    ) -> TrainResult:
        d = facts["dataset"]
        pushed = facts.get("pushed") or {}
        return cls(
            checkpoint=folder,
            steps=facts["steps"],
            final_loss=facts["final_loss"],
            dataset=DatasetRef(d["id"], d.get("version"), d["commit"]),
            config=TrainConfig(**facts["config"]),
            student=facts["student"],
            train_loss=facts["train_loss"],
            chat_template_sha256=facts.get("chat_template_sha256"),
            repo_id=pushed.get("repo_id"),
            commit=pushed.get("commit"),
            resumed=resumed,
            found_finished=found_finished,
            facts=facts,
        )


def _require_trl() -> None:
    try:
        import trl  # noqa: F401
    except ImportError as err:
        raise TrainError('training needs TRL: pip install "scas-hub[train]"') from err


def default_out(student: str) -> Path:
    return Path("out") / "checkpoints" / f"{student_slug(student)}-sft"


def check_chat_template(data: TrainingData, tokenizer: PreTrainedTokenizerBase, student: str) -> str | None:
    """The student's chat template hash, which must equal the one the dataset was scored with.

    Raises:
        ChatTemplateMismatchError: the dataset records another template's hash.
    """
    ours = chat_template_sha256(tokenizer)
    theirs = data.chat_template_sha256
    if theirs is None:
        logger.warning(
            "%s records no chat template hash (written before scas-hub recorded it); "
            "cannot check that training renders like scoring did",
            data.ref,
        )
    elif ours != theirs:
        raise ChatTemplateMismatchError(
            f"the student {student!r} renders with chat template sha256 {ours}, but {data.ref} was scored with "
            f"{theirs}: training would see other tokens than were scored. Train the student that scored the "
            f"dataset (its tokenizer, as recorded in selection_stats.json), or curate the dataset again with "
            f"this student"
        )
    return ours


def _run_settings(data: TrainingData, student: ResolvedStudent, config: TrainConfig) -> dict[str, Any]:
    return {
        "dataset": data.ref.to_dict(),
        "student": {"repo_id": student.repo_id, "revision": student.revision},
        "config": config.to_dict(),
    }


def last_complete_checkpoint(trainer_dir: Path) -> Path | None:
    """The latest Trainer checkpoint that was written to the end, if any.

    The Trainer writes `trainer_state.json` after the weights, optimizer, scheduler and RNG states,
    so a checkpoint without a readable one was cut short (a kill while saving); such folders are
    removed, and the run resumes from the one before (kept until the next one is complete).
    """
    complete = []
    for folder in trainer_dir.glob("checkpoint-*"):
        try:
            step = int(folder.name.rsplit("-", 1)[1])
            json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
        except (ValueError, OSError):
            logger.warning("removing %s: its writing was interrupted", folder)
            shutil.rmtree(folder, ignore_errors=True)
            continue
        complete.append((step, folder))
    return max(complete)[1] if complete else None


def _check_out(out: Path, settings: dict[str, Any]) -> Path | None:
    """The Trainer checkpoint to resume from, if any.

    Raises:
        TrainError: `out` holds files scas-hub did not write, or an unfinished run with other settings.
    """
    trainer_dir = out / TRAINER_DIR
    run_file = trainer_dir / RUN_FILENAME
    if run_file.exists():
        previous = json.loads(run_file.read_text(encoding="utf-8"))
        if previous != settings:
            raise TrainError(
                f"{out} holds an unfinished run with other settings (dataset, student or "
                "hyper-parameters); pass the same ones to resume it, or another --out"
            )
        return last_complete_checkpoint(trainer_dir)
    if out.exists() and any(out.iterdir()):
        raise TrainError(f"{out} is not empty and holds no scas-hub training run; pass an empty or new --out")
    return None


def _hardware() -> str:
    import torch

    return hardware("cuda" if torch.cuda.is_available() else "cpu")


_VERSIONS = ("scas-hub", "torch", "transformers", "trl", "accelerate", "datasets")


def _logged_losses(log_history: list[dict[str, Any]]) -> list[float]:
    """The losses the Trainer logged (every `logging_steps` steps), resumed runs' earlier ones included."""
    losses = [float(entry["loss"]) for entry in log_history if "loss" in entry]
    if not losses:
        raise TrainError("training logged no loss; was the dataset empty after truncation?")
    return losses


@locks_output(lambda a: a["out"] or default_out(a["student"]))
def train(
    dataset: str | Path,
    student: str = DEFAULT_STUDENT,
    out: str | Path | None = None,
    *,
    revision: str | None = None,
    student_revision: str | None = None,
    config: TrainConfig | None = None,
    push: str | None = None,
    private: bool = False,
    progress: bool = True,
    keep_checkpoints: bool = False,
    round_number: int | None = None,
    chat_template: str | Path | None = None,
) -> TrainResult:
    """Fine-tune `student` on a curated dataset; resumes an interrupted run in `out`.

    Args:
        dataset: an output folder of `curate`, or a Hub dataset id (its `default` config).
        student: alias, Hub model id or local folder (e.g. the previous round's checkpoint).
        out: the checkpoint folder (default `out/checkpoints/<student>-sft`).
        revision: Hub revision (tag `vN`, branch or commit) of `dataset`.
        config: hyper-parameters (default: the reference recipe, `TrainConfig()`).
        push: Hub model repo id to upload the checkpoint to.
        keep_checkpoints: keep `out/trainer/` (optimizer state) after the run.
        round_number: the SCAS round whose selection this is (shown in the card).
        chat_template: a Jinja chat template (text or file) to render with instead of the student's
            own, as the dataset was scored with it (`curate(..., chat_template=...)`); saved with the
            checkpoint, so the next round scores with it too.

    Returns:
        The finished run, on every process of an `accelerate launch`.

    Raises:
        TrainError: TRL missing, dataset unreadable, `out` holds something else.
        ChatTemplateMismatchError: the student's chat template is not the one the dataset was scored with.
        ConfigError: inconsistent hyper-parameters.
        StudentError, PublishError: with what to do.
    """
    _require_trl()
    if push:
        check_repo_id(push, what="--push")
    state = distributed_state()
    config = (config or TrainConfig()).validate(state.num_processes)
    out = Path(out) if out else default_out(student)

    started = time.perf_counter()
    data, resolved, tokenizer = _open_inputs(dataset, revision, student, student_revision, chat_template)
    template_hash = check_chat_template(data, tokenizer, student)
    settings = {**_run_settings(data, resolved, config), "chat_template_sha256": template_hash}
    finished = read_facts(out)
    if finished is not None:
        _check_finished(out, finished, settings)
        if push and (finished.get("pushed") or {}).get("repo_id") != push:
            finished = _push(out, finished, push, private, state)
        return TrainResult.from_facts(out, finished, found_finished=True)

    plan = _plan_training(data, tokenizer, config, state.num_processes)
    resume_from = _check_out(out, settings)
    _write_settings(out, settings, state)
    trainer, args, losses = _fit(resolved.path, tokenizer, plan, config, out, state, progress, resume_from)

    facts = {
        "student": student_facts(resolved),
        "base_model": base_model(resolved),
        "dataset": data.ref.to_dict(),
        "config": config.to_dict(),
        "settings": settings,
        "round": round_number,
        "steps": trainer.state.global_step,
        "epochs_done": float(trainer.state.epoch or 0),
        "steps_at_zero_lr": plan.warmup_at_zero,
        # from the log history, which a resumed run restores: Trainer's own train_loss covers this call only
        "final_loss": losses[-1],
        "train_loss": sum(losses) / len(losses),
        "rows": len(data.rows),
        "rows_cut": plan.cut,
        "rows_dropped": plan.dropped,
        "scored_max_length": data.scored_max_length,
        "rows_longer_than_scored": plan.longer,
        "chat_template_sha256": template_hash,
        "system_prompt": _shared_system_prompt(data.rows),
        "processes": state.num_processes,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "bf16": bool(args.bf16),
        "hardware": _hardware(),
        "versions": version_lines(_VERSIONS),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "wall_seconds": time.perf_counter() - started,
        "resumed_from_step": _step_of(resume_from),
        "load_id": push or f"path/to/{out.resolve().name}",  # cards never show local paths
    }
    _write_checkpoint_files(out, facts, tokenizer, keep_checkpoints, state)
    if push:
        facts = _push(out, read_facts(out) or facts, push, private, state)
    return TrainResult.from_facts(out, read_facts(out) or facts, resumed=resume_from is not None)


def _open_inputs(
    dataset: str | Path,
    revision: str | None,
    student: str,
    student_revision: str | None,
    chat_template: str | Path | None,
) -> tuple[TrainingData, ResolvedStudent, PreTrainedTokenizerBase]:
    """Step 1 of `train`: the selected rows, the student, and its tokenizer (with the chat template
    the dataset was scored with, when one was given: the checkpoint keeps it for the next round)."""
    data = open_training_data(dataset, revision)
    if not data.rows:
        raise TrainError(f"{data.ref} holds no selected rows to train on")
    resolved = resolve_student(student, student_revision)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolved.path)
    if chat_template is not None:
        tokenizer.chat_template = read_chat_template(chat_template)
    return data, resolved, tokenizer


@dataclass
class _TrainingPlan:
    """The encoded rows and what the run will do with them, known before the first step."""

    encoded: Dataset
    cut: int
    """Conversations cut at `max_length`."""
    dropped: int
    """Conversations left out: the prompt alone fills `max_length`."""
    warmup_at_zero: int
    """Steps the schedule runs at learning rate 0."""
    longer: int
    """Rows longer than the length they were scored at."""


def _plan_training(
    data: TrainingData, tokenizer: PreTrainedTokenizerBase, config: TrainConfig, processes: int
) -> _TrainingPlan:
    """Step 2 of `train`: encode the rows and refuse a run that would train nothing (every prompt too
    long, or every step at learning rate 0)."""
    encoded = encode_for_training(data.rows, tokenizer)
    cut, dropped = over_length(encoded, config.max_length)
    if dropped == len(data.rows):
        raise TrainError(
            f"every conversation of {data.ref} has a prompt of {config.max_length} tokens or more: "
            "nothing would be trained; raise --max-length"
        )
    total_steps = _total_steps(config, len(data.rows) - dropped, processes)
    config.check_trains(total_steps)
    warmup_at_zero = sum(1 for _ in itertools.takewhile(lambda rate: rate == 0, config.learning_rates(total_steps)))
    return _TrainingPlan(encoded, cut, dropped, warmup_at_zero, _longer_than_scored(encoded, data, config))


def _write_settings(out: Path, settings: dict[str, Any], state: PartialState) -> None:
    """The run's settings beside the trainer's checkpoints (what a resumed run must match)."""
    state.wait_for_everyone()  # every process has looked at `out` before rank 0 writes to it
    if state.is_main_process:
        (out / TRAINER_DIR).mkdir(parents=True, exist_ok=True)
        (out / TRAINER_DIR / RUN_FILENAME).write_text(json.dumps(settings, indent=2), encoding="utf-8")
    state.wait_for_everyone()


def _fit(
    model_path: str,
    tokenizer: PreTrainedTokenizerBase,
    plan: _TrainingPlan,
    config: TrainConfig,
    out: Path,
    state: PartialState,
    progress: bool,
    resume_from: Path | None,
) -> tuple[SFTTrainer, SFTConfig, list[float]]:
    """Step 3 of `train`: TRL's SFT (resumed from `resume_from` if any); the model is saved to `out`
    only when its weights and losses are finite."""
    from trl import SFTTrainer

    args = config.sft_config(out / TRAINER_DIR, world_size=state.num_processes, progress=progress)
    trainer = SFTTrainer(model=model_path, args=args, train_dataset=plan.encoded, processing_class=tokenizer)
    if resume_from is not None:
        logger.info("resuming %s from %s", out, resume_from)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    losses = _logged_losses(trainer.state.log_history)
    assert trainer.model is not None, "the trainer loads the model from the student's path"
    _check_finite(trainer.model, losses, out, config, state)
    trainer.save_model(str(out))
    return trainer, args, losses


def _write_checkpoint_files(
    out: Path, facts: dict[str, Any], tokenizer: PreTrainedTokenizerBase, keep_checkpoints: bool, state: PartialState
) -> None:
    """Step 4 of `train`: the stop ids, the model card and `training_facts.json` (last: it marks the
    folder finished); the trainer's checkpoints go unless kept."""
    if state.is_main_process:
        facts["eos_token_id"] = write_stop_ids(out, tokenizer)
        write_card(out, facts)
        write_facts(out, facts)
        if not keep_checkpoints:
            shutil.rmtree(out / TRAINER_DIR, ignore_errors=True)
    state.wait_for_everyone()


def _check_finished(out: Path, facts: dict[str, Any], settings: dict[str, Any]) -> None:
    """A finished folder is returned as it is only for the settings it was trained with.

    Raises:
        TrainError: the folder holds a run of another dataset, student, hyper-parameters or template.
    """
    recorded = facts.get("settings") or {  # folders written before the settings were recorded
        "dataset": facts.get("dataset"),
        "config": facts.get("config"),
        "student": {"repo_id": None, "revision": (facts.get("student") or {}).get("revision")},
        "chat_template_sha256": facts.get("chat_template_sha256"),
    }
    if "settings" not in facts:
        settings = {**settings, "student": {**settings["student"], "repo_id": None}}
    changed = sorted(k for k in settings.keys() | recorded.keys() if settings.get(k) != recorded.get(k))
    if changed:
        raise TrainError(
            f"{out} holds a finished training run with other settings ({', '.join(changed)}); "
            "pass the same ones to reuse it, or another --out"
        )


def _total_steps(config: TrainConfig, rows: int, world_size: int) -> int:
    """Optimizer steps of the run, as the Trainer counts them (`max_steps`, else epochs x steps per epoch)."""
    import math

    if config.max_steps is not None:
        return config.max_steps
    batches = math.ceil(rows / (config.per_device_batch_size * world_size))
    accumulation = config.gradient_accumulation_steps(world_size)
    per_epoch = max(batches // accumulation + int(batches % accumulation > 0), 1)
    return math.ceil(config.epochs * per_epoch)


def _longer_than_scored(encoded: Dataset, data: TrainingData, config: TrainConfig) -> int:
    """Conversations trained on more tokens than the dataset was scored at (warned about)."""
    scored = data.scored_max_length
    if scored is None:
        logger.warning(
            "%s records no scoring length (written before scas-hub recorded it): cannot check "
            "that training sees no tokens scoring did not",
            data.ref,
        )
        return 0
    limit = min(scored, config.max_length)
    longer = sum(len(ids) > limit for ids in encoded["input_ids"])
    if longer and config.max_length > scored:
        logger.warning(
            "%d of %d conversations are longer than the %d tokens %s was scored at (cut there by "
            "--truncate): training sees up to %d of their tokens, which scoring did not; pass "
            "--max-length %d to train on what was scored",
            longer,
            len(encoded),
            scored,
            data.ref,
            config.max_length,
            scored,
        )
        return longer
    return 0


def _check_finite(
    model: torch.nn.Module, losses: list[float], out: Path, config: TrainConfig, state: PartialState
) -> None:
    """A run whose loss or weights are not finite numbers has diverged: nothing is saved as finished.

    Raises:
        TrainError: with the count of non-finite tensors and what to change; `out`'s Trainer files are removed
            (the run cannot be resumed into anything useful).
    """
    import math

    import torch

    bad = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    if not bad and all(math.isfinite(x) for x in losses):
        return
    state.wait_for_everyone()
    if state.is_main_process:
        shutil.rmtree(out / TRAINER_DIR, ignore_errors=True)
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
    raise TrainError(
        f"training diverged: {len(bad)} weight tensors and {sum(not math.isfinite(x) for x in losses)} "
        f"logged losses are NaN or infinite (learning rate {config.learning_rate}); nothing was saved. "
        "Lower --learning-rate and run again"
    )


def _step_of(checkpoint: Path | None) -> int | None:
    return int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint is not None else None


def _push(out: Path, facts: dict[str, Any], repo_id: str, private: bool, state: PartialState) -> dict[str, Any]:
    """Upload the finished folder, then record the commit in `training_facts.json` (main process)."""
    if state.is_main_process:
        facts = {**facts, "load_id": repo_id}
        write_card(out, facts)
        commit = push_checkpoint(
            out,
            repo_id,
            private=private,
            message=f"scas-hub: {facts['student']['name']} trained on {facts['dataset']['id']}",
        )
        facts["pushed"] = {"repo_id": repo_id, "commit": commit}
        write_facts(out, facts)
    state.wait_for_everyone()
    return read_facts(out) or facts


def _shared_system_prompt(rows: list[dict[str, Any]]) -> str | None:
    """The system prompt every training row starts with (what `evaluate` asks this checkpoint with
    by default); None when rows differ."""
    prompts = {row["prompt"][0]["content"] for row in rows if row["prompt"] and row["prompt"][0]["role"] == "system"}
    return prompts.pop() if len(prompts) == 1 else None


__all__ = ["FACTS_FILENAME", "TrainResult", "train"]
