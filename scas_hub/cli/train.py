"""`scas-hub train`: fine-tune a student on a curated dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import (
    HelpFormatter,
    add_launch_args,
    add_runtime_args,
    add_student_args,
    add_train_args,
    launched_by_accelerate,
    relaunch,
    train_config,
)


def run(args: argparse.Namespace) -> int:
    from ..train import train

    if args.num_processes > 1 and not launched_by_accelerate():
        return relaunch(args.num_processes)
    result = train(
        args.dataset,
        args.student,
        args.out,
        revision=args.revision,
        student_revision=args.student_revision,
        config=train_config(args),
        push=args.push,
        private=args.private,
        progress=not args.no_progress,
        keep_checkpoints=args.keep_checkpoints,
        chat_template=Path(args.chat_template) if args.chat_template else None,
    )
    print(
        f"\n{'Found finished' if result.found_finished else 'Trained'} "
        f"{result.student['repo_id']} on {result.dataset}: {result.steps} steps, final loss {result.final_loss:.4f}"
    )
    print(f"Checkpoint: {result.checkpoint.resolve()}")
    if result.repo_id:
        print(f"Pushed to the model repo {result.repo_id} (commit {result.commit})")
    print(f"Score the corpus again with it: scas-hub curate --student {result.checkpoint} --round 2 ...")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser(
        "train",
        formatter_class=HelpFormatter,
        help="fine-tune a student on a curated dataset (TRL SFT; needs scas-hub[train])",
        description="Full SFT of a student on a curated dataset with TRL, the loss on the answer "
        "tokens the scorer scored; resumes an interrupted run in --out.",
    )
    src = t.add_argument_group("data & student")
    src.add_argument("--dataset", required=True, help="an output folder of `curate`, or a Hub dataset id")
    src.add_argument(
        "--revision",
        default=None,
        metavar="REV",
        help="Hub revision of --dataset: a tag (v1, ...), branch or commit (default: main)",
    )
    add_student_args(src, ("name", "revision"), helps={"revision": "Hub revision of the student (default: main)"})
    add_train_args(t)
    pub = t.add_argument_group("output & publishing")
    pub.add_argument(
        "--out", default=None, metavar="DIR", help="checkpoint folder (default: out/checkpoints/<student>-sft)"
    )
    pub.add_argument(
        "--push", default=None, metavar="REPO_ID", help="push the checkpoint to this Hub model repo (default: no push)"
    )
    pub.add_argument("--private", action="store_true", help="create the Hub repo private")
    pub.add_argument(
        "--keep-checkpoints", action="store_true", help="keep the Trainer checkpoints (optimizer state) after the run"
    )
    add_launch_args(add_runtime_args(t), "train on N processes via `accelerate launch` (one per GPU)")
    t.set_defaults(func=run)
