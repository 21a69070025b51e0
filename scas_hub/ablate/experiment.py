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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..atomic import write_json_atomic
from ..constants import DEFAULT_SEED, DEFAULT_STUDENT, STATS_FILENAME
from ..errors import ConfigError
from ..evaluate import DecodingConfig, EvalReport, EvalSet, evaluate_student, find_overlap
from ..evaluate.config import QuestionsConfig
from ..evaluate.overlap import Overlap
from ..evaluate.prompts import training_system_prompt
from ..facts import api_call, hardware, library_versions, now
from ..pipeline import curate, default_source, reselect, source_record
from ..publish.config import PublishConfig
from ..publish.lock import locks_output
from ..run_record import RunRecord
from ..score.config import ScoringConfig
from ..select import SelectionConfig
from ..source import OpenedSource, check_source_given, open_source
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

    def push(self, repo_id: str, *, repo_type: str = "dataset", private: bool = False) -> None:
        """Upload the report (README, ablation.json, figures, arms) to `repo_id` in one commit."""
        from .report import push_report

        self.repo_id, self.commit = repo_id, push_report(self.out, repo_id, repo_type=repo_type, private=private)


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


@dataclass
class AblationPlan:
    """What every arm of one ablation shares: the student, the corpus, the eval questions and how
    each arm is trained and evaluated (settled before any arm runs)."""

    out: Path
    student: StudentConfig
    """The student every arm starts from; its `device` is where the arms are evaluated."""
    strategies: list[str]
    source: str
    subset: str | None
    source_revision: str | None
    eval_set: EvalSet
    corpus: OpenedSource
    overlap: Overlap
    student_record: dict[str, Any]
    train_config: TrainConfig
    decoding: DecodingConfig
    seeds: int
    selection_seed: int
    exclude_overlap: bool
    progress: bool
    command: str
    system_prompt: str | None = None
    """As the caller gave it (None: the training datasets' own, see `ablate`)."""
    eval_prompt: str | None = None
    """The system prompt every evaluation uses, settled once the datasets exist."""
    prompt_source: str = "--system-prompt"

    @property
    def question_ids(self) -> list[str]:
        return [q.question_id for q in self.eval_set.questions]

    @property
    def seed_values(self) -> list[int]:
        """The training seeds: `train_config.seed`, then the next ones."""
        return [self.train_config.seed + k for k in range(self.seeds)]

    @property
    def base_config(self) -> dict[str, Any]:
        """The training recipe every arm shares (its seed apart)."""
        return {k: v for k, v in self.train_config.to_dict().items() if k != "seed"}

    def dataset(self, strategy: str, seed_index: int = 0) -> Path:
        return dataset_folder(self.out, strategy, seed_index, self.selection_seed)

    def settings(self) -> dict[str, Any]:
        """What a rerun must match to resume (`ablation_settings.json`)."""
        return {
            "student": self.student_record,
            "eval": source_record(self.eval_set.source),
            "question_ids": self.question_ids,
            "corpus": source_record(self.corpus.info),
            "decoding": self.decoding.to_dict(),
            "training": self.base_config,
            "first_seed": self.train_config.seed,
            "selection_seed": self.selection_seed,
            "exclude_overlap": self.exclude_overlap,
            "seeded_selections": list(SEEDED_STRATEGIES),
            "system_prompt": self.system_prompt,
        }


