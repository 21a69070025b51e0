"""`scas-hub` command line: thin argparse over the Python API."""

from __future__ import annotations

import argparse
import sys

from .constants import DEFAULT_GROUP, DEFAULT_GROUPS, DEFAULT_LAMBDA, DEFAULT_SEED, DEFAULT_STUDENT
from .errors import ScasHubError


def _curate(args: argparse.Namespace) -> int:
    from .pipeline import curate
    from .score.engine import ScoringConfig

    result = curate(
        student=args.student, source=args.source, out=args.out, subset=args.subset,
        source_revision=args.source_revision, student_revision=args.student_revision,
        strategy=args.strategy, groups=args.groups, group=args.group, seed=args.seed, lam=args.lam,
        small_policy=args.small_policy, dtype=args.dtype, device=args.device,
        scoring=ScoringConfig(token_budget=args.token_budget, max_length=args.max_length,
                              feature_module=args.feature_module, feature_layer=args.feature_layer,
                              progress=not args.no_progress),
        push=args.push, version=args.version, private=args.private,
    )
    s = result.stats
    print(f"\nSelected {s['questions_selected']} of {s['questions_in']} questions "
          f"from {s['rows_scored']} scored candidates ({s['rows_in']} rows in).")
    print(f"Dataset folder: {result.out.resolve()}")
    if result.repo_id:
        print(f"Pushed to https://huggingface.co/datasets/{result.repo_id} as {result.version}")
    print("Load it with:\n")
    print("    from datasets import load_dataset")
    print(f'    ds = load_dataset("{result.repo_id or result.out.resolve()}")')
    return 0


def _students(args: argparse.Namespace) -> int:
    from .score.students import STUDENTS

    for spec in STUDENTS.values():
        print(f"{spec.alias:24} {spec.repo_id:40} {spec.description}")
    return 0


def _builders(args: argparse.Namespace) -> int:
    from .source import list_builders

    for name, recipe in sorted(list_builders().items()):
        where = recipe.repo_id or "bundled"
        print(f"{name:14} {where:60} {recipe.description}")
    return 0


def _push(args: argparse.Namespace) -> int:
    from .publish.hub import push_folder

    pushed = push_folder(args.folder, args.repo_id, version=args.version, private=args.private)
    print(f"Pushed {args.folder} to {args.repo_id} as {pushed.version} (commit {pushed.commit})")
    print(f'Load it with: load_dataset("{args.repo_id}", revision="{pushed.version}")')
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scas-hub", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser("curate", help="score a multi-teacher corpus with a student and select per question")
    c.add_argument("--student", default=DEFAULT_STUDENT, help="alias, Hub model id or local folder")
    c.add_argument("--student-revision", default=None)
    c.add_argument("--source", default=None,
                   help="builder name, folder of per-teacher JSONL, or Hub dataset id "
                        "(default: demo for the embedded student, scas_pool otherwise)")
    c.add_argument("--subset", default=None, help="e.g. deepscaler, hendrycks_math, all")
    c.add_argument("--source-revision", default=None)
    c.add_argument("--out", default=None, help="output folder (default out/scas-<student>)")
    c.add_argument("--strategy", default="scas", help="scas, argmin, lowest-nll, teacher:<name>, strongest, random")
    c.add_argument("--groups", type=int, default=DEFAULT_GROUPS)
    c.add_argument("--group", type=int, default=DEFAULT_GROUP)
    c.add_argument("--seed", type=int, default=DEFAULT_SEED)
    c.add_argument("--lambda", dest="lam", type=float, default=DEFAULT_LAMBDA)
    c.add_argument("--small-policy", default="nearest", choices=["nearest", "drop"],
                   help="questions with fewer candidates than groups: nearest non-empty group, or drop")
    c.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    c.add_argument("--device", default=None)
    c.add_argument("--token-budget", type=int, default=8192, help="padded answer tokens per forward pass")
    c.add_argument("--max-length", type=int, default=None, help="skip candidates longer than this (tokens)")
    c.add_argument("--feature-module", default=None, help="dotted module path; {layer} is replaced")
    c.add_argument("--feature-layer", type=int, default=None)
    c.add_argument("--push", default=None, metavar="REPO_ID", help="push to this Hub dataset repo (or org)")
    c.add_argument("--version", default=None, help="tag for the pushed commit (default: next vN)")
    c.add_argument("--private", action="store_true")
    c.add_argument("--no-progress", action="store_true")
    c.set_defaults(func=_curate)

    s = sub.add_parser("students", help="list student aliases")
    s.set_defaults(func=_students)
    b = sub.add_parser("builders", help="list corpus recipes")
    b.set_defaults(func=_builders)

    p = sub.add_parser("push", help="push an output folder to the Hub and tag it")
    p.add_argument("folder")
    p.add_argument("repo_id")
    p.add_argument("--version", default=None)
    p.add_argument("--private", action="store_true")
    p.set_defaults(func=_push)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ScasHubError as err:
        print(f"scas-hub: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
