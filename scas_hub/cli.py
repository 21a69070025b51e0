"""`scas-hub` command line: thin argparse over the Python API."""

from __future__ import annotations

import argparse
import contextlib
import shlex
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


def _decoding(args: argparse.Namespace):
    from .evaluate import DecodingConfig

    return DecodingConfig(max_new_tokens=args.max_new_tokens, batch_size=args.eval_batch_size, backend=args.backend,
                          dtype=args.dtype)


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate
    from .evaluate.run import report_path

    generator = None
    if args.backend == "openai" or args.endpoint:
        from .errors import ConfigError
        from .evaluate.openai_backend import OpenAIGenerator

        if not args.endpoint or args.backend != "openai":
            raise ConfigError("--backend openai and --endpoint URL#MODEL go together")
        generator = OpenAIGenerator(args.endpoint, _decoding(args), api_key_env=args.api_key_env,
                                    progress=not args.no_progress)
    report = evaluate(args.student, args.eval, args.out, subset=args.subset, eval_revision=args.eval_revision,
                      student_revision=args.student_revision, limit=args.limit, sample_seed=args.sample_seed,
                      decoding=_decoding(args), device=args.device, reference_nll=not args.no_reference_nll,
                      progress=not args.no_progress, command=args.command_line, system_prompt=args.system_prompt,
                      chat_template=Path(args.chat_template) if args.chat_template else None, generator=generator)
    print(f"\naccuracy {report.accuracy:.4f} ({report.n_correct} of {report.n_questions} questions)")
    _print_cut(report.cut())
    if report.reference_nll:
        nll = report.reference_nll
        print(f"reference solutions: mean NLL {nll['mean']:.4f} over {nll['n_questions']} questions")
    print(f"Report: {report_path(args.out).resolve()}")
    return 0


def _print_cut(cut: dict, name: str = "") -> None:
    """Answers cut at the token limit and the accuracy on finished ones; a warning above 10% cut."""
    finished = "-" if cut["accuracy_finished"] is None else f"{cut['accuracy_finished']:.4f}"
    answers = cut["n_finished"] + cut["cut_at_max_new_tokens"]
    print(f"{name}{cut['cut_at_max_new_tokens']} of {answers} answers cut at --max-new-tokens; accuracy on the "
          f"{cut['n_finished']} finished ones: {finished}")
    if cut["cut_warning"]:
        sys.stdout.flush()
        print(f"scas-hub: warning: {name}{cut['cut_warning']}", file=sys.stderr)


