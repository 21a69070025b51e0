"""`run_rounds`: the SCAS loop, score -> select -> publish -> train, round after round.

Round r scores the corpus with θ_r (round 1: the base student), selects, writes the round's
dataset (pushed as the next version of one Hub dataset when `push` is set) and trains θ_r into
θ_{r+1} on it. The folders show where the loop is:

    OUT/round-<r>/               round r's dataset (a `curate` output folder)
    OUT/checkpoints/round-<r>/   θ_{r+1}: the student trained on round r's selection
    OUT/rounds.json              the loop's settings and a summary of the rounds so far (rewritten
                                 after every step)

Every step is finished when its folder says so (the dataset's `selection_stats.json` and card
name round r and θ_r's revision; the checkpoint's `training_facts.json`), so a rerun after a
crash or a kill continues at the first unfinished step: scoring resumes from the score cache and
training from its last Trainer checkpoint; finished steps are not run again. The settings (corpus,
selection, scoring length, training recipe, ...) are settled once, from the base student, and
recorded in `rounds.json`: every round scores the same corpus, and a rerun with other settings is
refused (only `rounds` may grow).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import write_json_atomic
from ..constants import DEFAULT_STUDENT, STATS_FILENAME
from ..distributed import distributed_state
from ..errors import ChatTemplateMismatchError, ConfigError, PublishError
from ..evaluate import DecodingConfig
from ..evaluate.config import QuestionsConfig
from ..pipeline import curate, default_source
from ..publish.config import PublishConfig
from ..publish.hub import check_repo_id
from ..publish.lock import locks_output
from ..publish.output import check_rounds_folder
from ..run_record import RunRecord
from ..score.config import ScoringConfig
from ..select import SelectionConfig
from ..source import check_source_given
from ..student.config import StudentConfig
from ..student.loading import ResolvedStudent, resolve_student, student_slug
from ..train import TrainConfig, TrainResult, train

if TYPE_CHECKING:
    from .eval import RoundsEval

logger = logging.getLogger("scas_hub.loop")
SUMMARY_FILENAME = "rounds.json"


@dataclass
class RoundsResult:
    """The loop's folders and, per round, its dataset and the checkpoint trained on it."""

    out: Path
    rounds: list[dict[str, Any]] = field(default_factory=list)
    """Per round: `round`, `student` (that scored it), `dataset` (folder, repo_id, version), `training`,
    and with `eval_questions` the accuracy of the checkpoint trained on it (`eval`)."""
    base_eval: dict[str, Any] | None = None
    """With `eval_questions`: the base student's accuracy on the same questions."""

    @property
    def final_checkpoint(self) -> Path:
        return Path(self.rounds[-1]["training"]["checkpoint_path"])

    def table(self) -> str:
        from .eval import format_accuracy

        evaluated = self.base_eval is not None
        head = "round  dataset                 scored by                        steps  final loss  "
        lines = [head + ("accuracy of θ[r+1] [95% CI]     " if evaluated else "") + "checkpoint"]
        if evaluated:
            lines.append(
                f"{'base':<6} {'':<23} {'':<32} {'':>5}  {'':>10}  {format_accuracy(self.base_eval):<32} "
                "(θ1, the base student)"
            )
        for r in self.rounds:
            d, t, s = r["dataset"], r["training"], r["student"]
            where = f"{d['repo_id']} {d['version']}" if d.get("repo_id") else Path(d["folder"]).name
            accuracy = f"{format_accuracy(r.get('eval')):<32} " if evaluated else ""
            lines.append(
                f"{r['round']:<6} {where:<23} {s['repo_id'] + ' @ ' + s['revision'][:12]:<32} "
                f"{t['steps']:>5}  {t['final_loss']:>10.4f}  {accuracy}{t['checkpoint_path']}"
            )
        return "\n".join(lines)


def round_folder(out: Path, r: int) -> Path:
    return out / f"round-{r}"


def checkpoint_folder(out: Path, r: int) -> Path:
    return out / "checkpoints" / f"round-{r}"


def _read_record(folder: Path) -> RunRecord | None:
    """The folder's record once its dataset is finished (its card written last), else None."""
    path = folder / STATS_FILENAME
    if not path.exists() or not (folder / "README.md").exists():
        return None
    return RunRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))


def finished_dataset(folder: Path, r: int, student_revision: str) -> RunRecord | None:
    """Round r's record if its folder holds round r scored by the student at `student_revision`."""
    record = _read_record(folder)
    last = record.last_round if record is not None else None
    if last is None or last.round != r or last.student_revision != student_revision:
        return None
    return record


