"""Helpers every subcommand shares: the help formatter, option groups, configs from flags, relaunch."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..score.config import ScoringConfig
from ..student.config import StudentConfig
from .options import add_config_flags

if TYPE_CHECKING:
    from ..evaluate.config import DecodingConfig, QuestionsConfig
    from ..pipeline import CurateResult
    from ..publish.config import PublishConfig
    from ..select import SelectionConfig
    from ..train.config import TrainConfig

MAX_PROCESSES = 1024
"""Most `--num-processes`: more ranks than any one machine holds devices or cores."""


@dataclass(frozen=True)
class LaunchConfig:
    """How a command runs: on this process, or on N that it starts under `accelerate launch`."""

    num_processes: int = field(
        default=1,
        metadata={
            "help": "score on N processes via `accelerate launch` (one per GPU; CPU ranks use gloo)",
            "metavar": "N",
            "range": (1, MAX_PROCESSES),
        },
    )


def add_launch_args(group: argparse._ActionsContainer, help_text: str | None = None) -> None:
    """`--num-processes` (`LaunchConfig`); `help_text` says what the processes do, where it is not scoring."""
    add_config_flags(group, LaunchConfig, ("num_processes",), helps={"num_processes": help_text} if help_text else None)


def add_student_args(group: argparse._ActionsContainer, names: tuple[str, ...], **overrides: Any) -> None:
    """The `StudentConfig` flags `names` (`--student`, `--student-revision`, `--dtype`, ...); `overrides`
    as for `add_config_flags` (a command's own help where the flag means more there)."""
    add_config_flags(group, StudentConfig, names, **overrides)


def student_config(args: argparse.Namespace, name: str) -> StudentConfig:
    """The `StudentConfig` of student `name` from the student flags (`curate`)."""
    return StudentConfig(
        name,
        revision=args.student_revision,
        dtype=args.dtype,
        device=args.device,
        chat_template=Path(args.chat_template) if args.chat_template else None,
    )


def add_score_cache_args(group: argparse._ActionsContainer) -> None:
    """`--score-cache DIR` (`ScoringConfig.score_cache`; unset: the default folder) and `--no-score-cache`."""
    add_config_flags(group, ScoringConfig, ("score_cache",), unset=True)
    group.add_argument("--no-score-cache", action="store_true", help="score everything, write no cache")


def score_cache(args: argparse.Namespace) -> str | bool:
    """`ScoringConfig.score_cache` from `--score-cache` / `--no-score-cache`."""
    return False if args.no_score_cache else (args.score_cache or True)


SELECTION_FLAGS = ("strategy", "groups", "group", "seed", "lam", "small_policy", "teacher_ranking")
"""The `SelectionConfig` fields `curate`, `select` and `rounds` take as flags, in --help order."""


def split_list(values: list[str] | None) -> list[str]:
    """`--x a,b --x c` -> `[a, b, c]`."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def selection_config(args: argparse.Namespace) -> SelectionConfig:
    """The `SelectionConfig` the selection flags make."""
    from ..select import SelectionConfig

    return SelectionConfig(**selection_kwargs(args))


def publish_config(args: argparse.Namespace) -> PublishConfig:
    """The `PublishConfig` the --push, --version and --private flags make."""
    from ..publish.config import PublishConfig

    return PublishConfig(push=args.push, version=args.version, private=args.private)


def selection_kwargs(args: argparse.Namespace) -> dict:
    """The selection flags as keyword arguments of the workflows (`teacher_ranking` as a list or None)."""
    values = {name: getattr(args, name) for name in SELECTION_FLAGS}
    values["teacher_ranking"] = split_list(args.teacher_ranking) or None
    return values


def print_result(result: CurateResult) -> None:
    from ..report import drop_warning, set_aside_table

    s = result.stats
    print(
        f"\nSelected {s['questions_selected']} of {s['questions_in']} questions "
        f"from {s['rows_scored']} scored candidates ({s['rows_in']} rows in)."
    )
    print(set_aside_table(s))
    print(f"Dataset folder: {result.out.resolve()}")
    if result.repo_id:
        from huggingface_hub import constants

        print(f"Pushed to {constants.ENDPOINT}/datasets/{result.repo_id} as {result.version}")
    warning = drop_warning(s, result.out)
    if warning:
        sys.stdout.flush()
        print(f"scas-hub: warning: {warning}", file=sys.stderr)


def print_load_line(target: str | Path) -> None:
    print("Load it with:\n")
    print("    from datasets import load_dataset")
    print(f'    ds = load_dataset("{target}")')


DECODING_FLAGS = ("max_new_tokens", "batch_size", "backend", "dtype")
"""The `DecodingConfig` fields `evaluate` and `ablate` take as flags (`rounds`: all but dtype)."""


def add_decoding_args(
    group: argparse._ActionsContainer,
    batch_flag: str = "--batch-size",
    names: tuple[str, ...] = DECODING_FLAGS,
    **overrides,
) -> None:
    """The `DecodingConfig` flags; the batch size is `args.eval_batch_size` (training has `--batch-size`)."""
    from ..evaluate.config import DecodingConfig

    add_config_flags(
        group,
        DecodingConfig,
        names,
        dests={"batch_size": "eval_batch_size"},
        flags={"batch_size": batch_flag},
        **overrides,
    )


def decoding(args: argparse.Namespace) -> DecodingConfig:
    from ..evaluate import DecodingConfig

    return DecodingConfig(
        max_new_tokens=args.max_new_tokens, batch_size=args.eval_batch_size, backend=args.backend, dtype=args.dtype
    )


def print_cut(cut: dict, name: str = "") -> None:
    """Answers cut at the token limit and the accuracy on finished ones; a warning above 10% cut."""
    finished = "-" if cut["accuracy_finished"] is None else f"{cut['accuracy_finished']:.4f}"
    answers = cut["n_finished"] + cut["cut_at_max_new_tokens"]
    print(
        f"{name}{cut['cut_at_max_new_tokens']} of {answers} answers cut at --max-new-tokens; accuracy on the "
        f"{cut['n_finished']} finished ones: {finished}"
    )
    if cut["cut_warning"]:
        sys.stdout.flush()
        print(f"scas-hub: warning: {name}{cut['cut_warning']}", file=sys.stderr)


def add_eval_args(
    p: argparse.ArgumentParser,
    subset_flags: tuple[str, ...] = (),
    batch_flag: str = "--batch-size",
    system_prompt_help: str = "system prompt of every question (default: a scas-hub checkpoint's "
    "training prompt, else each row's own, else the project's default, as "
    "training and scoring render rows)",
) -> None:
    """The `QuestionsConfig` flags (`--eval` required; `subset_flags`: more flags for `--eval-subset`), the
    `DecodingConfig` flags, `--device`, `--system-prompt` and `--no-progress` (`evaluate`, `ablate`)."""
    from ..evaluate.config import QuestionsConfig

    add_config_flags(p, QuestionsConfig, QUESTIONS_FLAGS, aliases={"subset": subset_flags}, required=("source",))
    add_decoding_args(p, batch_flag=batch_flag)
    add_student_args(p, ("device",))
    p.add_argument("--system-prompt", default=None, metavar="TEXT", help=system_prompt_help)
    p.add_argument("--no-progress", action="store_true", help="draw no progress bars")


QUESTIONS_FLAGS = ("source", "subset", "revision", "limit", "sample_seed")
"""The `QuestionsConfig` fields `evaluate` and `ablate` take as flags (`rounds` spells its own, `--eval-*`)."""


def questions_config(args: argparse.Namespace) -> QuestionsConfig:
    """The `QuestionsConfig` the `--eval`, `--eval-subset`, `--eval-revision`, `--limit` and `--sample-seed`
    flags make (`evaluate`, `ablate`)."""
    from ..evaluate.config import QuestionsConfig

    return QuestionsConfig(
        args.eval, subset=args.subset, revision=args.eval_revision, limit=args.limit, sample_seed=args.sample_seed
    )


def launched_by_accelerate() -> bool:
    import os

    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def relaunch(num_processes: int) -> int:
    """Start this same command under `accelerate launch` with N processes (CPU ranks use gloo)."""
    import os
    import subprocess

    import torch

    argv = list(sys.argv[1:])
    for i, a in enumerate(argv):  # drop --num-processes N / --num-processes=N
        if a == "--num-processes":
            del argv[i : i + 2]
            break
        if a.startswith("--num-processes="):
            del argv[i]
            break
    env = dict(os.environ)
    if not torch.cuda.is_available():
        env["ACCELERATE_USE_CPU"] = "true"
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        str(num_processes),
        "--multi_gpu",
        "-m",
        "scas_hub",
        *argv,
    ]
    return subprocess.call(cmd, env=env)


def train_config(args: argparse.Namespace) -> TrainConfig:
    """`TrainConfig` from the training flags; unset flags keep the reference recipe's defaults."""
    import os

    from ..errors import ConfigError
    from ..train import TrainConfig

    values = {
        k: getattr(args, k)
        for k in (
            "learning_rate",
            "lr_scheduler_type",
            "warmup_ratio",
            "epochs",
            "max_length",
            "per_device_batch_size",
            "max_steps",
            "bf16",
            "save_steps",
        )
        if getattr(args, k) is not None
    }
    if args.train_seed is not None:
        values["seed"] = args.train_seed
    if args.gradient_checkpointing:
        values["gradient_checkpointing"] = True
    if args.grad_accum is not None:
        if args.effective_batch_size is not None:
            raise ConfigError("pass --effective-batch or --grad-accum, not both")
        world = int(os.environ.get("WORLD_SIZE", "1"))
        values["effective_batch_size"] = (
            args.grad_accum * values.get("per_device_batch_size", TrainConfig.per_device_batch_size) * world
        )
    elif args.effective_batch_size is not None:
        values["effective_batch_size"] = args.effective_batch_size
    return TrainConfig(**values)


def add_train_args(p: argparse.ArgumentParser, seed_flag: str = "--seed", chat_template: bool = True) -> None:
    """The `TrainConfig` flags; unset ones keep the reference recipe's defaults (see `train_config`).
    `chat_template`: also `--chat-template`, for the commands that train with it."""
    from ..train.config import TrainConfig

    g = p.add_argument_group("training (default: the reference recipe)")
    add_config_flags(
        g,
        TrainConfig,
        (
            "max_steps",
            "epochs",
            "learning_rate",
            "lr_scheduler_type",
            "warmup_ratio",
            "per_device_batch_size",
            "effective_batch_size",
        ),
        unset=True,
    )
    g.add_argument(
        "--grad-accum",
        type=int,
        default=None,
        metavar="N",
        help="accumulation steps, instead of --effective-batch (default: effective batch / (batch size x processes))",
    )
    add_config_flags(
        g,
        TrainConfig,
        ("max_length", "seed", "bf16", "gradient_checkpointing", "save_steps"),
        unset=True,
        dests={"seed": "train_seed"},
        flags={"seed": seed_flag},
    )
    if chat_template:  # training renders the dataset's rows: its own words for what the template does there
        add_student_args(g, ("chat_template",), helps={"chat_template": TRAIN_CHAT_TEMPLATE_HELP})


TRAIN_CHAT_TEMPLATE_HELP = (
    "Jinja chat template to render with instead of the student's own, as the dataset was "
    "scored with it; saved with the checkpoints (default: the student's)"
)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends `(default: X)` where there is a value to show; flags, and options whose help says
    what their default does, are left as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return super()._get_help_string(action) or text


def add_selection_args(parser: argparse.ArgumentParser) -> None:
    from ..select import SelectionConfig

    add_config_flags(parser.add_argument_group("selection"), SelectionConfig, SELECTION_FLAGS)


def add_output_args(parser: argparse.ArgumentParser, out_help: str, out_required: bool = False) -> None:
    p = parser.add_argument_group("output & publishing")
    p.add_argument("--out", default=None, required=out_required, metavar="DIR", help=out_help)
    from ..publish.config import PublishConfig

    add_config_flags(p, PublishConfig, ("push", "version", "private"))


def add_runtime_args(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    p = parser.add_argument_group("runtime")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="draw no progress bars (scoring, model loading, parquet, Hub transfers)",
    )
    return p
