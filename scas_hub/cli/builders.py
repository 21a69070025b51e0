"""`scas-hub builders`: the corpus recipes."""

from __future__ import annotations

import argparse

from .common import HelpFormatter


def run(args: argparse.Namespace) -> int:
    from ..source import list_builders

    for name, recipe in sorted(list_builders().items()):
        where = recipe.repo_id or " + ".join(t.repo_id or t.teacher for t in recipe.teachers) or "bundled"
        subsets = ",".join(recipe.subsets) or "-"
        print(f"{name:14} {recipe.layout:6} {recipe.verification:8} {subsets:34} {where}")
        print(f"{'':14} {recipe.description}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("builders", help="list corpus recipes", formatter_class=HelpFormatter)
    b.set_defaults(func=run)
