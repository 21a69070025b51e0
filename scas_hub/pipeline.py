"""`curate`: source -> verify -> score -> select -> card/publish, as one call.

`reselect` starts from a published dataset's scores instead, and `curate_students` scores one
corpus with several students; all three end in `publish`: select -> write -> card -> push.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .compare import Pick
from .constants import DEFAULT_STRATEGY, DEFAULT_STUDENT, STATS_FILENAME
from .errors import PublishError, SelectionError
from .facts import hardware, version_lines
from .publish.card import write_card
from .publish.card_stats import CardNumbers
from .publish.config import PublishConfig
from .publish.figures import write_figures
from .publish.folder import DataFilesWriter, write_stats
from .publish.hub import check_push_settings
from .publish.lock import locks_output
from .publish.output import CARD_FILENAME, check_apart, check_out_folder, replace_output, staged_output
from .publish.published import open_published
from .records import Question
from .rounds.context import RoundContext, card_rows
from .run_record import (
    RoundEntry,
    RunFacts,
    RunRecord,
    ScoresFrom,
    SelectionFacts,
    SourceFacts,
    StudentFacts,
)
from .score.config import ScoringConfig
from .score.scored_table import ScoredTable
from .select import SelectionConfig, strongest_teacher, teacher_order
from .select.columnar import ScoredWindow, select_window
from .slug import strategy_slug
from .source import CorpusRecipe, OpenedSource, SourceInfo, open_source, source_record
from .source.columns import normalise_question
from .stats import PipelineStats
from .student.config import StudentConfig
from .student.loading import check_student, student_slug
from .verify import nothing_usable
from .verify.build import open_table
from .verify.table import CandidateTable

if TYPE_CHECKING:  # the scoring modules load torch: imported where a run scores, so `select` loads none
    from .score.runner import ScoreReport


@dataclass
class CurateResult:
    """What `curate` wrote: the folder, its statistics, and (when pushed) the Hub version."""

    out: Path
    stats: dict[str, Any]
    """The run record as written (`selection_stats.json`); `record` is the same, typed."""
    repo_id: str | None = None
    version: str | None = None
    selection: dict[str, Pick] = field(default_factory=dict)
    """The selected answer per question id (see `scas_hub.compare`)."""

    @property
    def record(self) -> RunRecord:
        """The run record (`selection_stats.json`), typed."""
        return RunRecord.from_dict(self.stats)

    @property
    def load_line(self) -> str:
        target = self.repo_id or str(self.out)
        return f'load_dataset("{target}")'


def default_source(student: str) -> str:
    """The demo corpus for the embedded student (offline), the published pool for any other."""
    return "demo" if student == DEFAULT_STUDENT else "scas_pool"


def dataset_name(student: str, strategy: str = DEFAULT_STRATEGY) -> str:
    """`scas-<student>` for the `scas` selection, `scas-<student>-<strategy>` for an ablation, so an
    ablation never lands in the folder or repo of the student's real dataset."""
    name = f"scas-{student_slug(student)}"
    return name if strategy == DEFAULT_STRATEGY else f"{name}-{strategy_slug(strategy)}"


def default_out(student: str, strategy: str = DEFAULT_STRATEGY) -> Path:
    return Path("out") / dataset_name(student, strategy)


def default_repo(repo: str, student: str, strategy: str = DEFAULT_STRATEGY) -> str:
    """`org` -> `org/scas-<student>` (`org/scas-<student>-<strategy>` for an ablation); `org/name` stays."""
    return repo if "/" in repo else f"{repo}/{dataset_name(student, strategy)}"


def load_table(
    source: str | CorpusRecipe,
    subset: str | None,
    revision: str | None,
    stats: PipelineStats,
    verification: str | None = None,
) -> tuple[OpenedSource, CandidateTable]:
    """Source + verify stages: the corpus's candidate table (built on every core on first use,
    then reused), with its rows counted into `stats`.

    Raises:
        SourceError, CorpusFormatError: with what to do.
    """
    opened = open_source(source, subset=subset, revision=revision, verification=verification)
    table = open_table(opened)
    table.stats.add_to(stats)
    return opened, table


