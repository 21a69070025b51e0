"""`scas-hub curate`: score a corpus with a student, select, publish."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..constants import DEFAULT_STUDENT
from ..errors import StudentError
from .common import (
    MAX_PROCESSES,
    HelpFormatter,
    add_output_args,
    add_runtime_args,
    add_selection_args,
    launched_by_accelerate,
    print_load_line,
    print_result,
    publish_config,
    relaunch,
    selection_config,
    split_list,
)
from .options import add_config_flags, int_in

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
    from ..score.config import ScoringConfig

    if args.num_processes > 1 and not launched_by_accelerate():
        return relaunch(args.num_processes)
    students = split_list(args.student) or [DEFAULT_STUDENT]
    scoring = ScoringConfig(
        **{name: getattr(args, name) for name in SCORING_FLAGS},
        progress=not args.no_progress,
        chat_template=Path(args.chat_template) if args.chat_template else None,
    )
    common = dict(
        source=args.source,
        out=args.out,
        subset=args.subset,
        source_revision=args.source_revision,
        verification=args.verify,
        selection=selection_config(args),
        dtype=args.dtype,
        device=args.device,
        scoring=scoring,
        publishing=publish_config(args),
        score_cache=False if args.no_score_cache else (args.score_cache or True),
    )
    if len(students) > 1:
        if args.student_revision or args.round is not None:
            raise StudentError("--student-revision and --round take one student; run the students one by one")
        from ..several_students import curate_students

        run = curate_students(students, **common)
        if run is None:  # another rank of an `accelerate launch`: rank 0 reports
            return 0
        for result in run.results.values():
            print_result(result)
        print(f"\n{run.table}\nSummary: {run.summary_json.resolve()} and {run.summary_markdown.name}")
        return 0
    result = curate(student=students[0], student_revision=args.student_revision, round_number=args.round, **common)
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
    st.add_argument(
        "--student-revision",
        default=None,
        metavar="REV",
        help="Hub revision of the student: tag, branch or commit (default: main)",
    )
    st.add_argument(
        "--round",
        type=int,
        default=None,
        metavar="N",
        help="training round of this student checkpoint: publishes the next version of the same "
        "dataset and shows every round in the card; round N > 1 reads round N-1 from --push "
        "or --out (default: no rounds)",
    )
    st.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="weights and activations while scoring; auto = bfloat16 on CUDA, float32 otherwise",
    )
    st.add_argument(
        "--device", default=None, help="torch device, e.g. cpu, cuda, cuda:1 (default: cuda if available, else cpu)"
    )
    from ..score.config import ScoringConfig

    add_config_flags(st, ScoringConfig, SCORING_FLAGS)
    st.add_argument(
        "--score-cache",
        default=None,
        metavar="DIR",
        help="score cache / resume folder (default: under $SCAS_HUB_CACHE or $HF_HOME/scas_hub)",
    )
    st.add_argument("--no-score-cache", action="store_true", help="score everything, write no cache")
    st.add_argument(
        "--chat-template",
        default=None,
        metavar="FILE",
        help="Jinja chat template to render candidates with (default: the student's own; needed when "
        "its tokenizer has none); recorded in the card, part of the score cache key",
    )

    add_selection_args(c)
    add_output_args(c, "output folder (default: out/scas-<student>; with several students, their parent: out)")
    rt = add_runtime_args(c)
    rt.add_argument(
        "--num-processes",
        type=int_in(1, MAX_PROCESSES),
        default=1,
        metavar="N",
        help="score on N processes via `accelerate launch` (one per GPU; CPU ranks use gloo)",
    )
    c.set_defaults(func=run)
