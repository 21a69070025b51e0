"""`ablate`: the paper's experiment as one call. Does a student learn more from SCAS's answers than
from the strongest teacher's, a random teacher's, or the lowest-NLL answer, on the same budget?

    score the corpus once (curate) -> each strategy's selection from the stored scores (reselect)
    -> train one student per strategy and seed (train) -> evaluate each on the same held-out
    questions (evaluate) -> bootstrap intervals, paired comparison against scas -> report

Layout of the output folder:

    ablation.json, README.md, figures/accuracy.png    the report (what `--push` uploads, with arms/)
    arms/<strategy>/seed-<s>.json, arms/baseline.json each finished arm: training facts + eval report
    datasets/<strategy>/                              each strategy's curated dataset folder
    checkpoints/<strategy>/seed-<s>/                  each trained student
    ablation_settings.json                            what a rerun must match to resume
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..atomic import write_json_atomic
from ..constants import DEFAULT_SEED, DEFAULT_STUDENT, STATS_FILENAME
from ..errors import ConfigError
from ..evaluate import DecodingConfig, EvalSet, evaluate_student, find_overlap, load_eval_questions
from ..evaluate.prompts import training_system_prompt
from ..facts import api_call, hardware, library_versions, now
from ..pipeline import curate, default_source, reselect, source_record
from ..score.engine import ScoringConfig
from ..select import SelectionConfig
from ..source import open_source
from ..student.config import StudentConfig
from ..student.loading import check_student, resolve_student
from ..train.config import TrainConfig
from .arms import BASELINE, ArmResult, arm_path, read_arm, strategy_slug, train_arm, write_arm
from .report import write_report
from .summary import REFERENCE, summarise

DEFAULT_STRATEGIES = ("scas", "strongest", "random", "lowest-nll")
SETTINGS_FILENAME = "ablation_settings.json"
RESULT_FILENAME = "ablation.json"


@dataclass
class AblationResult:
    """What `ablate` wrote: the folder, `ablation.json`'s content, and the Hub commit when pushed."""

    out: Path
    record: dict[str, Any]
    repo_id: str | None = None
    commit: str | None = None

    @property
    def strategies(self) -> dict[str, dict[str, Any]]:
        return self.record["strategies"]


def _strategies(strategies: Sequence[str]) -> list[str]:
    names = list(dict.fromkeys(s.strip() for s in strategies if s.strip()))
    if not names:
        raise ConfigError("--strategies names no strategy; e.g. --strategies scas,strongest,random,lowest-nll")
    for name in names:
        SelectionConfig(strategy=name).validate()
    slugs = [strategy_slug(n) for n in names]
    if len(set(slugs)) != len(slugs):
        raise ConfigError(f"strategies {', '.join(names)} map to the same folder names; rename one")
    return names


def _check_settings(out: Path, settings: dict[str, Any]) -> None:
    """Refuse to resume an ablation run with other settings, or to write into a folder scas-hub did not write.

    Strategies and seeds may grow between runs (new arms are added); everything else must match.
    """
    path = out / SETTINGS_FILENAME
    if path.exists():
        previous = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(k for k in settings.keys() | previous.keys() if settings.get(k) != previous.get(k))
        if changed:
            raise ConfigError(
                f"{out} holds an ablation with other settings ({', '.join(changed)}); "
                "rerun it with the same ones to resume, or pass another --out"
            )
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty and holds no scas-hub ablation; pass an empty or new --out")
    write_json_atomic(path, settings)


SEEDED_STRATEGIES = ("scas", "random")
"""Strategies whose selection is a seeded draw: each training seed trains on its own draw, so the
seeds' spread includes the selection's variance, not only the training noise."""


def selection_seed_of(strategy: str, seed_index: int, selection_seed: int) -> int:
    """The selection seed of a strategy's `seed_index`-th training seed (0-based)."""
    return selection_seed + seed_index if strategy in SEEDED_STRATEGIES else selection_seed


def dataset_folder(out: Path, strategy: str, seed_index: int, selection_seed: int) -> Path:
    """`datasets/<strategy>` for the first draw; `datasets/<strategy>-selection-<seed>` for a seeded
    strategy's later draws (deterministic strategies share one folder)."""
    draw = selection_seed_of(strategy, seed_index, selection_seed)
    name = strategy_slug(strategy) + ("" if draw == selection_seed else f"-selection-{draw}")
    return out / "datasets" / name


