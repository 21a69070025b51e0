"""`scas-hub ablate`: one student per selection strategy, compared."""

from __future__ import annotations

import argparse

from ..constants import DEFAULT_SEED
from .common import (
    HelpFormatter,
    add_eval_args,
    add_student_args,
    add_train_args,
    decoding,
    print_cut,
    questions_config,
    split_list,
    train_config,
)


def run(args: argparse.Namespace) -> int:
    from ..ablate import DEFAULT_STRATEGIES, ablate
    from ..publish.config import PublishConfig
    from ..student.config import StudentConfig

    config = train_config(args)
    # ablate's --dtype is the decoding's (`decoding(args)`): the student config keeps `auto` for scoring
    student = StudentConfig(args.student, revision=args.student_revision, device=args.device)
    result = ablate(
        student,
        questions_config(args),
        args.out,
        strategies=split_list(args.strategies) or DEFAULT_STRATEGIES,
        source=args.source,
        subset=args.source_subset,
        source_revision=args.source_revision,
        decoding=decoding(args),
        train_config=config,
        seeds=args.seeds,
        selection_seed=args.selection_seed,
        exclude_overlap=args.exclude_overlap,
        baseline=not args.no_baseline,
        progress=not args.no_progress,
        publishing=PublishConfig(push=args.push, private=args.private),
        repo_type=args.repo_type,
        command=args.command_line,
        system_prompt=args.system_prompt,
    )
    record = result.record
    print()
    for name, s in [
        *record["strategies"].items(),
        *([("baseline", record["baseline"])] if "baseline" in record else []),
    ]:
        ci = f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}]" if s["ci_low"] is not None else "[n/a]"
        vs = s.get("vs_scas")
        diff = f"  vs scas {vs['difference']:+.3f}" if vs else ""
        print(f"{name:14} accuracy {s['accuracy']:.3f} {ci} over {s['n_questions']} questions{diff}")
        print_cut(s, f"{name}: ")
    overlap = record["overlap"]
    print(
        f"eval questions also in the training corpus: {overlap['eval_questions']}"
        + (" (excluded from training)" if record["exclude_overlap"] else "")
    )
    print(f"Report: {(result.out / 'README.md').resolve()} and ablation.json")
    if result.repo_id:
        print(f"Pushed to {result.repo_id} (commit {result.commit})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser(
        "ablate",
        formatter_class=HelpFormatter,
        help="train one student per selection strategy and compare them on held-out questions",
    )
    add_student_args(a, ("name", "revision"))
    a.add_argument(
        "--strategies",
        action="append",
        default=None,
        metavar="A,B,C",
        help="default: scas,strongest,random,lowest-nll (scas is the reference of the paired comparison)",
    )
    a.add_argument(
        "--source", default=None, help="training corpus (default: demo for the embedded student, scas_pool otherwise)"
    )
    a.add_argument(
        "--source-subset",
        "--subset",
        default=None,
        help="subset of the training corpus (default: the recipe's default)",
    )
    a.add_argument(
        "--source-revision", default=None, metavar="REV", help="Hub revision of the training corpus (default: main)"
    )
    add_eval_args(
        a,
        batch_flag="--eval-batch-size",
        system_prompt_help="system prompt of every evaluation (default: the one the training datasets' "
        "rows share, else each eval row's own, else the project's default)",
    )
    a.add_argument(
        "--exclude-overlap",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="remove eval questions (matched by normalised text) from the training corpus (default: on; "
        "--no-exclude-overlap keeps them, to measure what the overlap does)",
    )
    a.add_argument("--seeds", type=int, default=1, help="train every arm K times (seeds --seed, --seed + 1, ...)")
    a.add_argument(
        "--selection-seed",
        type=int,
        default=DEFAULT_SEED,
        help="seed of every strategy's draws (scas group sampling, random)",
    )
    # no --chat-template: ablate scores, trains and evaluates with the student's own template
    add_train_args(a, chat_template=False)
    a.add_argument("--no-baseline", action="store_true", help="do not evaluate the untrained student")
    a.add_argument("--out", default="out/ablation", help="ablation folder; a rerun resumes it")
    a.add_argument(
        "--push", default=None, metavar="REPO_ID", help="push the report to this Hub repo (default: no push)"
    )
    a.add_argument(
        "--repo-type", default="dataset", choices=["dataset", "model"], help="kind of Hub repo --push creates"
    )
    a.add_argument("--private", action="store_true", help="create the Hub repo private")
    a.set_defaults(func=run)