@locks_output(lambda a: a["out"])  # one writer per ablation folder (its arms lock their own folders)
def ablate(
    student: str | StudentConfig = DEFAULT_STUDENT,
    eval_questions: str | QuestionsConfig | None = None,
    out: str | Path = "out/ablation",
    *,
    strategies: Sequence[str] = DEFAULT_STRATEGIES,
    source: str | None = None,
    subset: str | None = None,
    source_revision: str | None = None,
    decoding: DecodingConfig | None = None,
    train_config: TrainConfig | None = None,
    seeds: int = 1,
    selection_seed: int = DEFAULT_SEED,
    exclude_overlap: bool = True,
    baseline: bool = True,
    progress: bool = True,
    publishing: PublishConfig | None = None,
    repo_type: str = "dataset",
    command: str | None = None,
    system_prompt: str | None = None,
) -> AblationResult:
    """Train one student per selection strategy (and seed) on the same budget; compare them on the same questions.

    Args:
        student: alias, Hub model id or local folder: the student every arm starts from; or a
            `StudentConfig` with its revision, the dtype it is scored in, and the `device` the arms
            are evaluated on (scoring and training choose their own device). It takes no chat template.
        eval_questions: the held-out questions every arm is evaluated on: a `QuestionsConfig` (source,
            subset, revision, and `limit` of them drawn with `sample_seed`), or just its source
            (builder, recipe, folder or Hub id: every question); each distinct question with a
            reference answer once.
        out: the ablation folder; a rerun with the same settings resumes it (finished arms are kept).
        strategies: selection strategies (`scas`, `strongest`, `random`, `lowest-nll`, `argmin`,
            `teacher:<name>`); `scas` is the reference of the paired comparisons.
        source, subset, source_revision: the training corpus (default: as `curate`'s).
        decoding: how every evaluation generates (default `DecodingConfig()`).
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
        publishing: `PublishConfig(push=..., private=...)`: upload the report (README,
            ablation.json, figures, arms) to the Hub repo `push` (no `version`: one commit).
        repo_type: `dataset` or `model`, the kind of repo `publishing.push` names.
        command: the command recorded in the report (the CLI passes its command line).
        system_prompt: the system prompt of every evaluation (default: the one the training
            dataset's rows were scored and trained with, when they share one; else each eval
            row's own, else the project's default).

    Raises:
        ConfigError, SourceError, StudentError, SelectionError, TrainError, PublishError: with what to do.
    """
    started = time.perf_counter()
    strategies = _strategies(strategies)
    publishing = publishing or PublishConfig()
    model = StudentConfig.of(student)
    questions = _check_arguments(seeds, eval_questions, repo_type, publishing, model)
    check_student(model.name)
    check_source_given(source)  # before any work; a blank is not the default corpus
    source = default_source(model.name) if source is None else source
    train_config = (train_config or TrainConfig()).validate()
    command = command or api_call(
        "scas_hub.ablate",
        student=model.name,
        eval_source=questions.source,
        strategies=",".join(strategies),
        source=source,
        limit=questions.limit,
        seeds=seeds,
    )
    eval_set = questions.load()
    corpus = open_source(source, subset=subset, revision=source_revision)
    overlap = find_overlap(corpus.candidates(), eval_set.questions)
    resolved = resolve_student(model.name, model.revision)
    plan = AblationPlan(
        out=Path(out),
        student=model,
        strategies=strategies,
        source=source,
        subset=subset,
        source_revision=source_revision,
        eval_set=eval_set,
        corpus=corpus,
        overlap=overlap,
        student_record={"name": resolved.name, "repo_id": resolved.public_id, "revision": resolved.revision},
        train_config=train_config,
        decoding=decoding or DecodingConfig(),
        seeds=seeds,
        selection_seed=selection_seed,
        exclude_overlap=exclude_overlap,
        progress=progress,
        command=command,
        system_prompt=system_prompt,
    )
    result = _run_ablation(plan, started, baseline=baseline)
    if publishing.push:
        result.push(publishing.push, repo_type=repo_type, private=publishing.private)
    return result


def _check_arguments(
    seeds: int,
    eval_questions: str | QuestionsConfig | None,
    repo_type: str,
    publishing: PublishConfig,
    student: StudentConfig,
) -> QuestionsConfig:
    """Refuse settings no ablation can run with, before anything is loaded; returns the eval questions.

    Raises:
        ConfigError: with what to do.
    """
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, not {seeds}")
    questions = QuestionsConfig.of(eval_questions) if eval_questions is not None else QuestionsConfig()
    if questions.source is None:
        raise ConfigError("--eval SOURCE is required: the held-out questions every arm is evaluated on")
    if repo_type not in ("dataset", "model"):
        raise ConfigError(f"--repo-type must be dataset or model, not {repo_type!r}")
    if publishing.version is not None:
        raise ConfigError("the ablation's report is pushed as one commit: pass no version")
    if student.chat_template is not None:
        raise ConfigError("ablate trains and evaluates with the student's own chat template: pass none")
    return questions