def _ablate(args: argparse.Namespace) -> int:
    from .ablate import DEFAULT_STRATEGIES, ablate

    config = _train_config(args)
    result = ablate(args.student, args.eval, args.out, strategies=_split_list(args.strategies) or DEFAULT_STRATEGIES,
                    source=args.source, subset=args.source_subset, source_revision=args.source_revision,
                    eval_subset=args.subset, eval_revision=args.eval_revision, limit=args.limit,
                    sample_seed=args.sample_seed, decoding=_decoding(args), train_config=config, seeds=args.seeds,
                    selection_seed=args.selection_seed, exclude_overlap=args.exclude_overlap,
                    baseline=not args.no_baseline,
                    student_revision=args.student_revision, device=args.device, progress=not args.no_progress,
                    push=args.push, repo_type=args.repo_type, private=args.private, command=args.command_line,
                    system_prompt=args.system_prompt)
    record = result.record
    print()
    for name, s in [*record["strategies"].items(), *([("baseline", record["baseline"])] if "baseline" in record
                                                      else [])]:
        ci = f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}]" if s["ci_low"] is not None else "[n/a]"
        vs = s.get("vs_scas")
        diff = f"  vs scas {vs['difference']:+.3f}" if vs else ""
        print(f"{name:14} accuracy {s['accuracy']:.3f} {ci} over {s['n_questions']} questions{diff}")
        _print_cut(s, f"{name}: ")
    overlap = record["overlap"]
    print(f"eval questions also in the training corpus: {overlap['eval_questions']}"
          + (" (excluded from training)" if record["exclude_overlap"] else ""))
    print(f"Report: {(result.out / 'README.md').resolve()} and ablation.json")
    if result.repo_id:
        print(f"Pushed to {result.repo_id} (commit {result.commit})")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from .generate import GenerateConfig, RetryPolicy, generate, load_teachers_file, parse_teacher

    teachers = [parse_teacher(t) for t in args.teacher or []]
    for path in args.teachers or []:
        teachers += load_teachers_file(path)
    config = GenerateConfig(samples=args.samples, max_tokens=args.max_tokens, temperature=args.temperature,
                            top_p=args.top_p, seed=args.seed, system_prompt=args.system_prompt,
                            concurrency=args.concurrency, api_key_env=args.api_key_env,
                            retry=RetryPolicy(retries=args.retries, backoff=args.backoff, timeout=args.timeout),
                            vllm_python=args.vllm_python, vllm_args=tuple(shlex.split(args.vllm_args or "")),
                            progress=not args.no_progress)
    routing = None
    if args.route_student:
        from .generate import RoutingConfig

        routing = RoutingConfig(args.route_student, args.route_probe, args.route_keep, verification=args.route_verify,
                                progress=not args.no_progress)
    result = generate(args.source, teachers, args.out, subset=args.subset, limit=args.limit,
                      source_revision=args.source_revision, config=config, routing=routing,
                      command=args.command_line, push=args.push, private=args.private)
    print(f"\n{'teacher':24} {'requests':>8} {'written':>8} {'truncated':>9}  failed")
    for name, c in result.counts.items():
        failed = ", ".join(f"{reason} {n}" for reason, n in c.failed.most_common()) or "none"
        print(f"{name:24} {c.requests:>8} {c.written:>8} {c.truncated:>9}  {failed}")
    if result.skipped_done:
        print(f"{result.skipped_done} requests skipped: their answers were already written (resumed)")
    if routing is not None:
        import json

        routed = json.loads((result.out / "routing.json").read_text(encoding="utf-8"))
        print(f"Routing ({routed['probe_questions']} probe questions, student {routed['student']}): kept "
              f"{', '.join(routed['kept'])}; SCAS pick unchanged on {routed['pick_unchanged_share']:.0%} of the probe; "
              f"{routed['saved']['requests']} requests saved")
    print(f"Corpus: {result.out.resolve()} (curate it with `scas-hub curate --source {result.out}`)")
    if result.pushed:
        print(f"Pushed to {result.pushed}")
    return 0


def _add_eval_args(p: argparse.ArgumentParser, subset_flags: tuple[str, ...] = (),
                   batch_flags: tuple[str, ...] = ("--batch-size",),
                   system_prompt_help: str = "system prompt of every question (default: each row's own, else the "
                                             "project's default, as training and scoring render rows)") -> None:
    p.add_argument("--eval", required=True, metavar="SOURCE",
                   help="held-out questions: builder, recipe file (.py), folder, or Hub dataset id")
    p.add_argument("--eval-subset", *subset_flags, dest="subset", default=None,
                   help="subset of the eval source (default: the recipe's default)")
    p.add_argument("--eval-revision", default=None, metavar="REV",
                   help="Hub revision of the eval source: tag, branch or commit (default: main)")
    p.add_argument("--limit", type=int, default=None,
                   help="evaluate N questions, a seeded uniform draw (default: every question)")
    p.add_argument("--sample-seed", type=int, default=DEFAULT_SEED, help="seed of the --limit draw")
    p.add_argument("--max-new-tokens", type=int, default=1024, help="most tokens generated per answer")
    p.add_argument(*batch_flags, dest="eval_batch_size", type=int, default=16,
                   help="prompts per generate call (transformers backend)")
    p.add_argument("--backend", default="auto", choices=["auto", "transformers", "vllm", "openai"],
                   help="auto: vLLM when installed and on a GPU, else transformers")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="weights and activations while decoding; auto = bfloat16 on CUDA, float32 otherwise")
    p.add_argument("--device", default=None,
                   help="torch device, e.g. cpu, cuda, cuda:1 (default: cuda if available, else cpu)")
    p.add_argument("--system-prompt", default=None, metavar="TEXT", help=system_prompt_help)
    p.add_argument("--no-progress", action="store_true", help="draw no progress bars")


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