def _tag_exists(repo_id: str, version: str) -> bool:
    from huggingface_hub import HfApi

    from ..hub_access import with_retries

    tags = with_retries(HfApi().list_repo_refs, repo_id, repo_type="dataset", what=f"read {repo_id}'s tags").tags
    return any(t.name == version for t in tags)


def check_template_continues(record: RunRecord, checkpoint: Path, r: int) -> None:
    """Round r is scored with the checkpoint trained on round r-1: its chat template must be the one
    round r-1 was scored with.

    Raises:
        ChatTemplateMismatchError: the hashes differ.
    """
    from transformers import AutoTokenizer

    from ..student.chat import chat_template_sha256

    theirs = record.student.chat_template_sha256
    ours = chat_template_sha256(AutoTokenizer.from_pretrained(checkpoint))
    if theirs is not None and ours != theirs:
        raise ChatTemplateMismatchError(
            f"round {r} would score with {checkpoint}, whose chat template sha256 is {ours}, but round {r - 1} "
            f"was scored with {theirs}; restore the checkpoint's tokenizer files (or train it again: remove "
            f"{checkpoint}) before continuing the rounds"
        )


def _training_facts(result: TrainResult) -> dict[str, Any]:
    """What the rounds table shows of a checkpoint trained on a round."""
    return {
        "steps": result.steps,
        "final_loss": result.final_loss,
        "checkpoint": result.repo_id or f"local:{result.checkpoint.name}",
        "checkpoint_revision": result.revision,
    }


def _write_summary(
    out: Path, settings: dict[str, Any], rounds: list[dict[str, Any]], base_eval: dict[str, Any] | None = None
) -> None:
    summary = {"settings": settings, **({"base_eval": base_eval} if base_eval else {}), "rounds": rounds}
    write_json_atomic(out / SUMMARY_FILENAME, summary, tmp=out / (SUMMARY_FILENAME + ".tmp"))


def check_settings(out: Path, settings: dict[str, Any]) -> None:
    """Refuse to continue a loop with other settings than it was started with.

    Raises:
        ConfigError: `OUT/rounds.json` records other settings, or is not one scas-hub wrote.
    """
    path = out / SUMMARY_FILENAME
    if not path.exists():
        return
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))["settings"]
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(
            f"{path} holds no settings of a scas-hub loop (written by something else, or by an older "
            "scas-hub); pass another --out"
        ) from err
    changed = sorted(k for k in settings.keys() | previous.keys() if settings.get(k) != previous.get(k))
    if changed:
        raise ConfigError(
            f"{out} holds rounds run with other settings ({', '.join(changed)}); rerun with the same "
            "ones to continue them (only --rounds may grow), or pass another --out"
        )


def loop_settings(
    base: dict[str, Any],
    *,
    source: str,
    subset: str | None,
    verification: str | None,
    selection: SelectionConfig,
    scoring: ScoringConfig,
    dtype: str,
    train_config: TrainConfig,
    push: str | None,
    push_checkpoints: str | None,
    from_base: bool,
    evaluation: dict[str, Any] | None,
) -> dict[str, Any]:
    """What every round of one loop shares, as recorded in `rounds.json`."""
    import hashlib

    template = scoring.chat_template_text
    return {
        "student": base,
        "source": source,
        "subset": subset,
        "verification": verification,
        "selection": {
            "strategy": selection.strategy,
            "groups": selection.groups,
            "group": selection.group,
            "seed": selection.seed,
            "lam": selection.lam,
            "small_policy": selection.small_policy,
            "teacher_ranking": list(selection.teacher_ranking or []) or None,
        },
        "scoring": {
            "dtype": dtype,
            "max_length": scoring.max_length,
            "truncate": scoring.truncate,
            "feature_module": scoring.feature_module,
            "feature_layer": scoring.feature_layer,
            "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest() if template else None,
        },
        "training": train_config.to_dict(),
        "from_base": from_base,
        "push": push,
        "push_checkpoints": push_checkpoints,
        "eval": evaluation,
    }