def _run_ablation(plan: AblationPlan, started: float, *, baseline: bool) -> AblationResult:
    """The ablation's steps: datasets, then per strategy and seed train and evaluate, then the report."""
    _check_settings(plan.out, plan.settings())
    pending = {
        (s, k)
        for s in plan.strategies
        for k, seed in enumerate(plan.seed_values)
        if read_arm(arm_path(plan.out, s, seed)) is None
    }
    if pending or baseline and read_arm(arm_path(plan.out, BASELINE, None)) is None:
        _build_datasets(plan, pending)
    plan.eval_prompt = plan.system_prompt
    if plan.system_prompt is None:  # what the student is trained with, when every training row shares it
        plan.eval_prompt = training_system_prompt(plan.dataset(plan.strategies[0]))
        plan.prompt_source = "the training datasets' rows"
    arms = {
        strategy: [_run_arm(plan, strategy, k, seed) for k, seed in enumerate(plan.seed_values)]
        for strategy in plan.strategies
    }
    baseline_arm = _run_baseline(plan) if baseline else None
    record = _ablation_record(plan, arms, baseline_arm, started)
    write_json_atomic(plan.out / RESULT_FILENAME, record)
    write_report(plan.out, record)
    return AblationResult(out=plan.out, record=record)


def _build_datasets(plan: AblationPlan, needed: set[tuple[str, int]]) -> None:
    """Each needed (strategy, seed index)'s dataset: the corpus scored once (curate, the first
    strategy), every other selection drawn again from those stored scores (reselect). Finished
    folders are kept. Scoring sets aside candidates longer than the length every arm trains at, and
    (with `exclude_overlap`) the corpus questions that are eval questions."""
    first = plan.strategies[0]
    scored = plan.dataset(first)
    if not (scored / "README.md").exists():  # the card is written last
        student = plan.student
        curate(  # scoring chooses its own device, as training does: `device` is where the arms are evaluated
            StudentConfig(student.name, revision=student.revision, dtype=student.dtype),
            plan.source,
            scored,
            subset=plan.subset,
            source_revision=plan.source_revision,
            selection=SelectionConfig(strategy=first, seed=plan.selection_seed),
            scoring=ScoringConfig(progress=plan.progress, max_length=plan.train_config.max_length),
            held_out=plan.overlap.texts if plan.exclude_overlap else None,
        )
    for strategy, k in sorted(needed, key=lambda n: (plan.strategies.index(n[0]), n[1])):
        folder = plan.dataset(strategy, k)
        if not (folder / "README.md").exists():
            reselect(
                scored,
                folder,
                selection=SelectionConfig(strategy, seed=selection_seed_of(strategy, k, plan.selection_seed)),
            )


def _dataset_facts(folder: Path) -> dict[str, Any] | None:
    stats = folder / STATS_FILENAME
    if not stats.exists():
        return None
    record = RunRecord.from_dict(json.loads(stats.read_text(encoding="utf-8")))
    return {
        "folder": f"datasets/{folder.name}",
        "selection_seed": record.selection.seed,
        "questions_selected": record.questions_selected,
        "held_out_rows": record.skipped.get("held_out", 0),
        "teachers": {t["teacher"]: t.get("selected", 0) for t in record.teachers},
    }