def _build_datasets(
    out: Path,
    strategies: list[str],
    needed: set[tuple[str, int]],
    *,
    student: str,
    student_revision: str | None,
    source: str,
    subset: str | None,
    source_revision: str | None,
    selection_seed: int,
    held_out: frozenset[str] | None,
    progress: bool,
    max_length: int,
) -> None:
    """Each needed (strategy, seed index)'s dataset: the corpus scored once (curate, the first
    strategy), every other selection drawn again from those stored scores (reselect). Finished
    folders are kept. Scoring sets aside candidates longer than `max_length`, the length every arm
    trains at."""
    scored = dataset_folder(out, strategies[0], 0, selection_seed)
    if not (scored / "README.md").exists():  # the card is written last
        curate(
            StudentConfig(student, revision=student_revision),
            source,
            scored,
            subset=subset,
            source_revision=source_revision,
            selection=SelectionConfig(strategy=strategies[0], seed=selection_seed),
            scoring=ScoringConfig(progress=progress, max_length=max_length),
            held_out=held_out,
        )
    for strategy, k in sorted(needed, key=lambda n: (strategies.index(n[0]), n[1])):
        folder = dataset_folder(out, strategy, k, selection_seed)
        if not (folder / "README.md").exists():
            reselect(
                scored, folder, selection=SelectionConfig(strategy, seed=selection_seed_of(strategy, k, selection_seed))
            )


def _dataset_facts(folder: Path) -> dict[str, Any] | None:
    stats = folder / STATS_FILENAME
    if not stats.exists():
        return None
    record = json.loads(stats.read_text(encoding="utf-8"))
    return {
        "folder": f"datasets/{folder.name}",
        "selection_seed": record["selection"].get("seed"),
        "questions_selected": record["questions_selected"],
        "held_out_rows": record["skipped"].get("held_out", 0),
        "teachers": {t["teacher"]: t.get("selected", 0) for t in record.get("teachers", [])},
    }