def _train_config(args: argparse.Namespace):
    """`TrainConfig` from the training flags; unset flags keep the reference recipe's defaults."""
    import os

    from .errors import ConfigError
    from .train import TrainConfig

    values = {k: getattr(args, k) for k in ("learning_rate", "lr_scheduler_type", "warmup_ratio", "epochs",
                                            "max_length", "per_device_batch_size", "max_steps", "bf16",
                                            "save_steps") if getattr(args, k) is not None}
    if args.train_seed is not None:
        values["seed"] = args.train_seed
    if args.gradient_checkpointing:
        values["gradient_checkpointing"] = True
    if args.grad_accum is not None:
        if args.effective_batch is not None:
            raise ConfigError("pass --effective-batch or --grad-accum, not both")
        world = int(os.environ.get("WORLD_SIZE", "1"))
        values["effective_batch_size"] = args.grad_accum * values.get("per_device_batch_size", 1) * world
    elif args.effective_batch is not None:
        values["effective_batch_size"] = args.effective_batch
    return TrainConfig(**values)


def _train(args: argparse.Namespace) -> int:
    from .train import train

    if args.num_processes > 1 and not _launched_by_accelerate():
        return _relaunch(args.num_processes)
    result = train(args.dataset, args.student, args.out, revision=args.revision,
                   student_revision=args.student_revision, config=_train_config(args), push=args.push,
                   private=args.private, progress=not args.no_progress, keep_checkpoints=args.keep_checkpoints,
                   chat_template=Path(args.chat_template) if args.chat_template else None)
    print(f"\n{'Found finished' if result.found_finished else 'Trained'} "
          f"{result.student['repo_id']} on {result.dataset}: {result.steps} steps, final loss {result.final_loss:.4f}")
    print(f"Checkpoint: {result.checkpoint.resolve()}")
    if result.repo_id:
        print(f"Pushed to the model repo {result.repo_id} (commit {result.commit})")
    print(f"Score the corpus again with it: scas-hub curate --student {result.checkpoint} --round 2 ...")
    return 0


def _rounds(args: argparse.Namespace) -> int:
    from .rounds.loop import run_rounds
    from .score.engine import ScoringConfig

    if args.num_processes > 1 and not _launched_by_accelerate():
        return _relaunch(args.num_processes)
    train_config = _train_config(args)
    scoring = ScoringConfig(token_budget=args.token_budget, progress=not args.no_progress,
                            max_length=train_config.max_length, truncate=args.truncate)
    result = run_rounds(args.student, args.rounds, args.out, source=args.source, subset=args.subset,
                        student_revision=args.student_revision, push=args.push,
                        push_checkpoints=args.push_checkpoints, private=args.private,
                        train_config=train_config, **_selection_kwargs(args), dtype=args.dtype,
                        device=args.device, scoring=scoring, from_base=args.from_base,
                        eval_source=args.eval, eval_subset=args.eval_subset, eval_revision=args.eval_revision,
                        eval_limit=args.eval_limit, eval_seed=args.eval_seed,
                        decoding=_decoding(args) if args.eval else None,
                        score_cache=False if args.no_score_cache else (args.score_cache or True),
                        chat_template=Path(args.chat_template) if args.chat_template else None,
                        progress=not args.no_progress)
    print(f"\n{result.table()}\n\nRounds folder: {result.out.resolve()}")
    print(f"The student after {len(result.rounds)} rounds: {result.final_checkpoint.resolve()}")
    if result.base_eval:
        print(f"Accuracy per round: {(result.out / 'rounds.json').resolve()} and figures/accuracy.png")
    if args.push:
        _print_load_line(args.push)
    return 0


