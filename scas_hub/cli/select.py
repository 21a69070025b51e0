"""`scas-hub select`: select again from a dataset's stored scores (no model)."""

from __future__ import annotations

import argparse

from .common import (
    HelpFormatter,
    add_output_args,
    add_runtime_args,
    add_selection_args,
    print_load_line,
    print_result,
    publish_config,
    selection_config,
)


def run(args: argparse.Namespace) -> int:
    from ..pipeline import reselect

    result = reselect(
        args.candidates,
        args.out,
        revision=args.revision,
        selection=selection_config(args),
        publishing=publish_config(args),
    )
    print_result(result)
    print_load_line(result.repo_id or result.out.resolve())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser(
        "select",
        formatter_class=HelpFormatter,
        help="select again from a dataset's stored scores (no model is loaded)",
        description="Select again from the scores a scas-hub dataset stores (its candidates "
        "config): another strategy or setting, no model is loaded.",
    )
    src = r.add_argument_group("source")
    src.add_argument(
        "--candidates",
        required=True,
        metavar="SRC",
        help="an output folder of `curate`, or a Hub dataset id (its `candidates` config)",
    )
    src.add_argument(
        "--revision",
        default=None,
        metavar="REV",
        help="Hub revision of SRC: a tag (v1, ...), branch or commit (default: main)",
    )
    add_selection_args(r)
    add_output_args(r, "the new output folder", out_required=True)
    add_runtime_args(r)
    r.set_defaults(func=run)
