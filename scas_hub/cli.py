"""`scas-hub` command line: thin argparse over the Python API."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .constants import DEFAULT_GROUP, DEFAULT_GROUPS, DEFAULT_LAMBDA, DEFAULT_SEED, DEFAULT_STRATEGY, DEFAULT_STUDENT
from .errors import ScasHubError, StudentError


def _split_list(values: list[str] | None) -> list[str]:
    """`--x a,b --x c` -> `[a, b, c]`."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def _selection_kwargs(args: argparse.Namespace) -> dict:
    return dict(strategy=args.strategy, groups=args.groups, group=args.group, seed=args.seed, lam=args.lam,
                small_policy=args.small_policy, teacher_ranking=_split_list(args.teacher_ranking) or None)


def _print_result(result) -> None:
    from .report import drop_warning, set_aside_table

    s = result.stats
    print(f"\nSelected {s['questions_selected']} of {s['questions_in']} questions "
          f"from {s['rows_scored']} scored candidates ({s['rows_in']} rows in).")
    print(set_aside_table(s))
    print(f"Dataset folder: {result.out.resolve()}")
    if result.repo_id:
        from huggingface_hub import constants

        print(f"Pushed to {constants.ENDPOINT}/datasets/{result.repo_id} as {result.version}")
    warning = drop_warning(s, result.out)
    if warning:
        sys.stdout.flush()
        print(f"scas-hub: warning: {warning}", file=sys.stderr)


def _print_load_line(target) -> None:
    print("Load it with:\n")
    print("    from datasets import load_dataset")
    print(f'    ds = load_dataset("{target}")')


def _curate(args: argparse.Namespace) -> int:
    from .pipeline import curate
    from .score.engine import ScoringConfig

    if args.num_processes > 1 and not _launched_by_accelerate():
        return _relaunch(args.num_processes)
    students = _split_list(args.student) or [DEFAULT_STUDENT]
    scoring = ScoringConfig(token_budget=args.token_budget, attention=args.attention, compile=args.compile,
                            window_chars=args.window_chars,
                            max_length=args.max_length, truncate=args.truncate,
                            feature_module=args.feature_module, feature_layer=args.feature_layer,
                            progress=not args.no_progress,
                            chat_template=Path(args.chat_template) if args.chat_template else None)
    common = dict(source=args.source, out=args.out, subset=args.subset, source_revision=args.source_revision,
                  verification=args.verify, **_selection_kwargs(args), dtype=args.dtype, device=args.device,
                  scoring=scoring, push=args.push, version=args.version, private=args.private,
                  score_cache=False if args.no_score_cache else (args.score_cache or True))
    if len(students) > 1:
        if args.student_revision or args.round is not None:
            raise StudentError("--student-revision and --round take one student; run the students one by one")
        from .several_students import curate_students

        run = curate_students(students, **common)
        if run is None:  # another rank of an `accelerate launch`: rank 0 reports
            return 0
        for result in run.results.values():
            _print_result(result)
        print(f"\n{run.table}\nSummary: {run.summary_json.resolve()} and {run.summary_markdown.name}")
        return 0
    result = curate(student=students[0], student_revision=args.student_revision, round_number=args.round, **common)
    if result is None:  # another rank of an `accelerate launch`: rank 0 reports
        return 0
    _print_result(result)
    _print_load_line(result.repo_id or result.out.resolve())
    return 0


def _select(args: argparse.Namespace) -> int:
    from .pipeline import reselect

    result = reselect(args.candidates, args.out, revision=args.revision, **_selection_kwargs(args),
                      push=args.push, version=args.version, private=args.private)
    _print_result(result)
    _print_load_line(result.repo_id or result.out.resolve())
    return 0


def _launched_by_accelerate() -> bool:
    import os

    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _relaunch(num_processes: int) -> int:
    """Start this same command under `accelerate launch` with N processes (CPU ranks use gloo)."""
    import os
    import subprocess

    import torch

    argv = list(sys.argv[1:])
    for i, a in enumerate(argv):  # drop --num-processes N / --num-processes=N
        if a == "--num-processes":
            del argv[i : i + 2]
            break
        if a.startswith("--num-processes="):
            del argv[i]
            break
    env = dict(os.environ)
    if not torch.cuda.is_available():
        env["ACCELERATE_USE_CPU"] = "true"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes),
           "--multi_gpu", "-m", "scas_hub", *argv]
    return subprocess.call(cmd, env=env)


def _students(args: argparse.Namespace) -> int:
    from .score.students import STUDENTS

    for spec in STUDENTS.values():
        print(f"{spec.alias:24} {spec.repo_id:40} {spec.description}")
    return 0


def _builders(args: argparse.Namespace) -> int:
    from .source import list_builders

    for name, recipe in sorted(list_builders().items()):
        where = recipe.repo_id or " + ".join(t.repo_id or t.teacher for t in recipe.teachers) or "bundled"
        subsets = ",".join(recipe.subsets) or "-"
        print(f"{name:14} {recipe.layout:6} {recipe.verification:8} {subsets:34} {where}")
        print(f"{'':14} {recipe.description}")
    return 0