def _ablation_record(
    plan: AblationPlan, arms: dict[str, list[ArmResult]], baseline_arm: ArmResult | None, started: float
) -> dict[str, Any]:
    """The last step of `ablate`: the comparison and every fact `ablation.json` and the report show."""
    summary = summarise(arms, plan.question_ids, baseline=baseline_arm, reference=REFERENCE)
    datasets = {s: _dataset_facts(plan.dataset(s)) for s in plan.strategies}
    excluded = None
    if plan.exclude_overlap:
        excluded = {
            "corpus_questions": len(plan.overlap.corpus_question_ids),
            "rows": next((d["held_out_rows"] for d in datasets.values() if d), 0),
        }
    system_prompt = plan.eval_prompt
    return {
        **summary,
        "student": plan.student_record,
        "eval": {
            "source": source_record(plan.eval_set.source),
            **plan.eval_set.to_dict(),
            "question_ids": plan.question_ids,
        },
        "training_corpus": {"source": source_record(plan.corpus.info), "datasets": datasets},
        "overlap": plan.overlap.to_dict(),
        "exclude_overlap": plan.exclude_overlap,
        "excluded_from_training": excluded,
        "system_prompt": {"text": system_prompt, "source": plan.prompt_source} if system_prompt is not None else None,
        "decoding": {
            **plan.decoding.to_dict(),
            "backend": _decoding_of(arms, baseline_arm, "backend"),
            "dtype": _decoding_of(arms, baseline_arm, "dtype"),
        },
        "training": {**plan.base_config, "seeds": plan.seed_values},
        "selection": _selection_facts(plan),
        "run": {
            "created": now(),
            "command": plan.command,
            "versions": library_versions(),
            "hardware": hardware(_device_of(arms, baseline_arm)),
            "wall_seconds_this_call": round(time.perf_counter() - started, 3),
        },
    }


def _selection_facts(plan: AblationPlan) -> dict[str, Any]:
    """How each strategy's datasets were selected (`ablation.json`'s `selection`)."""
    strategies, seed = plan.strategies, plan.selection_seed
    return {
        "seed": seed,
        "scored_once_by": strategies[0],
        "others": "selected again from the stored scores (scas-hub select)",
        "seeded": [s for s in strategies if s in SEEDED_STRATEGIES],
        "per_training_seed": {s: [selection_seed_of(s, k, seed) for k in range(plan.seeds)] for s in strategies},
    }


def _run_arm(plan: AblationPlan, strategy: str, seed_index: int, seed: int) -> ArmResult:
    """Train and evaluate one arm, unless a finished result is stored."""
    path = arm_path(plan.out, strategy, seed)
    finished = read_arm(path)
    if finished is not None:
        return finished
    out = plan.out
    checkpoint, training = train_arm(
        plan.dataset(strategy, seed_index),
        plan.student.name,
        out / "checkpoints" / strategy_slug(strategy) / f"seed-{seed}",
        replace(plan.train_config, seed=seed),
        student_revision=plan.student.revision,
        progress=plan.progress,
    )
    training["checkpoint"] = (
        checkpoint.relative_to(out).as_posix() if checkpoint.is_relative_to(out) else checkpoint.name
    )
    _release_memory()  # the trainer's model and optimizer, before the checkpoint is loaded for generation
    arm = ArmResult(strategy, seed, training, _evaluate(plan, str(checkpoint)))
    write_arm(path, arm)
    return arm


def _run_baseline(plan: AblationPlan) -> ArmResult:
    """Evaluate the untrained student, unless a finished result is stored."""
    path = arm_path(plan.out, BASELINE, None)
    finished = read_arm(path)
    if finished is not None:
        return finished
    arm = ArmResult(BASELINE, None, None, _evaluate(plan, plan.student.name, student_revision=plan.student.revision))
    write_arm(path, arm)
    return arm


def _evaluate(plan: AblationPlan, student: str, *, student_revision: str | None = None) -> EvalReport:
    """One arm's evaluation: every arm on the same questions, decoded alike."""
    return evaluate_student(
        student,
        plan.eval_set,
        student_revision=student_revision,
        device=plan.student.device,
        decoding=plan.decoding,
        progress=plan.progress,
        command=plan.command,
        system_prompt=plan.eval_prompt,
    )


def _release_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _reports(arms: dict[str, list[ArmResult]], baseline: ArmResult | None) -> Iterator[EvalReport]:
    yield from (a.report for group in arms.values() for a in group)
    if baseline is not None:
        yield baseline.report


def _decoding_of(arms: dict[str, list[ArmResult]], baseline: ArmResult | None, key: str) -> str:
    """What the evaluations resolved `auto` to (backend, dtype)."""
    return ", ".join(sorted({str(r.decoding.get(key, "?")) for r in _reports(arms, baseline)}))


def _device_of(arms: dict[str, list[ArmResult]], baseline: ArmResult | None) -> str | None:
    return next((r.student.get("device") for r in _reports(arms, baseline)), "cpu")
