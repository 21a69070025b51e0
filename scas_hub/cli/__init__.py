"""`scas-hub` command line: thin argparse over the Python API, one module per subcommand.

Every subcommand module keeps its heavy imports (torch, transformers, datasets, the workflows)
inside its `run` function, so `scas-hub --help` and building the parser load none of them.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys

from ..errors import ScasHubError
from . import ablate, builders, curate, evaluate, generate, push, rounds, select, students, train
from .common import HelpFormatter

COMMANDS = (curate, select, train, rounds, evaluate, ablate, generate, students, builders, push)
"""The subcommand modules, in the order `scas-hub --help` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The `scas-hub` parser: every subcommand module registers its own subparser."""
    parser = argparse.ArgumentParser(
        prog="scas-hub",
        formatter_class=HelpFormatter,
        description="Build student-specific distillation datasets with SCAS (Student-Centric Answer Sampling) "
        "and publish them on the Hugging Face Hub.",
        epilog="`scas-hub COMMAND --help` lists a command's options with their defaults.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def _error(message: str) -> None:
    print(f"scas-hub: error: {' '.join(message.split())}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run one command; expected failures end as one line on stderr and exit code 2, Ctrl-C as 130."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["scas-hub", *argv])  # recorded by evaluate and ablate
    from ..progress import progress_bars_off

    bars = progress_bars_off() if getattr(args, "no_progress", False) else contextlib.nullcontext()
    if isinstance(getattr(args, "source", None), str) and not args.source.strip():  # not the default corpus
        from ..source import EMPTY_SOURCE

        _error(EMPTY_SOURCE)
        return 2
    try:
        with bars:
            return args.func(args)
    except ScasHubError as err:
        from ..hub_access import is_hub_error

        message = str(err)
        if args.command in ("curate", "rounds", "train") and is_hub_error(err) and "resumes" not in message:
            message += " (rerunning resumes: finished steps and cached scores are kept)"
        _error(message)
        return err.exit_code
    except KeyboardInterrupt:
        if args.command in ("train", "rounds"):
            again = "to resume (finished steps are kept; training restarts from its last checkpoint)"
        else:
            again = (
                "to resume (scores are cached)"
                if args.command == "curate" and not args.no_score_cache
                else "to start again"
            )
        print(f"\nscas-hub: interrupted; rerun the same command {again}", file=sys.stderr)
        return 130
    except Exception as err:
        # last line of defence for the Hub: a failure to reach it is the user's to fix, not a bug
        from ..hub_access import describe, is_hub_error, what_to_do

        if not is_hub_error(err):
            raise
        resumes = (
            "; then run the same command again: it resumes (finished steps and cached scores are kept)"
            if args.command in ("curate", "rounds", "train")
            else ""
        )
        _error(f"cannot reach the Hub ({describe(err)}); {what_to_do()}{resumes}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