def scoring_at_training_length(scoring: ScoringConfig, train_config: TrainConfig) -> ScoringConfig:
    """Scoring settings that score at the length training trains at (`train_config.max_length`).

    Raises:
        ConfigError: `scoring` names another max length.
    """
    if scoring.max_length is not None and scoring.max_length != train_config.max_length:
        raise ConfigError(
            f"scoring at {scoring.max_length} tokens but training at --max-length "
            f"{train_config.max_length}: a loop scores and trains at one length; pass --max-length only"
        )
    return replace(scoring, max_length=train_config.max_length)


def _barrier() -> None:
    distributed_state().wait_for_everyone()


def _is_main() -> bool:
    return distributed_state().is_main_process


@dataclass
class LoopPlan:
    """The settings every round of one loop shares, settled once from the base student."""

    out: Path
    student: StudentConfig
    """The base student θ_1, and how every round's student runs (dtype, device)."""
    source: str
    subset: str | None
    verification: str | None
    selection: SelectionConfig
    scoring: ScoringConfig
    publishing: PublishConfig
    push_checkpoints: str | None
    train_config: TrainConfig
    from_base: bool
    progress: bool
    base: ResolvedStudent
    evaluation: RoundsEval | None = None

    @property
    def push(self) -> str | None:
        return self.publishing.push

    def settings(self) -> dict[str, Any]:
        """What `rounds.json` records, and a rerun must match."""
        return loop_settings(
            {"repo_id": self.base.public_id, "revision": self.base.revision},
            source=self.source,
            subset=self.subset,
            verification=self.verification,
            selection=self.selection,
            scoring=self.scoring,
            dtype=self.student.dtype,
            train_config=self.train_config,
            push=self.push,
            push_checkpoints=self.push_checkpoints,
            from_base=self.from_base,
            evaluation=self.evaluation.settings() if self.evaluation else None,
        )


def default_rounds_out(student: str | StudentConfig) -> Path:
    """`out/rounds-<student>`: the loop's folder when none is given."""
    return Path("out") / f"rounds-{student_slug(StudentConfig.of(student).name)}"


@locks_output(lambda a: a["out"] or default_rounds_out(a["student"]), check=check_rounds_folder)
def run_rounds(
    student: str | StudentConfig = DEFAULT_STUDENT,
    rounds: int = 3,
    out: str | Path | None = None,
    *,
    source: str | None = None,
    subset: str | None = None,
    verification: str | None = None,
    selection: SelectionConfig | None = None,
    scoring: ScoringConfig | None = None,
    publishing: PublishConfig | None = None,
    train_config: TrainConfig | None = None,
    push_checkpoints: str | None = None,
    from_base: bool = False,
    eval_questions: str | QuestionsConfig | None = None,
    decoding: DecodingConfig | None = None,
    progress: bool = True,
) -> RoundsResult:
    """Run (or continue) `rounds` rounds of the SCAS loop from `student`.

    Args:
        student: the base student θ_1: alias, Hub model id or local folder; or a `StudentConfig` with
            its revision, the dtype and device every round's student is scored (and evaluated) in,
            and a chat template (as `scoring.chat_template`, which it overrides).
        rounds: how many rounds; each ends with a trained checkpoint (θ_{rounds+1} is the last).
        out: the loop's folder (default `out/rounds-<student>`).
        source: the corpus, as for `curate` (default: the demo for the embedded student, else the pool);
            settled once from the base student, every round scores it.
        selection: how each round selects (default `SelectionConfig()`); its `seed` is the
            selection's, the training seed is `train_config.seed`.
        scoring: how to run the student, and its score cache (`score_cache`); it scores at the training
            `max_length` (longer candidates are set aside as `too_long`, or cut there alike with
            `truncate`). Its `chat_template` (text or file), when set, is scored and trained with
            instead of the student's own; every checkpoint keeps it.
        publishing: `PublishConfig(push=..., private=...)` with no `version` (each round is the next
            one): round r is pushed to the Hub dataset repo `push` (`org/name`) as its next version
            (v1, v2, ...); `private` applies to the checkpoints' repo too.
        train_config: training hyper-parameters (default: the reference recipe).
        push_checkpoints: Hub model repo id: each trained checkpoint is pushed to it (one commit each).
        from_base: train every round's checkpoint from the base student (default: from the previous
            round's checkpoint, continued training).
        eval_questions, decoding: evaluate the base student and every trained checkpoint on the same
            held-out questions (a `QuestionsConfig`, or just its source; decoded as `decoding` says),
            as `evaluate` does; corpus questions whose text is an eval question are set aside from
            training.

    Returns:
        Every round's dataset and checkpoint, on every process of an `accelerate launch`.

    Raises:
        ConfigError: `rounds` < 1, settings that cannot train, scoring at another length than training,
            a `version` to publish as, or `out` holds rounds run with other settings.
        PublishError: `push` is not a full repo id.
        ChatTemplateMismatchError: a checkpoint's chat template is not the one its round was scored with.
        SourceError, StudentError, SelectionError, PublishError, TrainError: with what to do.
    """
    publishing = publishing or PublishConfig()
    _check_arguments(rounds, publishing, push_checkpoints)
    train_config = (train_config or TrainConfig()).validate(distributed_state().num_processes)
    model = StudentConfig.of(student)
    scoring = scoring_at_training_length(scoring or ScoringConfig(progress=progress), train_config)
    if model.chat_template is not None:
        scoring = replace(scoring, chat_template=model.chat_template)
    out = Path(out) if out else default_rounds_out(model)
    check_source_given(source)  # before any work; a blank is not the default corpus
    source = (
        default_source(model.name) if source is None else source
    )  # settled from the base student, once for every round
    selection = (selection or SelectionConfig()).validate()
    base = resolve_student(model.name, model.revision)
    evaluation = None
    if eval_questions is not None:
        from .eval import RoundsEval

        evaluation = RoundsEval.load(
            QuestionsConfig.of(eval_questions), out, corpus=source, corpus_subset=subset, decoding=decoding
        )
    plan = LoopPlan(
        out=out,
        student=model,
        source=source,
        subset=subset,
        verification=verification,
        selection=selection,
        scoring=scoring,
        publishing=publishing,
        push_checkpoints=push_checkpoints,
        train_config=train_config,
        from_base=from_base,
        progress=progress,
        base=base,
        evaluation=evaluation,
    )
    return _run_loop(plan, rounds)


