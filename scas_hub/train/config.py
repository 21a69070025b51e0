"""Training settings: the reference recipe's defaults (SCAS.md, "Rounds"), each one overridable."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    import torch
    from trl import SFTConfig

METRIC_DRIVEN_SCHEDULERS = frozenset({"reduce_lr_on_plateau", "greedy"})


@dataclass
class TrainConfig:
    """Full SFT of the student on a curated dataset.

    The defaults are the reference recipe's (LLaMA-Factory): lr 1e-5, cosine schedule, warmup
    0.05, 3 epochs, cutoff 4096 tokens, effective batch 8, seed 42.
    """

    learning_rate: float = field(
        default=1e-5, metadata={"help": "peak learning rate (default: {default})", "metavar": "LR"}
    )
    lr_scheduler_type: str = field(
        default="cosine",
        metadata={
            "help": "transformers scheduler name (default: {default})",
            "metavar": "NAME",
            "flag": "--lr-scheduler",
        },
    )
    warmup_ratio: float = field(
        default=0.05, metadata={"help": "share of the steps spent warming up (default: {default})", "metavar": "R"}
    )
    epochs: float = field(
        default=3.0,
        metadata={"help": "passes over the dataset (default: {default}; --max-steps overrides it)", "metavar": "N"},
    )
    max_length: int = field(
        default=4096,
        metadata={"help": "tokens per conversation; longer ones are cut (default: {default})", "metavar": "TOKENS"},
    )
    """Tokens per conversation; longer ones are cut at the end (`truncation_mode="keep_start"`)."""
    effective_batch_size: int = field(
        default=8,
        metadata={
            "help": "conversations per optimizer step over all processes (default: {default})",
            "metavar": "N",
            "flag": "--effective-batch",
        },
    )
    """Conversations per optimizer step, over all processes and accumulation steps."""
    per_device_batch_size: int = field(
        default=1,
        metadata={
            "help": "conversations per device per micro-batch (default: {default})",
            "metavar": "N",
            "flag": "--batch-size",
        },
    )
    seed: int = field(default=42, metadata={"help": "training seed (default: {default})"})
    max_steps: int | None = field(
        default=None, metadata={"help": "stop after N optimizer steps (default: run --epochs)", "metavar": "N"}
    )
    """Stop after this many optimizer steps (overrides `epochs`)."""
    bf16: bool | None = field(
        default=None, metadata={"help": "bf16 mixed precision (default: on with CUDA)", "negatable": True}
    )
    """Mixed precision in bfloat16 (float32 master weights); None: on when CUDA is available."""
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "recompute activations in the backward pass to save memory"}
    )
    save_steps: int = field(
        default=100,
        metadata={
            "help": "optimizer steps between the checkpoints a crashed run resumes from (default: {default})",
            "metavar": "N",
        },
    )
    """Optimizer steps between the checkpoints a crashed run resumes from (and one at the end)."""
    logging_steps: int = 1

    def validate(self, world_size: int = 1) -> TrainConfig:
        """Check the settings, against each other and the number of processes, before any work.

        Raises:
            ConfigError: a size or rate that is not a finite positive number, an unknown scheduler, or
                an effective batch that the processes and per-device batch cannot make up exactly.
        """
        for name in (
            "effective_batch_size",
            "per_device_batch_size",
            "max_length",
            "save_steps",
            "logging_steps",
            "seed",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} must be a whole number, got {value!r}")
            if value < (0 if name == "seed" else 1):
                raise ConfigError(f"{name} must be >= {0 if name == 'seed' else 1}, got {value}")
        if not _finite(self.learning_rate) or self.learning_rate <= 0:
            raise ConfigError(f"--learning-rate must be a finite number > 0, got {self.learning_rate}")
        if not _finite(self.warmup_ratio) or not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.max_steps is not None and (
            isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int) or self.max_steps < 1
        ):
            raise ConfigError(f"--max-steps must be a whole number >= 1, got {self.max_steps}")
        if not _finite(self.epochs) or self.epochs <= 0:
            raise ConfigError(f"--epochs must be a finite number > 0, got {self.epochs}")
        if self.lr_scheduler_type not in scheduler_names():
            raise ConfigError(
                f"unknown --lr-scheduler {self.lr_scheduler_type!r}; choose one of {', '.join(scheduler_names())}"
            )
        next(self.learning_rates(2))  # a scheduler that needs more settings fails here, before any work
        self.gradient_accumulation_steps(world_size)
        if self.max_steps is not None:
            self.check_trains(self.max_steps)
        return self

    def learning_rates(self, total_steps: int) -> Iterator[float]:
        """The learning rate of each optimizer step, as transformers' scheduler will set it (lazily).

        Raises:
            ConfigError: the scheduler needs settings scas-hub does not pass (e.g. `cosine_with_min_lr`).
        """
        import torch
        from transformers import get_scheduler

        warmup = math.ceil(total_steps * self.warmup_ratio)  # TrainingArguments.get_warmup_steps for a ratio
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=self.learning_rate)
        try:
            scheduler = get_scheduler(
                self.lr_scheduler_type, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps
            )
        except Exception as err:  # noqa: BLE001 - transformers raises ValueError or TypeError, by scheduler
            raise ConfigError(
                f"--lr-scheduler {self.lr_scheduler_type} cannot run with scas-hub's settings "
                f"({err}); choose e.g. cosine, linear or constant_with_warmup"
            ) from err
        return _stepped(optimizer, scheduler, total_steps)

    def check_trains(self, total_steps: int) -> None:
        """Refuse a run in which no optimizer step has a learning rate above 0 (the weights would not move).

        Raises:
            ConfigError: every step is spent in the warm-up at learning rate 0 (e.g. `--max-steps 1`).
        """
        if not any(rate > 0 for rate in self.learning_rates(total_steps)):
            warmup = math.ceil(total_steps * self.warmup_ratio)
            raise ConfigError(
                f"all {total_steps} optimizer step(s) would run at learning rate 0: the {self.lr_scheduler_type} "
                f"schedule's warm-up (--warmup-ratio {self.warmup_ratio} = {warmup} "
                f"step(s)) starts at 0, so the checkpoint would equal the student; pass --max-steps 2 or more, "
                "or --warmup-ratio 0"
            )

    def gradient_accumulation_steps(self, world_size: int = 1) -> int:
        """Accumulation steps that make `effective_batch_size` from `world_size` processes."""
        per_step = self.per_device_batch_size * world_size
        if self.effective_batch_size % per_step:
            raise ConfigError(
                f"an effective batch of {self.effective_batch_size} is not a multiple of per-device batch "
                f"{self.per_device_batch_size} x {world_size} processes; change --batch-size or --effective-batch"
            )
        return self.effective_batch_size // per_step

    def use_bf16(self) -> bool:
        if self.bf16 is not None:
            return self.bf16
        import torch

        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()

    def sft_config(self, output_dir: Path, *, world_size: int = 1, progress: bool = True) -> SFTConfig:
        """The `trl.SFTConfig` for this run: completion-only loss, checkpoints to resume from."""
        from trl import SFTConfig

        # TRL's default is on; the field's name depends on the transformers version
        checkpointing: dict[str, Any] = {_checkpointing_field(SFTConfig): self.gradient_checkpointing}
        return SFTConfig(
            output_dir=str(output_dir),
            learning_rate=self.learning_rate,
            lr_scheduler_type=self.lr_scheduler_type,
            warmup_steps=self.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
            num_train_epochs=self.epochs,
            max_steps=self.max_steps if self.max_steps is not None else -1,
            per_device_train_batch_size=self.per_device_batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps(world_size),
            seed=self.seed,
            bf16=self.use_bf16(),
            max_length=self.max_length,
            truncation_mode="keep_start",
            completion_only_loss=True,
            packing=False,
            save_strategy="steps",
            save_steps=self.save_steps,
            save_total_limit=1,
            logging_steps=self.logging_steps,
            report_to="none",
            disable_tqdm=not progress,
            model_init_kwargs={"dtype": "float32"},  # float32 master weights; bf16 is autocast
            **checkpointing,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _stepped(
    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler, total_steps: int
) -> Iterator[float]:
    for _ in range(total_steps):
        yield optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def scheduler_names() -> list[str]:
    """The schedulers transformers knows (`SchedulerType`), less those driven by an evaluation metric
    (scas-hub trains without an evaluation set)."""
    from transformers import SchedulerType

    return [s.value for s in SchedulerType if s.value not in METRIC_DRIVEN_SCHEDULERS]


def _checkpointing_field(config_class: type[SFTConfig]) -> str:
    """`activation_checkpointing` where transformers has it (the old name warns), else `gradient_checkpointing`."""
    from dataclasses import fields

    names = {f.name for f in fields(config_class)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
