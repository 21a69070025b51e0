"""`scas-hub curate`: score a corpus with a student, select, publish."""

from __future__ import annotations

import argparse
from dataclasses import replace

from ..constants import DEFAULT_STUDENT
from ..errors import StudentError
from ..score.config import ScoringConfig
from .common import (
    HelpFormatter,
    add_launch_args,
    add_output_args,
    add_runtime_args,
    add_score_cache_args,
    add_selection_args,
    add_student_args,
    launched_by_accelerate,
    print_load_line,
    print_result,
    publish_config,
    relaunch,
    score_cache,
    selection_config,
    split_list,
    student_config,
)
from .options import add_config_flags

SCORING_FLAGS = (
    "token_budget",
    "attention",
    "compile",
    "window_chars",
    "max_length",
    "truncate",
    "feature_module",
    "feature_layer",
)
"""The `ScoringConfig` fields `curate` takes as flags, in --help order."""


def run(args: argparse.Namespace) -> int:
    from ..pipeline import curate

    if args.num_processes > 1 and not launched_by_accelerate():
        return relaunch(args.num_processes)
    students = split_list(args.student) or [DEFAULT_STUDENT]
    scoring = ScoringConfig(
        **{name: getattr(args, name) for name in SCORING_FLAGS},
        progress=not args.no_progress,
        score_cache=score_cache(args),
    )
    model = student_config(args, students[0])  # the chat template file is read here, once
    common = dict(
        source=args.source,
        out=args.out,
        subset=args.subset,
        source_revision=args.source_revision,
        verification=args.verify,
        selection=selection_config(args),
        scoring=scoring,
        publishing=publish_config(args),
    )
    if len(students) > 1:
        if args.student_revision or args.round is not None:
            raise StudentError("--student-revision and --round take one student; run the students one by one")
        from ..several_students import curate_students

        run = curate_students([replace(model, name=s) for s in students], **common)
        if run is None:  # another rank of an `accelerate launch`: rank 0 reports
            return 0
        for dataset in run.results.values():
            print_result(dataset)
        print(f"\n{run.table}\nSummary: {run.summary_json.resolve()} and {run.summary_markdown.name}")
        return 0
    result = curate(model, round_number=args.round, **common)
    if result is None:  # another rank of an `accelerate launch`: rank 0 reports
        return 0
    print_result(result)
    print_load_line(result.repo_id or result.out.resolve())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser(
        "curate",
        formatter_class=HelpFormatter,
        help="score a multi-teacher corpus with a student and select per question",
        description="Score a multi-teacher corpus with a student, select one answer per question, "
        "write a Hub-ready dataset folder with its card, and optionally push it.",
    )
    src = c.add_argument_group("source")
    src.add_argument(
        "--source",
        default=None,
        help="builder name (`scas-hub builders`), recipe file (.py), folder of per-teacher files, "
        "or Hub dataset id (default: demo for the embedded student, scas_pool otherwise)",
    )
    src.add_argument(
        "--subset",
        default=None,
        help="subset(s) of the source, e.g. deepscaler, a,b or all; . for the files at the top of a "
        "folder that has subfolders too (default: the recipe's default)",
    )
    src.add_argument(
        "--source-revision",
        default=None,
        metavar="REV",
        help="Hub revision of the source: tag, branch or commit (default: main)",
    )
    src.add_argument(
        "--verify",
        default=None,
        choices=["auto", "flags", "math", "trusted"],
        help="override the source's verification rule (default: the recipe's; auto for local files)",
    )

    st = c.add_argument_group("student & scoring")
    st.add_argument(
        "--student",
        action="append",
        default=None,
        help="alias (`scas-hub students`), Hub model id or local folder; several (repeated or a,b) "
        f"write one dataset each and a comparison (default: {DEFAULT_STUDENT})",
    )
    add_student_args(st, ("revision",))
    st.add_argument(
        "--round",
        type=int,
        default=None,
        metavar="N",
        help="training round of this student checkpoint: publishes the next version of the same "
        "dataset and shows every round in the card; round N > 1 reads round N-1 from --push "
        "or --out (default: no rounds)",
    )
    add_student_args(st, ("dtype", "device"))
    add_config_flags(st, ScoringConfig, SCORING_FLAGS)
    add_score_cache_args(st)
    add_student_args(st, ("chat_template",))

    add_selection_args(c)
    add_output_args(c, "output folder (default: out/scas-<student>; with several students, their parent: out)")
    add_launch_args(add_runtime_args(c))
    c.set_defaults(func=run)