def _run_loop(plan: LoopPlan, rounds: int) -> RoundsResult:
    """The rounds: per round, score and select (its dataset), train, evaluate, record."""
    out, settings = plan.out, plan.settings()
    check_settings(out, settings)  # rounds.json is written once round 1's dataset exists: a run that fails
    # before (a typo in --source) leaves no settings behind to refuse the corrected rerun
    base = plan.student
    base_eval = _evaluate(plan, 1, base.name, plan.base.revision, student_revision=base.revision)
    summary: list[dict[str, Any]] = []
    current, current_revision = base.name, base.revision
    training: dict[str, Any] | None = None
    for r in range(1, rounds + 1):
        resolved = resolve_student(current, current_revision)
        record = _round_dataset(plan, r, resolved, current, current_revision, training)
        if _is_main():
            _write_summary(out, settings, summary, base_eval)
        training = _training_facts(_train_round(plan, r, record, current, current_revision))
        summary.append(_round_entry(plan, r, resolved, record, training))
        if _is_main():
            _record_round(out, settings, summary, base_eval)
        current, current_revision = str(checkpoint_folder(out, r)), None
    return RoundsResult(out, summary, base_eval)


def _check_arguments(rounds: int, publishing: PublishConfig, push_checkpoints: str | None) -> None:
    """Refuse what no round could run with, before anything is loaded.

    Raises:
        ConfigError: `rounds` < 1, or a `version` to publish as.
        PublishError: a repo id that is not `org/name`.
    """
    if rounds < 1:
        raise ConfigError(f"rounds must be >= 1, got {rounds}")
    if publishing.version is not None:
        raise ConfigError("the rounds are tagged v1, v2, ... in turn: pass no version")
    push = publishing.push
    if push and "/" not in push:
        raise PublishError(f"the rounds are versions of one dataset: pass its full repo id (org/name), not {push!r}")
    for repo, flag in ((push, "--push"), (push_checkpoints, "--push-checkpoints")):
        if repo:
            check_repo_id(repo, what=flag)


def _round_dataset(
    plan: LoopPlan,
    r: int,
    resolved: ResolvedStudent,
    current: str,
    current_revision: str | None,
    training: dict[str, Any] | None,
) -> RunRecord:
    """Step 1 of round `r`: its dataset, scored and selected with the round's student (or the
    finished one, its interrupted push completed); the record as written (and pushed)."""
    folder = round_folder(plan.out, r)
    record = finished_dataset(folder, r, resolved.revision)
    if record is None:
        _score_round(plan, r, resolved, current, current_revision, training)
        _barrier()  # every process trains on the folder rank 0 just wrote
    elif plan.push and _is_main() and not _tag_exists(plan.push, record.version or ""):
        from ..publish.hub import push_folder  # the push of a finished round was interrupted

        push_folder(folder, plan.push, private=plan.publishing.private)
        _barrier()
    elif plan.push:
        _barrier()
    else:
        return record
    written = _read_record(folder)  # as pushed: with its release (version)
    if written is None:
        raise PublishError(f"round {r}'s dataset {folder} has no {STATS_FILENAME} or card after it was written")
    return written