def _push(args: argparse.Namespace) -> int:
    from .publish.hub import push_folder

    pushed = push_folder(args.folder, args.repo_id, version=args.version, private=args.private)
    print(f"Pushed {args.folder} to {args.repo_id} as {pushed.version} (commit {pushed.commit})")
    print(f'Load it with: load_dataset("{args.repo_id}", revision="{pushed.version}")')
    return 0


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends `(default: X)` where there is a value to show; flags, and options whose help says
    what their default does, are left as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return super()._get_help_string(action)


def _add_selection_args(parser: argparse.ArgumentParser) -> None:
    p = parser.add_argument_group("selection")
    p.add_argument("--strategy", default=DEFAULT_STRATEGY,
                   help="scas (group sampling), argmin, lowest-nll, teacher:<name>, strongest, random")
    p.add_argument("--groups", type=int, default=DEFAULT_GROUPS, metavar="G",
                   help="scas: split each question's candidates, ranked by score, into G groups")
    p.add_argument("--group", type=int, default=DEFAULT_GROUP, metavar="K",
                   help="scas: draw from group K (1 = lowest cost)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the per-question draws (scas, random)")
    p.add_argument("--lambda", dest="lam", type=float, default=DEFAULT_LAMBDA,
                   help="weight of the answer-question term: score = (1 - λ)·AA + λ·AQ")
    p.add_argument("--small-policy", default="nearest", choices=["nearest", "drop"],
                   help="questions with fewer candidates than groups: nearest non-empty group, or drop")
    p.add_argument("--teacher-ranking", action="append", default=None, metavar="A,B,C",
                   help="for --strategy strongest: teachers best first (default: most verified answers)")


def _add_output_args(parser: argparse.ArgumentParser, out_help: str, out_required: bool = False) -> None:
    p = parser.add_argument_group("output & publishing")
    p.add_argument("--out", default=None, required=out_required, metavar="DIR", help=out_help)
    p.add_argument("--push", default=None, metavar="REPO_ID",
                   help="push to this Hub dataset repo (org/name), or to an org: ORG/scas-<student> for the scas "
                        "strategy, ORG/scas-<student>-<strategy> for any other (default: no push)")
    p.add_argument("--version", default=None, metavar="TAG",
                   help="tag of the pushed commit (default: the next vN)")
    p.add_argument("--private", action="store_true", help="create the Hub repo private")