def _add_train_args(p: argparse.ArgumentParser, seed_flag: str = "--seed") -> None:
    g = p.add_argument_group("training (default: the reference recipe)")
    g.add_argument("--max-steps", type=int, default=None, metavar="N",
                   help="stop after N optimizer steps (default: run --epochs)")
    g.add_argument("--epochs", type=float, default=None, metavar="N",
                   help="passes over the dataset (default: 3; --max-steps overrides it)")
    g.add_argument("--learning-rate", type=float, default=None, metavar="LR", help="peak learning rate (default: 1e-5)")
    g.add_argument("--lr-scheduler", dest="lr_scheduler_type", default=None, metavar="NAME",
                   help="transformers scheduler name (default: cosine)")
    g.add_argument("--warmup-ratio", type=float, default=None, metavar="R",
                   help="share of the steps spent warming up (default: 0.05)")
    g.add_argument("--batch-size", dest="per_device_batch_size", type=int, default=None, metavar="N",
                   help="conversations per device per micro-batch (default: 1)")
    g.add_argument("--effective-batch", type=int, default=None, metavar="N",
                   help="conversations per optimizer step over all processes (default: 8)")
    g.add_argument("--grad-accum", type=int, default=None, metavar="N",
                   help="accumulation steps, instead of --effective-batch (default: effective batch / "
                        "(batch size x processes))")
    g.add_argument("--max-length", type=int, default=None, metavar="TOKENS",
                   help="tokens per conversation; longer ones are cut (default: 4096)")
    g.add_argument(seed_flag, dest="train_seed", type=int, default=None, help="training seed (default: 42)")
    g.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 mixed precision (default: on with CUDA)")
    g.add_argument("--gradient-checkpointing", action="store_true",
                   help="recompute activations in the backward pass to save memory")
    g.add_argument("--save-steps", type=int, default=None, metavar="N",
                   help="optimizer steps between the checkpoints a crashed run resumes from (default: 100)")
    g.add_argument("--chat-template", default=None, metavar="FILE",
                   help="Jinja chat template to render with instead of the student's own, as the dataset was "
                        "scored with it; saved with the checkpoints (default: the student's)")


def _students(args: argparse.Namespace) -> int:
    from .student.loading import STUDENTS

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


MAX_PROCESSES = 1024
"""Most `--num-processes`: more ranks than any one machine holds devices or cores."""