def load_questions(
    source: str | CorpusRecipe,
    subset: str | None,
    revision: str | None,
    stats: PipelineStats,
    verification: str | None = None,
) -> tuple[SourceInfo, list[Question]]:
    """Source + verify stages: candidate records grouped per question, unusable rows marked
    (every question of the candidate table as Python objects; see `load_table`)."""
    opened, table = load_table(source, subset, revision, stats, verification)
    return opened.info, table.questions()


def run_table(
    source: str | CorpusRecipe,
    subset: str | None,
    revision: str | None,
    stats: PipelineStats,
    verification: str | None,
    selection: SelectionConfig,
    held_out: Collection[str] | None = None,
) -> tuple[OpenedSource, CandidateTable, Counter]:
    """Source + verify for a run that will score: the candidate table (rows of `held_out`
    questions set aside) and the verified answers per teacher. Fails before any scoring when the
    source is empty, nothing survives verification, or the selection names an unknown teacher.

    Raises:
        SourceError, CorpusFormatError, SelectionError, NoUsableCandidatesError: with what to do.
    """
    with stats.stage("source_verify"):
        opened, table = load_table(source, subset, revision, stats, verification)
    if not stats.rows_in:
        raise SelectionError(f"the source {source!r} holds no questions")
    if held_out:
        hold_out_table(table, held_out, stats)
    if not table.usable:
        raise nothing_usable(stats, "verification", opened.sample_columns(), opened.verification)
    # the student's own checks never change who verified what, so these counts hold after scoring
    verified = ScoredTable(table).verified_answers()
    teacher_order([], selection, verified)  # unknown teacher names fail here, not after scoring
    return opened, table, verified


def hold_out_table(table: CandidateTable, texts: Collection[str], stats: PipelineStats) -> int:
    """Set aside (reason `held_out`) every usable row whose normalised question text is in `texts`,
    a slice of rows at a time; returns how many rows."""
    import pyarrow as pa

    texts = set(texts)
    reasons = table.table.column("skip_reason").to_pylist()
    held = 0
    for start in range(0, table.n_rows, 4096):
        rows = table.table.slice(start, 4096).select(["instruction", "teacher", "skip_reason"]).to_pylist()
        for i, r in enumerate(rows, start):
            if r["skip_reason"] is None and normalise_question(r["instruction"]) in texts:
                reasons[i] = "held_out"
                stats.skip("held_out", r["teacher"])
                held += 1
        table.release()
    if held:
        table.set_skip_reasons(pa.array(reasons, pa.string()), usable=table.usable - held)
    return held


def score(
    questions: list[Question],
    student: str | StudentConfig,
    stats: PipelineStats,
    *,
    scoring: ScoringConfig | None = None,
) -> ScoreReport | None:
    """Score stage: attach proxy components to every scorable candidate, on one process or all
    processes of an `accelerate launch`; resumes from the score cache (`scoring.score_cache`).
    `None` off the main process. `student`: a name or a `StudentConfig`, as for `curate`."""
    from .score.runner import score_corpus

    return score_corpus(questions, student, stats, scoring=scoring)


def _hardware(device: str | None) -> str:
    return "none: re-selection from stored scores, no model run" if device is None else hardware(device)


_VERSIONS = ("scas-hub", "torch", "transformers", "datasets", "huggingface_hub", "accelerate")