def _score_round(
    plan: LoopPlan,
    r: int,
    resolved: ResolvedStudent,
    current: str,
    current_revision: str | None,
    training: dict[str, Any] | None,
) -> None:
    """Score the corpus with round `r`'s student and select: `curate` into the round's folder."""
    out = plan.out
    if r > 1:
        check_template_continues(_read_record(round_folder(out, r - 1)) or RunRecord(), Path(current), r)
    logger.info("round %d: scoring with %s", r, resolved.public_id)
    curate(
        StudentConfig(current, revision=current_revision, dtype=plan.student.dtype, device=plan.student.device),
        plan.source,
        round_folder(out, r),
        subset=plan.subset,
        selection=plan.selection,
        round_number=r,
        previous_round=round_folder(out, r - 1) if r > 1 and not plan.push else None,
        round_training=training,
        verification=plan.verification,
        scoring=plan.scoring,
        publishing=PublishConfig(push=plan.push, private=plan.publishing.private),
        held_out=plan.evaluation.held_out if plan.evaluation else None,
    )


def _train_round(plan: LoopPlan, r: int, record: RunRecord, current: str, current_revision: str | None) -> TrainResult:
    """Step 2 of round `r`: train the next checkpoint on the round's dataset (from the base student
    with `from_base`, else from the round's)."""
    base = plan.student
    trainee, trainee_revision = (base.name, base.revision) if plan.from_base else (current, current_revision)
    logger.info("round %d: training %s on %s", r, trainee, record.version or round_folder(plan.out, r))
    return train(
        plan.push or round_folder(plan.out, r),
        trainee,
        checkpoint_folder(plan.out, r),
        revision=record.version if plan.push else None,
        student_revision=trainee_revision,
        config=plan.train_config,
        push=plan.push_checkpoints,
        private=plan.publishing.private,
        progress=plan.progress,
        round_number=r,
        chat_template=plan.scoring.chat_template_text,
    )


def _round_entry(
    plan: LoopPlan, r: int, resolved: ResolvedStudent, record: RunRecord, training: dict[str, Any]
) -> dict[str, Any]:
    """Step 3 of round `r`: its row of `rounds.json` (student, dataset, training; with an
    evaluation, the accuracy of the checkpoint trained on it)."""
    ckpt = checkpoint_folder(plan.out, r)
    release = record.release
    entry: dict[str, Any] = {
        "round": r,
        "student": {"name": resolved.name, "repo_id": resolved.public_id, "revision": resolved.revision},
        "dataset": {
            "folder": str(round_folder(plan.out, r)),
            "repo_id": release.repo_id if release else None,
            "version": release.version if release else None,
        },
        "training": {**training, "checkpoint_path": str(ckpt)},
    }
    if plan.evaluation is not None:
        entry["eval"] = _evaluate(plan, r + 1, str(ckpt), resolve_student(str(ckpt)).revision)
    return entry


def _record_round(
    out: Path, settings: dict[str, Any], summary: list[dict[str, Any]], base_eval: dict[str, Any] | None
) -> None:
    """Step 4 of a round (main process): `rounds.json`, and the accuracy figure when evaluated."""
    _write_summary(out, settings, summary, base_eval)
    if base_eval is not None:
        from .eval import FIGURE, plot_accuracy

        plot_accuracy(base_eval, summary, out / FIGURE)


def _evaluate(
    plan: LoopPlan, theta: int, student: str, revision: str, *, student_revision: str | None = None
) -> dict[str, Any] | None:
    """θ_k's accuracy, evaluated on the main process; every process gets it."""
    if plan.evaluation is None:
        return None
    facts = (
        plan.evaluation.evaluate(
            theta,
            student,
            revision,
            student_revision=student_revision,
            device=plan.student.device,
            progress=plan.progress,
        )
        if _is_main()
        else None
    )
    state = distributed_state()
    if state.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        holder = [facts]
        broadcast_object_list(holder, from_process=0)
        facts = holder[0]
    return facts
