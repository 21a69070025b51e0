"""`scas-hub rounds`: the SCAS loop, round after round."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..constants import DEFAULT_SEED
from .common import (
    DECODING_FLAGS,
    HelpFormatter,
    add_decoding_args,
    add_launch_args,
    add_runtime_args,
    add_score_cache_args,
    add_selection_args,
    add_student_args,
    add_train_args,
    decoding,
    launched_by_accelerate,
    print_load_line,
    relaunch,
    score_cache,
    selection_config,
    student_config,
    train_config,
)
from .options import add_config_flags

if TYPE_CHECKING:
    from ..evaluate.config import QuestionsConfig


def run(args: argparse.Namespace) -> int:
    from ..publish.config import PublishConfig
    from ..rounds.loop import run_rounds
    from ..score.config import ScoringConfig

    if args.num_processes > 1 and not launched_by_accelerate():
        return relaunch(args.num_processes)
    config = train_config(args)
    scoring = ScoringConfig(
        token_budget=args.token_budget,
        progress=not args.no_progress,
        max_length=config.max_length,
        truncate=args.truncate,
        score_cache=score_cache(args),
    )
    result = run_rounds(
        student_config(args, args.student),  # the chat template file is read here, once
        args.rounds,
        args.out,
        source=args.source,
        subset=args.subset,
        publishing=PublishConfig(push=args.push, private=args.private),
        push_checkpoints=args.push_checkpoints,
        train_config=config,
        selection=selection_config(args),
        scoring=scoring,
        from_base=args.from_base,
        eval_questions=eval_questions(args),
        decoding=decoding(args) if args.eval else None,
        progress=not args.no_progress,
    )
    print(f"\n{result.table()}\n\nRounds folder: {result.out.resolve()}")
    print(f"The student after {len(result.rounds)} rounds: {result.final_checkpoint.resolve()}")
    if result.base_eval:
        print(f"Accuracy per round: {(result.out / 'rounds.json').resolve()} and figures/accuracy.png")
    if args.push:
        print_load_line(args.push)
    return 0


def eval_questions(args: argparse.Namespace) -> QuestionsConfig | None:
    """The `QuestionsConfig` of `--eval` and the loop's own `--eval-*` flags; None without `--eval`."""
    from ..evaluate.config import QuestionsConfig

    if not args.eval:
        return None
    return QuestionsConfig(
        args.eval,
        subset=args.eval_subset,
        revision=args.eval_revision,
        limit=args.eval_limit,
        sample_seed=args.eval_seed,
    )


def register(sub: argparse._SubParsersAction) -> None:
    from ..score.config import ScoringConfig

    o = sub.add_parser(
        "rounds",
        formatter_class=HelpFormatter,
        help="run the SCAS loop: score, select, publish, train, round after round",
        description="Round r scores the corpus with the student of round r, selects, writes "
        "OUT/round-<r> (pushed as the next version), and trains the next student into "
        "OUT/checkpoints/round-<r>. A rerun continues at the first unfinished step.",
    )
    src = o.add_argument_group("source & student")
    src.add_argument(
        "--source",
        default=None,
        help="the corpus, as for `curate` (default: demo for the embedded student, scas_pool otherwise)",
    )
    src.add_argument("--subset", default=None, help="subset(s) of the source (default: the recipe's default)")
    # the loop's student is the base of every round, and it trains too: its own words
    add_student_args(
        src,
        ("name", "revision"),
        helps={
            "name": "the base student: alias, Hub model id or folder",
            "revision": "Hub revision of the base student (default: main)",
        },
    )
    src.add_argument("--rounds", type=int, default=3, metavar="N", help="rounds to run (or to complete)")
    add_student_args(
        src,
        ("dtype", "device"),
        helps={
            "dtype": "the dtype the scorer runs the student in; auto = bfloat16 on CUDA, float32 otherwise",
            "device": "torch device for scoring (default: cuda if available)",
        },
    )
    add_config_flags(
        src,
        ScoringConfig,
        ("token_budget",),
        helps={"token_budget": "tokens per scoring forward pass (default: 4096 on CPU, 16384 on GPU)"},
    )
    add_score_cache_args(src)
    add_config_flags(
        src,
        ScoringConfig,
        ("truncate",),
        helps={
            "truncate": "score and train a candidate longer than --max-length on its first "
            "--max-length tokens (default: set it aside as too_long)"
        },
    )
    add_selection_args(o)
    add_train_args(o, seed_flag="--train-seed")
    o.add_argument(
        "--from-base",
        action="store_true",
        help="train every round's checkpoint from the base student (default: continue from the "
        "previous round's checkpoint)",
    )
    ev = o.add_argument_group("evaluation (default: none)")
    ev.add_argument(
        "--eval",
        default=None,
        metavar="SOURCE",
        help="evaluate the base student and every round's checkpoint on these held-out questions "
        "(builder, recipe, folder or Hub id); corpus questions among them are set aside from training "
        "(default: no evaluation)",
    )
    ev.add_argument("--eval-subset", default=None, help="subset of the eval source (default: the recipe's default)")
    ev.add_argument(
        "--eval-revision", default=None, metavar="REV", help="Hub revision of the eval source (default: main)"
    )
    ev.add_argument(
        "--eval-limit",
        type=int,
        default=None,
        metavar="N",
        help="evaluate N questions, a seeded uniform draw (default: every question)",
    )
    ev.add_argument("--eval-seed", type=int, default=DEFAULT_SEED, help="seed of the --eval-limit draw")
    # the loop evaluates in-process: no openai backend (it has no --endpoint)
    add_decoding_args(
        ev,
        batch_flag="--eval-batch-size",
        names=DECODING_FLAGS[:3],
        helps={"batch_size": "prompts per generate call (transformers)"},
        choices={"backend": ["auto", "transformers", "vllm"]},
    )
    pub = o.add_argument_group("output & publishing")
    pub.add_argument("--out", default=None, metavar="DIR", help="the loop's folder (default: out/rounds-<student>)")
    pub.add_argument(
        "--push",
        default=None,
        metavar="REPO_ID",
        help="Hub dataset repo (org/name): round r is pushed as its next version (default: no push)",
    )
    pub.add_argument(
        "--push-checkpoints",
        default=None,
        metavar="REPO_ID",
        help="Hub model repo every trained checkpoint is pushed to (default: no push)",
    )
    pub.add_argument("--private", action="store_true", help="create the Hub repos private")
    add_launch_args(add_runtime_args(o), "score and train on N processes via `accelerate launch` (one per GPU)")
    o.set_defaults(func=run)