def _int_in(low: int, high: int):
    """argparse type: an integer in `[low, high]` (a huge number is a typo, and would overflow later)."""

    def integer(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid integer value: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not in [{low}, {high}]")
        return value

    return integer


def _add_selection_args(parser: argparse.ArgumentParser) -> None:
    from .constants import MAX_GROUPS

    p = parser.add_argument_group("selection")
    p.add_argument("--strategy", default=DEFAULT_STRATEGY,
                   help="scas (group sampling), argmin, lowest-nll, teacher:<name>, strongest, random")
    p.add_argument("--groups", type=_int_in(1, MAX_GROUPS), default=DEFAULT_GROUPS, metavar="G",
                   help="scas: split each question's candidates, ranked by score, into G groups")
    p.add_argument("--group", type=_int_in(1, MAX_GROUPS), default=DEFAULT_GROUP, metavar="K",
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
                     help="subset(s) of the source, e.g. deepscaler, a,b or all; . for the files at the top of a "
                          "folder that has subfolders too (default: the recipe's default)")
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
    rt.add_argument("--num-processes", type=_int_in(1, MAX_PROCESSES), default=1, metavar="N",
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

    t = sub.add_parser("train", formatter_class=_HelpFormatter,
                       help="fine-tune a student on a curated dataset (TRL SFT; needs scas-hub[train])",
                       description="Full SFT of a student on a curated dataset with TRL, the loss on the answer "
                                   "tokens the scorer scored; resumes an interrupted run in --out.")
    src = t.add_argument_group("data & student")
    src.add_argument("--dataset", required=True, help="an output folder of `curate`, or a Hub dataset id")
    src.add_argument("--revision", default=None, metavar="REV",
                     help="Hub revision of --dataset: a tag (v1, ...), branch or commit (default: main)")
    src.add_argument("--student", default=DEFAULT_STUDENT, help="alias, Hub model id or local folder")
    src.add_argument("--student-revision", default=None, metavar="REV",
                     help="Hub revision of the student (default: main)")
    _add_train_args(t)
    pub = t.add_argument_group("output & publishing")
    pub.add_argument("--out", default=None, metavar="DIR",
                     help="checkpoint folder (default: out/checkpoints/<student>-sft)")
    pub.add_argument("--push", default=None, metavar="REPO_ID",
                     help="push the checkpoint to this Hub model repo (default: no push)")
    pub.add_argument("--private", action="store_true", help="create the Hub repo private")
    pub.add_argument("--keep-checkpoints", action="store_true",
                     help="keep the Trainer checkpoints (optimizer state) after the run")
    rt = _add_runtime_args(t)
    rt.add_argument("--num-processes", type=_int_in(1, MAX_PROCESSES), default=1, metavar="N",
                    help="train on N processes via `accelerate launch` (one per GPU)")
    t.set_defaults(func=_train)

    o = sub.add_parser("rounds", formatter_class=_HelpFormatter,
                       help="run the SCAS loop: score, select, publish, train, round after round",
                       description="Round r scores the corpus with the student of round r, selects, writes "
                                   "OUT/round-<r> (pushed as the next version), and trains the next student into "
                                   "OUT/checkpoints/round-<r>. A rerun continues at the first unfinished step.")
    src = o.add_argument_group("source & student")
    src.add_argument("--source", default=None,
                     help="the corpus, as for `curate` (default: demo for the embedded student, scas_pool otherwise)")
    src.add_argument("--subset", default=None, help="subset(s) of the source (default: the recipe's default)")
    src.add_argument("--student", default=DEFAULT_STUDENT, help="the base student: alias, Hub model id or folder")
    src.add_argument("--student-revision", default=None, metavar="REV",
                     help="Hub revision of the base student (default: main)")
    src.add_argument("--rounds", type=int, default=3, metavar="N", help="rounds to run (or to complete)")
    src.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                     help="the dtype the scorer runs the student in; auto = bfloat16 on CUDA, float32 otherwise")
    src.add_argument("--device", default=None, help="torch device for scoring (default: cuda if available)")
    src.add_argument("--token-budget", type=int, default=None,
                     help="tokens per scoring forward pass (default: 4096 on CPU, 16384 on GPU)")
    src.add_argument("--score-cache", default=None, metavar="DIR",
                     help="score cache / resume folder (default: under $SCAS_HUB_CACHE or $HF_HOME/scas_hub)")
    src.add_argument("--no-score-cache", action="store_true", help="score everything, write no cache")
    src.add_argument("--truncate", action="store_true",
                     help="score and train a candidate longer than --max-length on its first --max-length tokens "
                          "(default: set it aside as too_long)")
    _add_selection_args(o)
    _add_train_args(o, seed_flag="--train-seed")
    o.add_argument("--from-base", action="store_true",
                   help="train every round's checkpoint from the base student (default: continue from the "
                        "previous round's checkpoint)")
    ev = o.add_argument_group("evaluation (default: none)")
    ev.add_argument("--eval", default=None, metavar="SOURCE",
                    help="evaluate the base student and every round's checkpoint on these held-out questions "
                         "(builder, recipe, folder or Hub id); corpus questions among them are set aside from training "
                         "(default: no evaluation)")
    ev.add_argument("--eval-subset", default=None, help="subset of the eval source (default: the recipe's default)")
    ev.add_argument("--eval-revision", default=None, metavar="REV",
                    help="Hub revision of the eval source (default: main)")
    ev.add_argument("--eval-limit", type=int, default=None, metavar="N",
                    help="evaluate N questions, a seeded uniform draw (default: every question)")
    ev.add_argument("--eval-seed", type=int, default=DEFAULT_SEED, help="seed of the --eval-limit draw")
    ev.add_argument("--max-new-tokens", type=int, default=1024, help="most tokens generated per answer")
    ev.add_argument("--eval-batch-size", type=int, default=16, help="prompts per generate call (transformers)")
    ev.add_argument("--backend", default="auto", choices=["auto", "transformers", "vllm"],
                    help="auto: vLLM when installed and on a GPU, else transformers")
    pub = o.add_argument_group("output & publishing")
    pub.add_argument("--out", default=None, metavar="DIR", help="the loop's folder (default: out/rounds-<student>)")
    pub.add_argument("--push", default=None, metavar="REPO_ID",
                     help="Hub dataset repo (org/name): round r is pushed as its next version (default: no push)")
    pub.add_argument("--push-checkpoints", default=None, metavar="REPO_ID",
                     help="Hub model repo every trained checkpoint is pushed to (default: no push)")
    pub.add_argument("--private", action="store_true", help="create the Hub repos private")
    rt = _add_runtime_args(o)
    rt.add_argument("--num-processes", type=_int_in(1, MAX_PROCESSES), default=1, metavar="N",
                    help="score and train on N processes via `accelerate launch` (one per GPU)")
    o.set_defaults(func=_rounds)

    e = sub.add_parser("evaluate", formatter_class=_HelpFormatter,
                         help="greedy answers of a student to held-out questions, checked with math-verify")
    e.add_argument("--student", required=True, help="alias, Hub model id or local folder (e.g. a checkpoint)")
    e.add_argument("--student-revision", default=None, metavar="REV",
                   help="Hub revision of the student: tag, branch or commit (default: main)")
    _add_eval_args(e, subset_flags=("--subset",), batch_flags=("--batch-size",))
    e.add_argument("--chat-template", default=None, metavar="FILE",
                   help="Jinja chat template to render prompts with (default: the student's own; a checkpoint's is "
                        "the one its dataset was scored with); its SHA-256 is recorded")
    e.add_argument("--no-reference-nll", action="store_true",
                   help="skip the mean NLL of the source's reference solutions under the student")
    e.add_argument("--out", default="report.json", help="report path (.json) or folder (default: report.json)")
    e.add_argument("--endpoint", default=None, metavar="URL#MODEL",
                   help="--backend openai: the student served by an OpenAI-compatible server, e.g. vLLM "
                        "(default: none)")
    e.add_argument("--api-key-env", default=None, metavar="NAME",
                   help="--backend openai: the key's env variable (default: no key)")
    e.set_defaults(func=_evaluate)

    a = sub.add_parser("ablate", formatter_class=_HelpFormatter,
                         help="train one student per selection strategy and compare them on held-out questions")
    a.add_argument("--student", default=DEFAULT_STUDENT, help="alias, Hub model id or local folder")
    a.add_argument("--student-revision", default=None, metavar="REV",
                   help="Hub revision of the student: tag, branch or commit (default: main)")
    a.add_argument("--strategies", action="append", default=None, metavar="A,B,C",
                   help="default: scas,strongest,random,lowest-nll (scas is the reference of the paired comparison)")
    a.add_argument("--source", default=None, help="training corpus (default: demo for the embedded student, "
                                                  "scas_pool otherwise)")
    a.add_argument("--source-subset", "--subset", default=None,
                   help="subset of the training corpus (default: the recipe's default)")
    a.add_argument("--source-revision", default=None, metavar="REV",
                   help="Hub revision of the training corpus (default: main)")
    _add_eval_args(a, batch_flags=("--eval-batch-size",),
                   system_prompt_help="system prompt of every evaluation (default: the one the training datasets' "
                                      "rows share, else each eval row's own, else the project's default)")
    a.add_argument("--exclude-overlap", action=argparse.BooleanOptionalAction, default=True,
                   help="remove eval questions (matched by normalised text) from the training corpus (default: on; "
                        "--no-exclude-overlap keeps them, to measure what the overlap does)")
    a.add_argument("--seeds", type=int, default=1, help="train every arm K times (seeds --seed, --seed + 1, ...)")
    a.add_argument("--selection-seed", type=int, default=DEFAULT_SEED,
                   help="seed of every strategy's draws (scas group sampling, random)")
    _add_train_args(a)
    a.add_argument("--no-baseline", action="store_true", help="do not evaluate the untrained student")
    a.add_argument("--out", default="out/ablation", help="ablation folder; a rerun resumes it")
    a.add_argument("--push", default=None, metavar="REPO_ID",
                   help="push the report to this Hub repo (default: no push)")
    a.add_argument("--repo-type", default="dataset", choices=["dataset", "model"],
                   help="kind of Hub repo --push creates")
    a.add_argument("--private", action="store_true", help="create the Hub repo private")
    a.set_defaults(func=_ablate)

    g = sub.add_parser("generate", formatter_class=_HelpFormatter,
                       help="ask teachers (vLLM or OpenAI-compatible endpoints) for answers to a source's questions",
                       description="Write teachers' answers in the published pool's layout (data/<source>/<teacher>"
                                   ".jsonl), which `curate --source DIR` reads. A rerun resumes.")
    g.add_argument("--source", required=True, help="questions and reference answers: builder, recipe file (.py), "
                                                    "folder, or Hub dataset id")
    g.add_argument("--subset", default=None, help="subset of the source (default: the recipe's default)")
    g.add_argument("--source-revision", default=None, metavar="REV", help="Hub revision of the source (default: main)")
    g.add_argument("--limit", type=int, default=None, help="the first N questions (default: all)")
    g.add_argument("--teacher", action="append", default=None, metavar="NAME=SPEC",
                   help="NAME=MODEL (a Hub id or folder served by a local vLLM server) or NAME=openai:URL#MODEL; "
                        "settings after ?, e.g. ?temperature=0.2&system=Answer+tersely.&api_key_env=MY_KEY "
                        "(default: none; --teacher or --teachers is needed)")
    g.add_argument("--teachers", action="append", default=None, metavar="FILE",
                   help="YAML or JSON file listing teachers (name, spec or model/endpoint, settings; default: none)")
    g.add_argument("--samples", type=int, default=1, metavar="K", help="answers per teacher and question")
    g.add_argument("--max-tokens", type=int, default=1024, help="most tokens per answer")
    g.add_argument("--temperature", type=float, default=None, help="default: the server's")
    g.add_argument("--top-p", type=float, default=None, help="default: the server's")
    g.add_argument("--seed", type=int, default=None, help="sample k is requested with seed S + k (default: none)")
    g.add_argument("--system-prompt", default=None, metavar="TEXT",
                   help="for teachers without their own system (default: the question's own, else the default one)")
    g.add_argument("--api-key-env", default=None, metavar="NAME",
                   help="environment variable holding the endpoints' API key, never written anywhere (default: no key)")
    g.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    g.add_argument("--retries", type=int, default=4, help="tries after the first on 429, 5xx, timeouts, drops")
    g.add_argument("--backoff", type=float, default=1.0, help="seconds before the first retry (doubled each time)")
    g.add_argument("--timeout", type=float, default=600.0, help="seconds one request may take")
    g.add_argument("--route-student", default=None, metavar="STUDENT",
                   help="student-routed generation: this student scores every teacher's probe answers "
                        "(default: no routing)")
    g.add_argument("--route-probe", type=int, default=50, metavar="N",
                   help="--route-student: questions every teacher answers")
    g.add_argument("--route-keep", type=int, default=2, metavar="M",
                   help="--route-student: the rest goes to the M teachers with the most SCAS picks")
    g.add_argument("--route-verify", default=None, choices=["auto", "flags", "math", "trusted"],
                   help="--route-student: how probe answers are verified (default: auto)")
    g.add_argument("--vllm-python", default=None, metavar="PATH",
                   help="python of the vLLM environment (default: $SCAS_HUB_VLLM_PYTHON, else .venv-vllm)")
    g.add_argument("--vllm-args", default=None, metavar="'ARGS'",
                   help="more arguments for the vLLM servers scas-hub starts, e.g. "
                        "--vllm-args='--enforce-eager --dtype float32' (default: none)")
    g.add_argument("--out", required=True, metavar="DIR", help="output folder; a rerun resumes it")
    g.add_argument("--push", default=None, metavar="REPO_ID",
                   help="upload the corpus to this Hub dataset repo (default: no push)")
    g.add_argument("--private", action="store_true", help="create the Hub repo private")
    g.add_argument("--no-progress", action="store_true", help="draw no progress bars")
    g.set_defaults(func=_generate)

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
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["scas-hub", *argv])  # recorded by evaluate and ablate
    from .progress import progress_bars_off

    bars = progress_bars_off() if getattr(args, "no_progress", False) else contextlib.nullcontext()
    if isinstance(getattr(args, "source", None), str) and not args.source.strip():  # not the default corpus
        from .source import EMPTY_SOURCE

        _error(EMPTY_SOURCE)
        return 2
    try:
        with bars:
            return args.func(args)
    except ScasHubError as err:
        from .hub_access import is_hub_error

        message = str(err)
        if args.command in ("curate", "rounds", "train") and is_hub_error(err) and "resumes" not in message:
            message += " (rerunning resumes: finished steps and cached scores are kept)"
        _error(message)
        return err.exit_code
    except KeyboardInterrupt:
        if args.command in ("train", "rounds"):
            again = "to resume (finished steps are kept; training restarts from its last checkpoint)"
        else:
            again = ("to resume (scores are cached)" if args.command == "curate" and not args.no_score_cache
                     else "to start again")
        print(f"\nscas-hub: interrupted; rerun the same command {again}", file=sys.stderr)
        return 130
    except Exception as err:
        # last line of defence for the Hub: a failure to reach it is the user's to fix, not a bug
        from .hub_access import describe, is_hub_error, what_to_do

        if not is_hub_error(err):
            raise
        resumes = ("; then run the same command again: it resumes (finished steps and cached scores are kept)"
                   if args.command in ("curate", "rounds", "train") else "")
        _error(f"cannot reach the Hub ({describe(err)}); {what_to_do()}{resumes}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
