"""`scas-hub generate`: teachers' answers to a source's questions."""

from __future__ import annotations

import argparse
import shlex

from ..generate.config import GenerateConfig, RetryPolicy, RoutingConfig
from .common import HelpFormatter
from .options import add_config_flags

REQUEST_FLAGS = (
    "samples",
    "max_tokens",
    "temperature",
    "top_p",
    "seed",
    "system_prompt",
    "api_key_env",
    "concurrency",
)
"""The `GenerateConfig` fields `generate` takes as flags, in --help order (then the retry policy's)."""
RETRY_FLAGS = ("retries", "backoff", "timeout")
ROUTING_FLAGS = ("student", "probe", "keep", "verification")
"""The `RoutingConfig` fields, as `--route-student`, `--route-probe`, `--route-keep`, `--route-verify`."""


def run(args: argparse.Namespace) -> int:
    from ..generate import generate, load_teachers_file, parse_teacher

    teachers = [parse_teacher(t) for t in args.teacher or []]
    for path in args.teachers or []:
        teachers += load_teachers_file(path)
    config = GenerateConfig(
        **{name: getattr(args, name) for name in (*REQUEST_FLAGS, "vllm_python")},
        retry=RetryPolicy(**{name: getattr(args, name) for name in RETRY_FLAGS}),
        vllm_args=tuple(shlex.split(args.vllm_args or "")),
        progress=not args.no_progress,
    )
    routing = None
    if args.route_student:
        routing = RoutingConfig(
            args.route_student,
            args.route_probe,
            args.route_keep,
            verification=args.route_verify,
            progress=not args.no_progress,
        )
    result = generate(
        args.source,
        teachers,
        args.out,
        subset=args.subset,
        limit=args.limit,
        source_revision=args.source_revision,
        config=config,
        routing=routing,
        command=args.command_line,
        push=args.push,
        private=args.private,
    )
    print(f"\n{'teacher':24} {'requests':>8} {'written':>8} {'truncated':>9}  failed")
    for name, c in result.counts.items():
        failed = ", ".join(f"{reason} {n}" for reason, n in c.failed.most_common()) or "none"
        print(f"{name:24} {c.requests:>8} {c.written:>8} {c.truncated:>9}  {failed}")
    if result.skipped_done:
        print(f"{result.skipped_done} requests skipped: their answers were already written (resumed)")
    if routing is not None:
        import json

        routed = json.loads((result.out / "routing.json").read_text(encoding="utf-8"))
        print(
            f"Routing ({routed['probe_questions']} probe questions, student {routed['student']}): kept "
            f"{', '.join(routed['kept'])}; SCAS pick unchanged on {routed['pick_unchanged_share']:.0%} of the probe; "
            f"{routed['saved']['requests']} requests saved"
        )
    print(f"Corpus: {result.out.resolve()} (curate it with `scas-hub curate --source {result.out}`)")
    if result.pushed:
        print(f"Pushed to {result.pushed}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser(
        "generate",
        formatter_class=HelpFormatter,
        help="ask teachers (vLLM or OpenAI-compatible endpoints) for answers to a source's questions",
        description="Write teachers' answers in the published pool's layout (data/<source>/<teacher>"
        ".jsonl), which `curate --source DIR` reads. A rerun resumes.",
    )
    g.add_argument(
        "--source",
        required=True,
        help="questions and reference answers: builder, recipe file (.py), folder, or Hub dataset id",
    )
    g.add_argument("--subset", default=None, help="subset of the source (default: the recipe's default)")
    g.add_argument("--source-revision", default=None, metavar="REV", help="Hub revision of the source (default: main)")
    g.add_argument("--limit", type=int, default=None, help="the first N questions (default: all)")
    g.add_argument(
        "--teacher",
        action="append",
        default=None,
        metavar="NAME=SPEC",
        help="NAME=MODEL (a Hub id or folder served by a local vLLM server) or NAME=openai:URL#MODEL; "
        "settings after ?, e.g. ?temperature=0.2&system=Answer+tersely.&api_key_env=MY_KEY "
        "(default: none; --teacher or --teachers is needed)",
    )
    g.add_argument(
        "--teachers",
        action="append",
        default=None,
        metavar="FILE",
        help="YAML or JSON file listing teachers (name, spec or model/endpoint, settings; default: none)",
    )
    add_config_flags(g, GenerateConfig, REQUEST_FLAGS)
    add_config_flags(g, RetryPolicy, RETRY_FLAGS)
    add_config_flags(g, RoutingConfig, ROUTING_FLAGS)
    add_config_flags(g, GenerateConfig, ("vllm_python",))
    add_config_flags(g, GenerateConfig, ("vllm_args",), unset=True)  # one shell-quoted string, split in `run`
    g.add_argument("--out", required=True, metavar="DIR", help="output folder; a rerun resumes it")
    g.add_argument(
        "--push", default=None, metavar="REPO_ID", help="upload the corpus to this Hub dataset repo (default: no push)"
    )
    g.add_argument("--private", action="store_true", help="create the Hub repo private")
    g.add_argument("--no-progress", action="store_true", help="draw no progress bars")
    g.set_defaults(func=run)