def ablate(
    student: str = DEFAULT_STUDENT,
    eval_source: str | None = None,
    out: str | Path = "out/ablation",
    *,
    strategies: Sequence[str] = DEFAULT_STRATEGIES,
    source: str | None = None,
    subset: str | None = None,
    source_revision: str | None = None,
    eval_subset: str | None = None,
    eval_revision: str | None = None,
    limit: int | None = None,
    sample_seed: int = DEFAULT_SEED,
    decoding: DecodingConfig | None = None,
    train_config: TrainConfig | None = None,
    seeds: int = 1,
    selection_seed: int = DEFAULT_SEED,
    exclude_overlap: bool = True,
    baseline: bool = True,
    student_revision: str | None = None,
    device: str | None = None,
    progress: bool = True,
    push: str | None = None,
    repo_type: str = "dataset",
    private: bool = False,
    command: str | None = None,
    system_prompt: str | None = None,
) -> AblationResult:
    """Train one student per selection strategy (and seed) on the same budget; compare them on the same questions.

    Args:
        student: alias, Hub model id or local folder: the student every arm starts from.
        eval_source: held-out questions (builder, recipe, folder or Hub id); each distinct
            question with a reference answer once, `limit` of them drawn with `sample_seed`.
        out: the ablation folder; a rerun with the same settings resumes it (finished arms are kept).
        strategies: selection strategies (`scas`, `strongest`, `random`, `lowest-nll`, `argmin`,
            `teacher:<name>`); `scas` is the reference of the paired comparisons.
        source, subset, source_revision: the training corpus (default: as `curate`'s).
        train_config: hyper-parameters shared by every arm (default: the reference recipe); its
            seed is the first training seed.
        seeds: train every arm this many times, with seeds `seed, seed + 1, ...`.
        selection_seed: the seed of the strategies' draws; a seeded strategy (`scas`, `random`)
            draws again for each training seed (`selection_seed + k` for the k-th seed), so the
            seeds' spread holds the selection's variance too.
        exclude_overlap: set aside corpus questions whose normalised text is an eval question
            (counted as `held_out` in each dataset); they are counted and reported either way.
            On by default: pass False only to measure what the overlap does.
        baseline: also evaluate the untrained student.
        push: upload the report (README, ablation.json, figures, arms) to this Hub repo.
        repo_type: `dataset` or `model`, the kind of repo `push` names.
        command: the command recorded in the report (the CLI passes its command line).
        system_prompt: the system prompt of every evaluation (default: the one the training
            dataset's rows were scored and trained with, when they share one; else each eval
            row's own, else the project's default).

    Raises:
        ConfigError, SourceError, StudentError, SelectionError, TrainError, PublishError: with what to do.
    """
    started = time.perf_counter()
    strategies = _strategies(strategies)
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, not {seeds}")
    if eval_source is None:
        raise ConfigError("--eval SOURCE is required: the held-out questions every arm is evaluated on")
    if repo_type not in ("dataset", "model"):
        raise ConfigError(f"--repo-type must be dataset or model, not {repo_type!r}")
    check_student(student)
    source = source or default_source(student)
    out = Path(out)
    decoding = decoding or DecodingConfig()
    train_config = (train_config or TrainConfig()).validate()
    command = command or api_call(
        "scas_hub.ablate",
        student=student,
        eval_source=eval_source,
        strategies=",".join(strategies),
        source=source,
        limit=limit,
        seeds=seeds,
    )

    eval_set = load_eval_questions(
        eval_source, subset=eval_subset, revision=eval_revision, limit=limit, sample_seed=sample_seed
    )
    question_ids = [q.question_id for q in eval_set.questions]
    corpus = open_source(source, subset=subset, revision=source_revision)
    overlap = find_overlap(corpus.candidates(), eval_set.questions)
    resolved = resolve_student(student, student_revision)
    student_record = {"name": resolved.name, "repo_id": resolved.public_id, "revision": resolved.revision}
    base_config = {k: v for k, v in train_config.to_dict().items() if k != "seed"}
    _check_settings(
        out,
        {
            "student": student_record,
            "eval": source_record(eval_set.source),
            "question_ids": question_ids,
            "corpus": source_record(corpus.info),
            "decoding": decoding.to_dict(),
            "training": base_config,
            "first_seed": train_config.seed,
            "selection_seed": selection_seed,
            "exclude_overlap": exclude_overlap,
            "seeded_selections": list(SEEDED_STRATEGIES),
            "system_prompt": system_prompt,
        },
    )

    seed_values = [train_config.seed + k for k in range(seeds)]
    pending = {
        (s, k) for s in strategies for k, seed in enumerate(seed_values) if read_arm(arm_path(out, s, seed)) is None
    }
    if pending or baseline and read_arm(arm_path(out, BASELINE, None)) is None:
        _build_datasets(
            out,
            strategies,
            pending,
            student=student,
            student_revision=student_revision,
            source=source,
            subset=subset,
            source_revision=source_revision,
            selection_seed=selection_seed,
            held_out=overlap.texts if exclude_overlap else None,
            progress=progress,
            max_length=train_config.max_length,
        )
    prompt_source = "--system-prompt"
    if system_prompt is None:  # what the student is trained with, when every training row shares it
        system_prompt = training_system_prompt(dataset_folder(out, strategies[0], 0, selection_seed))
        prompt_source = "the training datasets' rows"
    arms = {
        strategy: [
            _run_arm(
                out,
                strategy,
                seed,
                dataset_folder(out, strategy, k, selection_seed),
                student,
                eval_set,
                train_config,
                decoding,
                student_revision=student_revision,
                device=device,
                progress=progress,
                command=command,
                system_prompt=system_prompt,
            )
            for k, seed in enumerate(seed_values)
        ]
        for strategy in strategies
    }
    baseline_arm = (
        _run_baseline(
            out,
            student,
            eval_set,
            decoding,
            student_revision=student_revision,
            device=device,
            progress=progress,
            command=command,
            system_prompt=system_prompt,
        )
        if baseline
        else None
    )

    record = _ablation_record(
        out,
        arms,
        baseline_arm,
        strategies,
        question_ids,
        started=started,
        student_record=student_record,
        eval_set=eval_set,
        corpus=corpus,
        overlap=overlap,
        exclude_overlap=exclude_overlap,
        system_prompt=system_prompt,
        prompt_source=prompt_source,
        decoding=decoding,
        base_config=base_config,
        seed_values=seed_values,
        selection_seed=selection_seed,
        seeds=seeds,
        command=command,
    )
    write_json_atomic(out / RESULT_FILENAME, record)
    write_report(out, record)
    result = AblationResult(out=out, record=record)
    if push:
        from .report import push_report

        result.repo_id, result.commit = push, push_report(out, push, repo_type=repo_type, private=private)
    return result


