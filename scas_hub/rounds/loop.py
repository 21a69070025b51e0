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
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..atomic import write_json_atomic
from ..constants import DEFAULT_STUDENT, STATS_FILENAME
from ..distributed import distributed_state
from ..errors import ChatTemplateMismatchError, ConfigError, PublishError
from ..evaluate import DecodingConfig
from ..pipeline import curate, default_source
from ..publish.config import PublishConfig, publish_config
from ..publish.hub import check_repo_id
from ..publish.lock import locks_output
from ..publish.output import check_rounds_folder
from ..score.engine import ScoringConfig
from ..select import SelectionConfig, selection_config
from ..student.config import StudentConfig
from ..student.loading import resolve_student, student_slug
from ..train import TrainConfig, TrainResult, train

logger = logging.getLogger("scas_hub.loop")
SUMMARY_FILENAME = "rounds.json"


@dataclass
class RoundsResult:
    """The loop's folders and, per round, its dataset and the checkpoint trained on it."""

    out: Path
    rounds: list[dict[str, Any]] = field(default_factory=list)
    """Per round: `round`, `student` (that scored it), `dataset` (folder, repo_id, version), `training`,
    and with `eval_source` the accuracy of the checkpoint trained on it (`eval`)."""
    base_eval: dict[str, Any] | None = None
    """With `eval_source`: the base student's accuracy on the same questions."""

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


def _read_record(folder: Path) -> dict[str, Any] | None:
    path = folder / STATS_FILENAME
    if not path.exists() or not (folder / "README.md").exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def finished_dataset(folder: Path, r: int, student_revision: str) -> dict[str, Any] | None:
    """Round r's record if its folder holds round r scored by the student at `student_revision`."""
    record = _read_record(folder)
    if not record or not record.get("rounds"):
        return None
    last = record["rounds"][-1]
    if last["round"] != r or (last.get("student") or {}).get("revision") != student_revision:
        return None
    return record


def _tag_exists(repo_id: str, version: str) -> bool:
    from huggingface_hub import HfApi

    from ..hub_access import with_retries

    tags = with_retries(HfApi().list_repo_refs, repo_id, repo_type="dataset", what=f"read {repo_id}'s tags").tags
    return any(t.name == version for t in tags)