@locks_output(lambda a: a["out"], check=check_out_folder)
def publish(
    windows: Iterable[Any],
    selection: SelectionConfig,
    stats: PipelineStats,
    out: Path,
    *,
    student: dict[str, Any],
    source: dict[str, Any],
    started: float,
    verified: Mapping[str, int],
    repo_id: str | None = None,
    version: str | None = None,
    private: bool = False,
    scores_from: dict[str, Any] | None = None,
    rounds: RoundContext | None = None,
    report: ScoreReport | None = None,
    repo_from_org: bool = False,
) -> CurateResult:
    """The tail shared by `curate`, `reselect` and `curate_students`: select -> write the output
    folder -> card -> optional push. Windows of whole questions stream through selection (a
    group-by per window, `select.columnar`), the data files and the card numbers, so the corpus is
    never held as Python objects.

    Args:
        windows: Arrow tables of whole questions (`score.scored_table.WINDOW_COLUMNS`), read once;
            `score.scored_table.windows_of(questions)` makes them from `Question`s.
        stats: the counters so far; selection adds to them, then they must balance.
        student, source: facts recorded in `selection_stats.json` and the card.
        started: `time.perf_counter()` at the start of the run (for the card's wall time).
        verified: verified answers per teacher, for `strongest` and the card's strongest-teacher
            rule (see `select.teacher_order`).
        scores_from: where re-used scores came from (`reselect`); shown in the card.
        rounds: this round and the ones before it (`curate(..., round_number=N)`).
        report: how scoring ran (processes, per-rank figures, cache use), for the card's run facts.
        repo_from_org: `repo_id` was derived from an org (`--push ORG`): refuse to push into a repo
            whose latest version holds another strategy (see `publish.hub.push_folder`).

    Raises:
        SelectionError, PublishError: with what to do.
    """
    selection.validate()
    order = teacher_order([], selection, verified)
    # the ranking `--strategy strongest` picks by; the card's "strongest teacher" row uses it too
    strongest = strongest_teacher(verified, selection.teacher_ranking)
    settings = selection.to_dict()
    if selection.strategy == "strongest":
        settings["teacher_order"] = strongest
    with staged_output(out) as stage:
        with stats.stage("select_write"):
            chosen, accumulated = _select_and_write(windows, selection, stats, stage, order, strongest)
        facts = StudentFacts.from_dict(student)
        run = _run_facts(stats, facts, started, model_ran=scores_from is None, report=report)
        round_entries = rounds.rounds(facts, chosen) if rounds is not None else None
        record = _write_record(
            stage,
            out,
            stats,
            accumulated,
            student=facts,
            source=SourceFacts.from_dict(source),
            selection=SelectionFacts.from_dict(settings),
            run=run,
            scores_from=ScoresFrom.from_dict(scores_from) if scores_from is not None else None,
            round_entries=round_entries,
        )
        replace_output(stage, out)
    result = CurateResult(out=out, stats=record.to_dict(), repo_id=repo_id, selection=chosen)
    if repo_id:
        from .publish.hub import push_folder

        result.version = push_folder(
            out, repo_id, version=version, private=private, same_strategy=repo_from_org
        ).version
    return result


def _select_and_write(
    windows: Iterable[Any],
    selection: SelectionConfig,
    stats: PipelineStats,
    stage: Path,
    order: list[str] | None,
    strongest: list[str],
) -> tuple[dict[str, Pick], CardNumbers]:
    """Step 1 of `publish`: select window by window, write the data files, add up the card numbers."""
    writer = DataFilesWriter(stage)
    accumulated = CardNumbers(selection.lam, strongest)
    chosen: dict[str, Pick] = {}
    for window in windows:
        picked = select_window(ScoredWindow.of(window, selection.lam), selection, stats, order)
        rows = picked.selected_rows
        winners = window.select(["question_id", "teacher", "answer"]).take(rows).to_pydict()
        for q, teacher, answer in zip(*winners.values(), strict=True):
            chosen[q] = Pick.of(teacher, answer)
        writer.add(window, picked)
        accumulated.add(picked)
    writer.close()
    stats.check_balanced()
    return chosen, accumulated


def _run_facts(
    stats: PipelineStats, student: StudentFacts, started: float, *, model_ran: bool, report: ScoreReport | None
) -> RunFacts:
    """Step 2 of `publish`: how this run went (time, hardware, versions, stages; scoring speed)."""
    run = RunFacts(
        created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        wall_seconds=time.perf_counter() - started,
        model_ran=model_ran,
        hardware=_hardware(student.device if model_ran else None),
        versions=version_lines(_VERSIONS),
        stages=stats.stages,
    )
    if model_ran:
        run.tokens_per_second = stats.tokens_scored / stats.scoring_seconds if stats.scoring_seconds else 0.0
        run.processes = report.student.get("processes", 1) if report else 1
        run.ranks = report.ranks if report else []
    return run