def _ablation_record(
    out: Path,
    arms: dict[str, list[ArmResult]],
    baseline_arm: ArmResult | None,
    strategies: Sequence[str],
    question_ids: list[str],
    *,
    started: float,
    student_record: dict[str, Any],
    eval_set: EvalSet,
    corpus: Any,
    overlap: Any,
    exclude_overlap: bool,
    system_prompt: str | None,
    prompt_source: str,
    decoding: DecodingConfig,
    base_config: dict[str, Any],
    seed_values: list[int],
    selection_seed: int,
    seeds: int,
    command: str,
) -> dict[str, Any]:
    """The last step of `ablate`: the comparison and every fact `ablation.json` and the report show."""
    summary = summarise(arms, question_ids, baseline=baseline_arm, reference=REFERENCE)
    datasets = {s: _dataset_facts(dataset_folder(out, s, 0, selection_seed)) for s in strategies}
    excluded = None
    if exclude_overlap:
        excluded = {
            "corpus_questions": len(overlap.corpus_question_ids),
            "rows": next((d["held_out_rows"] for d in datasets.values() if d), 0),
        }
    record = {
        **summary,
        "student": student_record,
        "eval": {"source": source_record(eval_set.source), **eval_set.to_dict(), "question_ids": question_ids},
        "training_corpus": {"source": source_record(corpus.info), "datasets": datasets},
        "overlap": overlap.to_dict(),
        "exclude_overlap": exclude_overlap,
        "excluded_from_training": excluded,
        "system_prompt": {"text": system_prompt, "source": prompt_source} if system_prompt is not None else None,
        "decoding": {
            **decoding.to_dict(),
            "backend": _decoding_of(arms, baseline_arm, "backend"),
            "dtype": _decoding_of(arms, baseline_arm, "dtype"),
        },
        "training": {**base_config, "seeds": seed_values},
        "selection": {
            "seed": selection_seed,
            "scored_once_by": strategies[0],
            "others": "selected again from the stored scores (scas-hub select)",
            "seeded": [s for s in strategies if s in SEEDED_STRATEGIES],
            "per_training_seed": {
                s: [selection_seed_of(s, k, selection_seed) for k in range(seeds)] for s in strategies
            },
        },
        "run": {
            "created": now(),
            "command": command,
            "versions": library_versions(),
            "hardware": hardware(_device_of(arms, baseline_arm)),
            "wall_seconds_this_call": round(time.perf_counter() - started, 3),
        },
    }
    return record


def _run_arm(
    out: Path,
    strategy: str,
    seed: int,
    dataset: Path,
    student: str,
    eval_set: EvalSet,
    train_config: TrainConfig,
    decoding: DecodingConfig,
    *,
    student_revision: str | None,
    device: str | None,
    progress: bool,
    command: str,
    system_prompt: str | None = None,
) -> ArmResult:
    """Train and evaluate one arm, unless a finished result is stored."""
    path = arm_path(out, strategy, seed)
    finished = read_arm(path)
    if finished is not None:
        return finished
    ckpt_dir = out / "checkpoints" / strategy_slug(strategy) / f"seed-{seed}"
    checkpoint, training = train_arm(
        dataset,
        student,
        ckpt_dir,
        replace(train_config, seed=seed),
        student_revision=student_revision,
        progress=progress,
    )
    training["checkpoint"] = (
        checkpoint.relative_to(out).as_posix() if checkpoint.is_relative_to(out) else checkpoint.name
    )
    _release_memory()  # the trainer's model and optimizer, before the checkpoint is loaded for generation
    report = evaluate_student(
        str(checkpoint),
        eval_set,
        device=device,
        decoding=decoding,
        progress=progress,
        command=command,
        system_prompt=system_prompt,
    )
    arm = ArmResult(strategy, seed, training, report)
    write_arm(path, arm)
    return arm


def _release_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _run_baseline(
    out: Path,
    student: str,
    eval_set: EvalSet,
    decoding: DecodingConfig,
    *,
    student_revision: str | None,
    device: str | None,
    progress: bool,
    command: str,
    system_prompt: str | None = None,
) -> ArmResult:
    path = arm_path(out, BASELINE, None)
    finished = read_arm(path)
    if finished is not None:
        return finished
    report = evaluate_student(
        student,
        eval_set,
        student_revision=student_revision,
        device=device,
        decoding=decoding,
        progress=progress,
        command=command,
        system_prompt=system_prompt,
    )
    arm = ArmResult(BASELINE, None, None, report)
    write_arm(path, arm)
    return arm


def _reports(arms: dict[str, list[ArmResult]], baseline: ArmResult | None):
    yield from (a.report for group in arms.values() for a in group)
    if baseline is not None:
        yield baseline.report


def _decoding_of(arms, baseline, key: str) -> str:
    """What the evaluations resolved `auto` to (backend, dtype)."""
    return ", ".join(sorted({str(r.decoding.get(key, "?")) for r in _reports(arms, baseline)}))


def _device_of(arms, baseline) -> str:
    return next((r.student.get("device") for r in _reports(arms, baseline)), "cpu")