def check_template_continues(record: dict[str, Any], checkpoint: Path, r: int) -> None:
    """Round r is scored with the checkpoint trained on round r-1: its chat template must be the one
    round r-1 was scored with.

    Raises:
        ChatTemplateMismatchError: the hashes differ.
    """
    from transformers import AutoTokenizer

    from ..student.chat import chat_template_sha256

    theirs = (record.get("student") or {}).get("chat_template_sha256")
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
    selection: dict[str, Any],
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

    template = scoring.chat_template
    return {
        "student": base,
        "source": source,
        "subset": subset,
        "verification": verification,
        "selection": {**selection, "teacher_ranking": list(selection["teacher_ranking"] or []) or None},
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


@locks_output(lambda a: a["out"] or Path("out") / f"rounds-{student_slug(a['student'])}", check=check_rounds_folder)
def run_rounds(
    student: str = DEFAULT_STUDENT,
    rounds: int = 3,
    out: str | Path | None = None,
    *,
    source: str | None = None,
    subset: str | None = None,
    student_revision: str | None = None,
    publishing: PublishConfig | None = None,
    push: str | None = None,
    push_checkpoints: str | None = None,
    private: bool | None = None,
    train_config: TrainConfig | None = None,
    selection: SelectionConfig | None = None,
    strategy: str | None = None,
    groups: int | None = None,
    group: int | None = None,
    seed: int | None = None,
    lam: float | None = None,
    small_policy: str | None = None,
    teacher_ranking: Sequence[str] | None = None,
    verification: str | None = None,
    dtype: str = "auto",
    device: str | None = None,
    scoring: ScoringConfig | None = None,
    score_cache: str | Path | bool | None = True,
    chat_template: str | Path | None = None,
    from_base: bool = False,
    eval_source: str | None = None,
    eval_subset: str | None = None,
    eval_revision: str | None = None,
    eval_limit: int | None = None,
    eval_seed: int = 42,
    decoding: DecodingConfig | None = None,
    progress: bool = True,
) -> RoundsResult:
    """Run (or continue) `rounds` rounds of the SCAS loop from `student`.

    Args:
        student: the base student θ_1: alias, Hub model id or local folder.
        rounds: how many rounds; each ends with a trained checkpoint (θ_{rounds+1} is the last).
        out: the loop's folder (default `out/rounds-<student>`).
        source: the corpus, as for `curate` (default: the demo for the embedded student, else the pool);
            settled once from the base student, every round scores it.
        publishing: `PublishConfig(push=..., private=...)`, or `push` and `private` as keywords (not
            both); no `version`: each round is the next one.
        push: Hub dataset repo id (`org/name`): round r is pushed as its next version (v1, v2, ...).
        push_checkpoints: Hub model repo id: each trained checkpoint is pushed to it (one commit each).
        train_config: training hyper-parameters (default: the reference recipe).
        chat_template: a Jinja chat template (text or file) to score and train with instead of the
            student's own; every checkpoint keeps it.
        selection: how each round selects (`SelectionConfig`), or its fields as keywords (`strategy`,
            `groups`, `group`, `seed`, `lam`, `small_policy`, `teacher_ranking`), not both; `seed` is
            the selection's, the training seed is `train_config.seed`.
        scoring: how to run the student; it scores at the training `max_length` (longer candidates are
            set aside as `too_long`, or cut there alike with `truncate`).
        from_base: train every round's checkpoint from the base student (default: from the previous
            round's checkpoint, continued training).
        eval_source, eval_subset, eval_revision, eval_limit, eval_seed, decoding: evaluate the base
            student and every trained checkpoint on the same held-out questions (as `evaluate`);
            corpus questions whose text is an eval question are set aside from training.

    Returns:
        Every round's dataset and checkpoint, on every process of an `accelerate launch`.

    Raises:
        ConfigError: `rounds` < 1, settings that cannot train, scoring at another length than training,
            or `out` holds rounds run with other settings.
        PublishError: `push` is not a full repo id.
        ChatTemplateMismatchError: a checkpoint's chat template is not the one its round was scored with.
        SourceError, StudentError, SelectionError, PublishError, TrainError: with what to do.
    """
    if rounds < 1:
        raise ConfigError(f"rounds must be >= 1, got {rounds}")
    publishing = publish_config(publishing, push=push, private=private)
    if publishing.version is not None:
        raise ConfigError("the rounds are tagged v1, v2, ... in turn: pass no version")
    push, private = publishing.push, publishing.private
    if push and "/" not in push:
        raise PublishError(f"the rounds are versions of one dataset: pass its full repo id (org/name), not {push!r}")
    for repo, flag in ((push, "--push"), (push_checkpoints, "--push-checkpoints")):
        if repo:
            check_repo_id(repo, what=flag)
    train_config = (train_config or TrainConfig()).validate(distributed_state().num_processes)
    scoring = scoring_at_training_length(scoring or ScoringConfig(progress=progress), train_config)
    if chat_template is not None and scoring.chat_template is None:
        scoring = replace(scoring, chat_template=chat_template)
    out = Path(out) if out else Path("out") / f"rounds-{student_slug(student)}"
    source = source or default_source(student)  # settled from the base student, once for every round
    config = selection_config(
        selection,
        strategy=strategy,
        groups=groups,
        group=group,
        seed=seed,
        lam=lam,
        small_policy=small_policy,
        teacher_ranking=teacher_ranking,
    )
    selection = dict(
        strategy=config.strategy,
        groups=config.groups,
        group=config.group,
        seed=config.seed,
        lam=config.lam,
        small_policy=config.small_policy,
        teacher_ranking=config.teacher_ranking,
    )
    base = resolve_student(student, student_revision)
    evaluation = None
    if eval_source is not None:
        from .eval import RoundsEval

        evaluation = RoundsEval.load(
            eval_source,
            out,
            corpus=source,
            corpus_subset=subset,
            subset=eval_subset,
            revision=eval_revision,
            limit=eval_limit,
            sample_seed=eval_seed,
            decoding=decoding,
        )
    settings = loop_settings(
        {"repo_id": base.public_id, "revision": base.revision},
        source=source,
        subset=subset,
        verification=verification,
        selection=selection,
        scoring=scoring,
        dtype=dtype,
        train_config=train_config,
        push=push,
        push_checkpoints=push_checkpoints,
        from_base=from_base,
        evaluation=evaluation.settings() if evaluation else None,
    )
    check_settings(out, settings)  # rounds.json is written once round 1's dataset exists: a run that fails
    # before (a typo in --source) leaves no settings behind to refuse the corrected rerun
    base_eval = _evaluate(
        evaluation, 1, student, base.revision, student_revision=student_revision, device=device, progress=progress
    )
    summary: list[dict[str, Any]] = []
    current, current_revision = student, student_revision
    training: dict[str, Any] | None = None
    for r in range(1, rounds + 1):
        resolved = resolve_student(current, current_revision)
        folder, ckpt = round_folder(out, r), checkpoint_folder(out, r)
        record = _round_dataset(
            out,
            r,
            resolved,
            current,
            current_revision,
            source=source,
            subset=subset,
            selection=config,
            training=training,
            verification=verification,
            dtype=dtype,
            device=device,
            scoring=scoring,
            push=push,
            private=private,
            score_cache=score_cache,
            held_out=evaluation.held_out if evaluation else None,
        )
        if _is_main():
            _write_summary(out, settings, summary, base_eval)
        release = record.get("release") or {}
        dataset = {"folder": str(folder), "repo_id": release.get("repo_id"), "version": release.get("version")}
        trainee, trainee_revision = (student, student_revision) if from_base else (current, current_revision)
        logger.info("round %d: training %s on %s", r, trainee, dataset["version"] or folder)
        trained = train(
            push or folder,
            trainee,
            ckpt,
            revision=release.get("version") if push else None,
            student_revision=trainee_revision,
            config=train_config,
            push=push_checkpoints,
            private=private,
            progress=progress,
            round_number=r,
            chat_template=chat_template,
        )
        training = _training_facts(trained)
        entry = {
            "round": r,
            "student": {"name": resolved.name, "repo_id": resolved.public_id, "revision": resolved.revision},
            "dataset": dataset,
            "training": {**training, "checkpoint_path": str(ckpt)},
        }
        if evaluation is not None:
            entry["eval"] = _evaluate(
                evaluation, r + 1, str(ckpt), resolve_student(str(ckpt)).revision, device=device, progress=progress
            )
        summary.append(entry)
        if _is_main():
            _write_summary(out, settings, summary, base_eval)
            if base_eval is not None:
                from .eval import FIGURE, plot_accuracy

                plot_accuracy(base_eval, summary, out / FIGURE)
        current, current_revision = str(ckpt), None
    return RoundsResult(out, summary, base_eval)


def _round_dataset(
    out: Path,
    r: int,
    resolved: Any,
    current: str,
    current_revision: str | None,
    *,
    source: str,
    subset: str | None,
    selection: SelectionConfig,
    training: dict[str, Any] | None,
    verification: str | None,
    dtype: str,
    device: str | None,
    scoring: ScoringConfig,
    push: str | None,
    private: bool,
    score_cache: str | Path | bool | None,
    held_out: Any,
) -> dict[str, Any]:
    """Step 1 of round `r`: its dataset, scored and selected with the round's student (or the
    finished one, its interrupted push completed); the record as written (and pushed)."""
    folder = round_folder(out, r)
    record = finished_dataset(folder, r, resolved.revision)
    if record is None:
        if r > 1:
            check_template_continues(_read_record(round_folder(out, r - 1)) or {}, Path(current), r)
        logger.info("round %d: scoring with %s", r, resolved.public_id)
        curate(
            StudentConfig(current, revision=current_revision, dtype=dtype, device=device),
            source,
            folder,
            subset=subset,
            selection=selection,
            round_number=r,
            previous_round=round_folder(out, r - 1) if r > 1 and not push else None,
            round_training=training,
            verification=verification,
            scoring=replace(scoring, score_cache=score_cache),
            publishing=PublishConfig(push=push, private=private),
            held_out=held_out,
        )
        _barrier()  # every process trains on the folder rank 0 just wrote
        record = _read_record(folder)  # as pushed: with its release (version)
    elif push and _is_main() and not _tag_exists(push, (record.get("release") or {}).get("version", "")):
        from ..publish.hub import push_folder  # the push of a finished round was interrupted

        push_folder(folder, push, private=private)
        _barrier()
        record = _read_record(folder)
    elif push:
        _barrier()
        record = _read_record(folder)
    return record


def _evaluate(evaluation, theta: int, student: str, revision: str, **kwargs) -> dict[str, Any] | None:
    """θ_k's accuracy, evaluated on the main process; every process gets it."""
    if evaluation is None:
        return None
    facts = evaluation.evaluate(theta, student, revision, **kwargs) if _is_main() else None
    state = distributed_state()
    if state.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        holder = [facts]
        broadcast_object_list(holder, from_process=0)
        facts = holder[0]
    return facts