def _write_record(
    stage: Path,
    out: Path,
    stats: PipelineStats,
    accumulated: CardNumbers,
    *,
    student: StudentFacts,
    source: SourceFacts,
    selection: SelectionFacts,
    run: RunFacts,
    scores_from: ScoresFrom | None,
    round_entries: list[RoundEntry] | None,
) -> RunRecord:
    """Step 3 of `publish`: figures, `selection_stats.json` (listing every file written) and the card."""
    numbers = accumulated.numbers()
    record = RunRecord(
        **stats.to_dict(),
        student=student,
        source=source,
        selection=selection,
        run=run,
        teachers=numbers["teachers"],
        agreement=numbers["agreement"],
        answer_tokens=numbers["answer_tokens"],
        scores_from=scores_from,
    )
    record.figures = write_figures(
        stage,
        record.teachers,
        accumulated.score_distributions(),
        rounds=[r.to_dict() for r in round_entries] if round_entries is not None else None,
    )
    if round_entries is not None:
        record.rounds = round_entries
        record.rounds_table = card_rows(round_entries)
    # every file this run writes, so a later run replaces exactly these (see `publish.output`)
    written = [p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file()]
    record.files = sorted({*written, CARD_FILENAME, STATS_FILENAME})
    write_stats(stage, record.to_dict())
    write_card(stage, name=out.resolve().name)
    return record


def _default_out_of(arguments: Mapping[str, Any]) -> Path:
    """The output folder of a `curate` call that names none: from its student and strategy."""
    selection = arguments["selection"] or SelectionConfig()
    return default_out(StudentConfig.of(arguments["student"]).name, selection.strategy)


@locks_output(lambda a: a["out"] or _default_out_of(a), check=check_out_folder)
def curate(
    student: str | StudentConfig = DEFAULT_STUDENT,
    source: str | CorpusRecipe | None = None,
    out: str | Path | None = None,
    *,
    subset: str | None = None,
    source_revision: str | None = None,
    verification: str | None = None,
    selection: SelectionConfig | None = None,
    scoring: ScoringConfig | None = None,
    publishing: PublishConfig | None = None,
    round_number: int | None = None,
    previous_round: str | Path | None = None,
    round_training: dict[str, Any] | None = None,
    held_out: Collection[str] | None = None,
) -> CurateResult | None:
    """Build a student-specific SCAS dataset folder (and optionally push it).

    Args:
        student: alias (`scas-hub students`), Hub model id, or local model folder (e.g. the
            checkpoint of a training round); or a `StudentConfig` with its revision, dtype, device
            and chat template. A chat template given there overrides `scoring.chat_template` (the
            card records that an override was used).
        source: builder name, recipe file or `CorpusRecipe`, local folder of per-teacher files, or
            Hub dataset id; default: the demo corpus for the embedded student, the published pool
            otherwise.
        verification: override the source's verification rule (`auto`, `flags`, `math`, `trusted`).
        out: output folder (default `out/scas-<student>`, `out/scas-<student>-<strategy>` for another
            strategy than `scas`), laid out as a Hub dataset repo. It must be missing, empty, or a
            previous output (which is replaced; files the tool did not write stay).
        selection: how one answer per question is chosen (default: `SelectionConfig()`, scas).
        scoring: how the student runs, and its score cache (`ScoringConfig.score_cache`: reruns
            and resumed runs score only candidates missing from it).
        publishing: where the dataset is pushed (`PublishConfig`; default: no push). `push` takes a
            Hub repo id, or just an org (`<org>/scas-<student>`, `-<strategy>` appended for another
            strategy than `scas`); the commit is tagged `vN` or `version`.
        round_number: the training round this student checkpoint belongs to; round N > 1 reads round
            N-1 from the pushed repo (else from `previous_round`, else from `out`) and the card
            shows every round so far.
        previous_round: the folder holding round N-1, when it is not `out` (`run_rounds` keeps one
            folder per round).
        round_training: how round N-1's selection trained this checkpoint (steps, final loss,
            checkpoint, checkpoint revision); shown in round N-1's row of the rounds table.
        held_out: normalised question texts (`normalise_question`) kept out of the dataset, e.g. an
            eval set's questions: their rows are set aside before scoring, counted as `held_out`.

    Returns:
        The result on the main process; `None` on the other processes of an `accelerate launch`.

    Raises:
        SourceError, StudentError, SelectionError, PublishError: with what to do.
    """
    started = time.perf_counter()
    model = StudentConfig.of(student)
    student = model.name
    selection = (selection or SelectionConfig()).validate()
    strategy = selection.strategy
    publishing = publishing or PublishConfig()
    push, version = publishing.push, publishing.version
    scoring = scoring or ScoringConfig()  # the student's chat template, if any, overrides it (`score_table`)
    check_student(student)
    source = default_source(student) if source is None else source  # "" is refused by open_source
    out = Path(out) if out else default_out(student, strategy)
    if round_number is not None and push and "/" not in push:
        raise PublishError(
            f"with --round, --push takes the dataset's full repo id (org/name), not {push!r}: "
            "every round is a new version of the same dataset, whatever the checkpoint is called"
        )
    repo_id = default_repo(push, student, strategy) if push else None
    check_push_settings(push, repo_id, version)  # a bad tag or repo id fails now, not after scoring
    rounds = (
        RoundContext.load(
            round_number,
            out,
            repo_id,
            training=round_training,
            previous=Path(previous_round) if previous_round else None,
        )
        if round_number is not None
        else None
    )

    stats = PipelineStats()
    opened, table, verified = run_table(source, subset, source_revision, stats, verification, selection, held_out)
    from .score.runner import score_table  # torch: loaded once there is something to score

    with stats.stage("score"):
        report = score_table(table, model, stats, scoring=scoring)
    if report is None:  # not the main process: rank 0 selects, writes and publishes
        return None
    if not stats.rows_scored:
        raise nothing_usable(stats, "scoring")
    return publish(
        ScoredTable(table, report.scores).windows(),
        selection,
        stats,
        out,
        student=report.student,
        source=source_record(opened.info),
        started=started,
        repo_id=repo_id,
        version=version,
        private=publishing.private,
        verified=verified,
        rounds=rounds,
        report=report,
        repo_from_org=bool(push and "/" not in push),
    )