def _add_runtime_args(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    p = parser.add_argument_group("runtime")
    p.add_argument("--no-progress", action="store_true",
                   help="draw no progress bars (scoring, model loading, parquet, Hub transfers)")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scas-hub", formatter_class=_HelpFormatter,
        description="Build student-specific distillation datasets with SCAS (Student-Centric Answer Sampling) "
                    "and publish them on the Hugging Face Hub.",
        epilog="`scas-hub COMMAND --help` lists a command's options with their defaults.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("curate", formatter_class=_HelpFormatter,
                       help="score a multi-teacher corpus with a student and select per question",
                       description="Score a multi-teacher corpus with a student, select one answer per question, "
                                   "write a Hub-ready dataset folder with its card, and optionally push it.")
    src = c.add_argument_group("source")
    src.add_argument("--source", default=None,
                     help="builder name (`scas-hub builders`), recipe file (.py), folder of per-teacher files, "
                          "or Hub dataset id (default: demo for the embedded student, scas_pool otherwise)")
    src.add_argument("--subset", default=None,
                     help="subset(s) of the source, e.g. deepscaler, a,b or all (default: the recipe's default)")
    src.add_argument("--source-revision", default=None, metavar="REV",
                     help="Hub revision of the source: tag, branch or commit (default: main)")
    src.add_argument("--verify", default=None, choices=["auto", "flags", "math", "trusted"],
                     help="override the source's verification rule (default: the recipe's; auto for local files)")

    st = c.add_argument_group("student & scoring")
    st.add_argument("--student", action="append", default=None,
                    help="alias (`scas-hub students`), Hub model id or local folder; several (repeated or a,b) "
                         f"write one dataset each and a comparison (default: {DEFAULT_STUDENT})")
    st.add_argument("--student-revision", default=None, metavar="REV",
                    help="Hub revision of the student: tag, branch or commit (default: main)")
    st.add_argument("--round", type=int, default=None, metavar="N",
                    help="training round of this student checkpoint: publishes the next version of the same "
                         "dataset and shows every round in the card; round N > 1 reads round N-1 from --push "
                         "or --out (default: no rounds)")
    st.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                    help="weights and activations while scoring; auto = bfloat16 on CUDA, float32 otherwise")
    st.add_argument("--device", default=None,
                    help="torch device, e.g. cpu, cuda, cuda:1 (default: cuda if available, else cpu)")
    st.add_argument("--token-budget", type=int, default=None,
                    help="tokens per (packed) forward pass (default: 4096 on CPU, 16384 on GPU)")
    st.add_argument("--attention", default="sdpa", choices=["sdpa", "flex"],
                    help="packed attention: a kernel call per answer (sdpa, best on CPU) or one block-sparse "
                         "flex-attention call per layer (flex, compiled on CUDA); same scores")
    st.add_argument("--compile", action="store_true",
                    help="fuse the student's norms and MLP activations with torch.compile (seconds of warm-up)")
    st.add_argument("--window-chars", type=int, default=262_144,
                    help="characters of candidate text per scheduling window (the unit of sharding and resume)")
    st.add_argument("--max-length", type=int, default=None,
                    help="skip candidates longer than this many tokens (default: no limit)")
    st.add_argument("--truncate", action="store_true",
                    help="score the first --max-length tokens instead of skipping")
    st.add_argument("--feature-module", default=None, metavar="PATH",
                    help="dotted path of the module whose output is the token feature; {layer} is replaced "
                         "(default: model.layers.{layer}.mlp.up_proj)")
    st.add_argument("--feature-layer", type=int, default=None, metavar="L",
                    help="decoder layer of the feature module, 0-based (default: the last)")
    st.add_argument("--score-cache", default=None, metavar="DIR",
                    help="score cache / resume folder (default: under $SCAS_HUB_CACHE or $HF_HOME/scas_hub)")
    st.add_argument("--no-score-cache", action="store_true", help="score everything, write no cache")
    st.add_argument("--chat-template", default=None, metavar="FILE",
                    help="Jinja chat template to render candidates with (default: the student's own; needed when "
                         "its tokenizer has none); recorded in the card, part of the score cache key")

    _add_selection_args(c)
    _add_output_args(c, "output folder (default: out/scas-<student>; with several students, their parent: out)")
    rt = _add_runtime_args(c)
    rt.add_argument("--num-processes", type=int, default=1, metavar="N",
                    help="score on N processes via `accelerate launch` (one per GPU; CPU ranks use gloo)")
    c.set_defaults(func=_curate)

    r = sub.add_parser("select", formatter_class=_HelpFormatter,
                       help="select again from a dataset's stored scores (no model is loaded)",
                       description="Select again from the scores a scas-hub dataset stores (its candidates "
                                   "config): another strategy or setting, no model is loaded.")
    src = r.add_argument_group("source")
    src.add_argument("--candidates", required=True, metavar="SRC",
                     help="an output folder of `curate`, or a Hub dataset id (its `candidates` config)")
    src.add_argument("--revision", default=None, metavar="REV",
                     help="Hub revision of SRC: a tag (v1, ...), branch or commit (default: main)")
    _add_selection_args(r)
    _add_output_args(r, "the new output folder", out_required=True)
    _add_runtime_args(r)
    r.set_defaults(func=_select)

    s = sub.add_parser("students", help="list student aliases", formatter_class=_HelpFormatter)
    s.set_defaults(func=_students)
    b = sub.add_parser("builders", help="list corpus recipes", formatter_class=_HelpFormatter)
    b.set_defaults(func=_builders)

    p = sub.add_parser("push", formatter_class=_HelpFormatter, help="push an output folder to the Hub and tag it",
                       description="Push an output folder to a Hub dataset repo as one commit, tagged vN.")
    p.add_argument("folder", help="an output folder of `curate` or `select`")
    p.add_argument("repo_id", help="the Hub dataset repo (org/name); created if missing")
    pub = p.add_argument_group("publishing")
    pub.add_argument("--version", default=None, metavar="TAG", help="tag of the pushed commit (default: the next vN)")
    pub.add_argument("--private", action="store_true", help="create the Hub repo private")
    _add_runtime_args(p)
    p.set_defaults(func=_push)
    return parser


def _error(message: str) -> None:
    print(f"scas-hub: error: {' '.join(message.split())}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run one command; expected failures end as one line on stderr and exit code 2, Ctrl-C as 130."""
    args = build_parser().parse_args(argv)
    if getattr(args, "no_progress", False):
        from .progress import disable_progress_bars

        disable_progress_bars()
    try:
        return args.func(args)
    except ScasHubError as err:
        _error(str(err))
        return 2
    except KeyboardInterrupt:
        again = ("to resume (scores are cached)" if args.command == "curate" and not args.no_score_cache
                 else "to start again")
        print(f"\nscas-hub: interrupted; rerun the same command {again}", file=sys.stderr)
        return 130
    except Exception as err:
        # last line of defence for the Hub: a failure to reach it is the user's to fix, not a bug
        from .hub_access import describe, is_hub_error, what_to_do

        if not is_hub_error(err):
            raise
        _error(f"cannot reach the Hub ({describe(err)}); {what_to_do()}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
