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
from .publish.card import write_card
from .publish.card_stats import card_numbers, score_distributions
from .publish.figures import write_figures
from .publish.folder import write_data_files, write_stats
from .records import Question
from .score.engine import ScoringConfig, StudentScorer
from .score.students import check_student, load_student, resolve_student, student_slug
from .select import SelectionConfig, select
from .source import open_source
from .stats import PipelineStats
from .verify import group_questions, verify


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


def load_questions(source: str, subset: str | None, revision: str | None, stats: PipelineStats):
    """Source + verify stages: candidate records grouped per question, unusable rows marked."""
    opened = open_source(source, subset=subset, revision=revision)
    questions = verify(group_questions(opened.candidates(), stats), stats)
    return opened.info, questions


def score(questions: list[Question], student: str, stats: PipelineStats, *, dtype: str = "auto",
          device: str | None = None, scoring: ScoringConfig | None = None, revision: str | None = None):
    """Score stage: attach proxy components to every scorable candidate; returns student facts."""
    resolved = resolve_student(student, revision)
    model, tokenizer, dtype, device = load_student(resolved, dtype=dtype, device=device)
    scorer = StudentScorer(model, tokenizer, scoring)
    total = sum(1 for q in questions for c in q.candidates if c.skip_reason is None)
    try:
        for _ in scorer.score_questions(questions, stats, total_rows=total):
            pass
    finally:
        scorer.close()
    return {"name": resolved.name, "repo_id": resolved.repo_id, "revision": resolved.revision,
            "dtype": dtype, "device": device}


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
) -> CurateResult:
    """Build a student-specific SCAS dataset folder (and optionally push it).

    Args:
        student: alias (`scas-hub students`), Hub model id, or local model folder.
        source: builder name, local folder of per-teacher JSONL, or Hub dataset id; default: the
            demo corpus for the embedded student, the published pool otherwise.
        out: output folder (default `out/scas-<student>`), laid out as a Hub dataset repo.
        push: Hub repo id (or just an org) to push to; the commit is tagged `vN` or `version`.

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
    source_info, questions = load_questions(source, subset, source_revision, stats)
    if not questions:
        raise SelectionError(f"the source {source!r} holds no questions")
    student_info = score(questions, student, stats, dtype=dtype, device=device, scoring=scoring,
                         revision=student_revision)
    select(questions, selection, stats)
    stats.check_balanced()

    out.mkdir(parents=True, exist_ok=True)
    candidates = [c for q in questions for c in q.candidates]
    write_data_files(out, candidates, lam)
    numbers = card_numbers(candidates, lam)
    wall = time.perf_counter() - started
    record = {
        **stats.to_dict(),
        "student": student_info,
        "source": {"name": source_info.name, "repo_id": source_info.repo_id, "revision": source_info.revision,
                   "subsets": list(source_info.subsets), "license": source_info.license,
                   "tags": list(source_info.tags), "synthetic": source_info.synthetic},
        "selection": {"strategy": strategy, "lam": lam, "groups": groups, "group": group, "seed": seed,
                      "small_policy": small_policy},
        "run": {"created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "wall_seconds": wall,
                "tokens_per_second": stats.tokens_scored / stats.scoring_seconds if stats.scoring_seconds else 0.0,
                "hardware": _hardware(student_info["device"]), "versions": _versions()},
        **numbers,
        "figures": write_figures(out, numbers["teachers"], score_distributions(candidates, lam)),
    }
    write_stats(out, record)
    write_card(out)
    result = CurateResult(out=out, stats=record, repo_id=repo_id)
    if repo_id:
        from .publish.hub import push_folder

        result.version = push_folder(out, repo_id, version=version, private=private).version
    return result
