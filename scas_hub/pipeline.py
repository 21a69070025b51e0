"""`curate`: source -> verify -> score -> select -> card/publish, as one call."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .constants import DEFAULT_STUDENT
from .errors import SelectionError
from .publish.card import CardContext, render_card, teacher_table
from .publish.folder import write_data_files, write_stats
from .records import Question
from .score.engine import ScoringConfig
from .score.runner import ScoreReport, score_corpus
from .score.students import check_student, student_slug
from .select import SelectionConfig, select
from .source import open_source
from .stats import PipelineStats
from .verify import iter_verified


@dataclass
class CurateResult:
    """What `curate` wrote: the folder, its statistics, and (when pushed) the Hub version."""

    out: Path
    stats: dict[str, Any]
    repo_id: str | None = None
    version: str | None = None

    @property
    def load_line(self) -> str:
        target = self.repo_id or str(self.out)
        return f'load_dataset("{target}")'


def default_source(student: str) -> str:
    """The demo corpus for the embedded student (offline), the published pool for any other."""
    return "demo" if student == DEFAULT_STUDENT else "scas_pool"


def default_out(student: str) -> Path:
    return Path("out") / f"scas-{student_slug(student)}"


def default_repo(repo: str, student: str) -> str:
    """`org` -> `org/scas-<student>`; `org/name` stays."""
    return repo if "/" in repo else f"{repo}/scas-{student_slug(student)}"


def load_questions(source, subset: str | None, revision: str | None, stats: PipelineStats,
                   verification: str | None = None):
    """Source + verify stages: candidate records grouped per question, unusable rows marked.

    The stages stream in bounded memory (`iter_verified`); this list is what scoring takes.
    """
    opened = open_source(source, subset=subset, revision=revision, verification=verification)
    questions = list(iter_verified(opened.candidates(), stats, rule=opened.verification))
    return opened.info, questions


def score(questions: list[Question], student: str, stats: PipelineStats, *, dtype: str = "auto",
          device: str | None = None, scoring: ScoringConfig | None = None, revision: str | None = None,
          score_cache: str | Path | bool | None = True) -> ScoreReport | None:
    """Score stage: attach proxy components to every scorable candidate, on one process or all
    processes of an `accelerate launch`; resumes from the score cache. `None` off the main process."""
    return score_corpus(questions, student, stats, dtype=dtype, device=device, scoring=scoring,
                        revision=revision, score_cache=score_cache)


def _hardware(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    import os

    return f"CPU ({platform.machine()}, {os.cpu_count()} cores)"


def _versions() -> list[str]:
    from importlib.metadata import version

    names = ["scas-hub", "torch", "transformers", "datasets", "huggingface_hub", "accelerate"]
    return [f"{n} {version(n)}" for n in names]


def curate(
    student: str = DEFAULT_STUDENT,
    source: str | None = None,
    out: str | Path | None = None,
    *,
    subset: str | None = None,
    source_revision: str | None = None,
    verification: str | None = None,
    student_revision: str | None = None,
    strategy: str = "scas",
    groups: int = 5,
    group: int = 1,
    seed: int = 42,
    lam: float = 0.5,
    small_policy: str = "nearest",
    dtype: str = "auto",
    device: str | None = None,
    scoring: ScoringConfig | None = None,
    push: str | None = None,
    version: str | None = None,
    private: bool = False,
    score_cache: str | Path | bool | None = True,
) -> CurateResult | None:
    """Build a student-specific SCAS dataset folder (and optionally push it).

    Args:
        student: alias (`scas-hub students`), Hub model id, or local model folder.
        source: builder name, recipe file or `CorpusRecipe`, local folder of per-teacher files, or
            Hub dataset id; default: the demo corpus for the embedded student, the published pool
            otherwise.
        verification: override the source's verification rule (`auto`, `flags`, `math`, `trusted`).
        out: output folder (default `out/scas-<student>`), laid out as a Hub dataset repo.
        push: Hub repo id (or just an org) to push to; the commit is tagged `vN` or `version`.
        score_cache: score cache folder (`True`: the default one, `False`: none); reruns and
            resumed runs score only candidates missing from it.

    Returns:
        The result on the main process; `None` on the other processes of an `accelerate launch`.

    Raises:
        SourceError, StudentError, SelectionError, PublishError: with what to do.
    """
    started = time.perf_counter()
    selection = SelectionConfig(strategy=strategy, groups=groups, group=group, seed=seed, lam=lam,
                                small_policy=small_policy).validate()
    check_student(student)
    source = source or default_source(student)
    out = Path(out) if out else default_out(student)
    repo_id = default_repo(push, student) if push else None

    stats = PipelineStats()
    source_info, questions = load_questions(source, subset, source_revision, stats, verification)
    if not questions:
        raise SelectionError(f"the source {source!r} holds no questions")
    report = score(questions, student, stats, dtype=dtype, device=device, scoring=scoring,
                   revision=student_revision, score_cache=score_cache)
    if report is None:  # not the main process: rank 0 selects, writes and publishes
        return None
    student_info = report.student
    select(questions, selection, stats)
    stats.check_balanced()

    out.mkdir(parents=True, exist_ok=True)
    candidates = [c for q in questions for c in q.candidates]
    write_data_files(out, candidates, lam)
    wall = time.perf_counter() - started
    stats_dict = stats.to_dict()
    record = {
        **stats_dict,
        "student": student_info,
        "source": {"name": source_info.name, "repo_id": source_info.repo_id,
                   "revision": source_info.revision, "subsets": list(source_info.subsets),
                   "layout": source_info.layout, "verification": source_info.verification,
                   "datasets": [f"{r}@{sha}" for r, sha in source_info.datasets]},
        "selection": {"strategy": strategy, "lam": lam, "groups": groups, "group": group, "seed": seed,
                      "small_policy": small_policy},
    }
    write_stats(out, record)
    ctx = CardContext(
        repo_id=repo_id,
        student=student_info,
        source={"name": source_info.name, "repo_id": source_info.repo_id, "revision": source_info.revision,
                "subsets": list(source_info.subsets), "license": source_info.license,
                "tags": list(source_info.tags), "synthetic": source_info.synthetic,
                "layout": source_info.layout, "verification": source_info.verification,
                "datasets": [r for r, _ in source_info.datasets]},
        selection=record["selection"],
        stats=stats_dict,
        run={"created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "wall_seconds": wall,
             "tokens_per_second": stats.tokens_scored / stats.scoring_seconds if stats.scoring_seconds else 0.0,
             "hardware": _hardware(student_info["device"]), "versions": _versions(),
             "processes": student_info["processes"], "ranks": report.ranks,
             "scores_from_cache": report.from_cache},
        teachers=teacher_table(candidates, lam),
    )
    render_card(ctx).save(out / "README.md")
    result = CurateResult(out=out, stats=record, repo_id=repo_id)
    if repo_id:
        from .publish.hub import push_folder

        result.version, _ = push_folder(out, repo_id, version=version, private=private)
    return result
