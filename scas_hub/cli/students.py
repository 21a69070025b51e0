"""`scas-hub students`: the student aliases."""

from __future__ import annotations

import argparse

from .common import HelpFormatter


def run(args: argparse.Namespace) -> int:
    from ..student.loading import STUDENTS

    for spec in STUDENTS.values():
        print(f"{spec.alias:24} {spec.repo_id:40} {spec.description}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("students", help="list student aliases", formatter_class=HelpFormatter)
    s.set_defaults(func=run)
