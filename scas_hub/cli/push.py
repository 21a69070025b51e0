"""`scas-hub push`: push an output folder to the Hub and tag it."""

from __future__ import annotations

import argparse

from ..publish.config import PublishConfig
from .common import HelpFormatter, add_runtime_args
from .options import add_config_flags


def run(args: argparse.Namespace) -> int:
    from ..publish.hub import push_folder

    pushed = push_folder(args.folder, args.repo_id, version=args.version, private=args.private)
    print(f"Pushed {args.folder} to {args.repo_id} as {pushed.version} (commit {pushed.commit})")
    print(f'Load it with: load_dataset("{args.repo_id}", revision="{pushed.version}")')
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "push",
        formatter_class=HelpFormatter,
        help="push an output folder to the Hub and tag it",
        description="Push an output folder to a Hub dataset repo as one commit, tagged vN.",
    )
    p.add_argument("folder", help="an output folder of `curate` or `select`")
    p.add_argument("repo_id", help="the Hub dataset repo (org/name); created if missing")
    pub = p.add_argument_group("publishing")
    add_config_flags(pub, PublishConfig, ("version", "private"))
    add_runtime_args(p)
    p.set_defaults(func=run)