@locks_output(lambda a: a["out"])  # checked inside: an overlap with --candidates is named as such
def reselect(
    candidates: str | Path,
    out: str | Path,
    *,
    revision: str | None = None,
    selection: SelectionConfig | None = None,
    publishing: PublishConfig | None = None,
) -> CurateResult:
    """Select again from a published dataset's scores: no model is loaded.

    Args:
        candidates: an output folder of `curate`, or a Hub dataset id whose `candidates` config is read.
        out: the new output folder (card included): missing, empty, or a previous output; never
            `candidates` itself, a folder inside it or around it.
        revision: Hub revision (tag `vN`, branch or commit) of `candidates`; default: main.
        selection: how one answer per question is chosen (default: `SelectionConfig()`, scas).
        publishing: where the dataset is pushed (default: no push). `push` takes a Hub repo id, or
            an org: `<org>/scas-<student>-<strategy>` (`<org>/scas-<student>` for `scas`), so an
            ablation never becomes a version of the student's real dataset.

    Rows set aside before scoring are not in the `candidates` config: their counts (and questions
    left without a scored candidate) are carried forward from the source's `selection_stats.json`.

    Raises:
        SourceError, CorpusFormatError, SelectionError, PublishError: with what to do.
    """
    started = time.perf_counter()
    selection = (selection or SelectionConfig()).validate()
    strategy = selection.strategy
    publishing = publishing or PublishConfig()
    push, version, private = publishing.push, publishing.version, publishing.private
    if Path(candidates).expanduser().exists():
        check_apart(out, candidates, what="--candidates")
    check_out_folder(out)
    check_push_settings(push, push if push and "/" in push else None, version)
    published = open_published(candidates, revision)
    if not published.n_rows:
        raise SelectionError(f"{published.location} holds no scored candidates")
    student = published.student().to_dict()
    source = published.source().to_dict()
    repo_id = default_repo(push, student["name"], strategy) if push else None
    check_push_settings(push, repo_id, version)  # the strategy's repo name, before anything is written
    return publish(
        published.windows(),
        selection,
        published.carried_stats(),
        Path(out),
        student=student,
        source=source,
        started=started,
        repo_id=repo_id,
        version=version,
        private=private,
        verified=published.verified_answers(),
        scores_from=published.origin,
        repo_from_org=bool(push and "/" not in push),
    )
