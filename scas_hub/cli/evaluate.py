"""`scas-hub evaluate`: a student's greedy answers to held-out questions."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import HelpFormatter, add_eval_args, add_student_args, decoding, print_cut, questions_config


def run(args: argparse.Namespace) -> int:
    from ..evaluate import evaluate
    from ..evaluate.run import report_path

    decoding_config = decoding(args)
    generator = None
    if args.backend == "openai" or args.endpoint:
        from ..errors import ConfigError
        from ..evaluate.openai_backend import OpenAIGenerator

        if not args.endpoint or args.backend != "openai":
            raise ConfigError("--backend openai and --endpoint URL#MODEL go together")
        generator = OpenAIGenerator(
            args.endpoint, decoding_config, api_key_env=args.api_key_env, progress=not args.no_progress
        )
    report = evaluate(
        args.student,
        questions_config(args),
        args.out,
        student_revision=args.student_revision,
        decoding=decoding_config,
        device=args.device,
        reference_nll=not args.no_reference_nll,
        progress=not args.no_progress,
        command=args.command_line,
        system_prompt=args.system_prompt,
        chat_template=Path(args.chat_template) if args.chat_template else None,
        generator=generator,
    )
    print(f"\naccuracy {report.accuracy:.4f} ({report.n_correct} of {report.n_questions} questions)")
    print_cut(report.cut())
    if report.reference_nll:
        nll = report.reference_nll
        print(f"reference solutions: mean NLL {nll['mean']:.4f} over {nll['n_questions']} questions")
    print(f"Report: {report_path(args.out).resolve()}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser(
        "evaluate",
        formatter_class=HelpFormatter,
        help="greedy answers of a student to held-out questions, checked with math-verify",
    )
    e.add_argument("--student", required=True, help="alias, Hub model id or local folder (e.g. a checkpoint)")
    add_student_args(e, ("revision",))
    add_eval_args(e, subset_flags=("--subset",), batch_flag="--batch-size")
    # evaluation renders prompts and records the template's hash: its own words
    add_student_args(
        e,
        ("chat_template",),
        helps={
            "chat_template": "Jinja chat template to render prompts with (default: the student's own; a "
            "checkpoint's is the one its dataset was scored with); its SHA-256 is recorded"
        },
    )
    e.add_argument(
        "--no-reference-nll",
        action="store_true",
        help="skip the mean NLL of the source's reference solutions under the student",
    )
    e.add_argument("--out", default="report.json", help="report path (.json) or folder (default: report.json)")
    e.add_argument(
        "--endpoint",
        default=None,
        metavar="URL#MODEL",
        help="--backend openai: the student served by an OpenAI-compatible server, e.g. vLLM (default: none)",
    )
    e.add_argument(
        "--api-key-env", default=None, metavar="NAME", help="--backend openai: the key's env variable (default: no key)"
    )
    e.set_defaults(func=run)
