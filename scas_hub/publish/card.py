"""Render the dataset card from cards/dataset_card.md.j2 with numbers computed by the pipeline."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from ..constants import PAPER_URL
from ..records import Candidate
from .folder import configs_metadata

TEMPLATE = "dataset_card.md.j2"


def size_category(n: int) -> str:
    for limit, label in [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")]:
        if n < limit:
            return label
    return "n>10M"


@dataclass
class CardContext:
    """Everything the template shows; built by `curate` from what the stages recorded."""

    repo_id: str | None
    student: dict[str, Any]
    source: dict[str, Any]
    selection: dict[str, Any]
    stats: dict[str, Any]
    run: dict[str, Any]
    teachers: list[dict[str, Any]] = field(default_factory=list)
    lineage: dict[str, Any] | None = None
    """Re-selection and rounds (`scores_from`, `rounds` display rows); None for a plain curate run."""


def teacher_table(candidates: list[Candidate], lam: float) -> list[dict[str, Any]]:
    """Per teacher: scored candidates, selected count and share, mean and median score."""
    scores: dict[str, list[float]] = defaultdict(list)
    picked: Counter = Counter()
    for c in candidates:
        if c.score is None:
            continue
        scores[c.teacher].append(c.score.scas_score(lam))
        picked[c.teacher] += c.selected
    total = sum(picked.values()) or 1
    rows = [
        {"teacher": t, "candidates": len(v), "selected": picked[t], "share": picked[t] / total,
         "mean_score": statistics.fmean(v), "median_score": statistics.median(v)}
        for t, v in scores.items()
    ]
    return sorted(rows, key=lambda r: (-r["selected"], r["teacher"]))


def render_card(ctx: CardContext):
    """Return a `huggingface_hub.DatasetCard` (YAML metadata + body) for the output folder."""
    from huggingface_hub import DatasetCard, DatasetCardData

    student_tag = ctx.student["name"].lower().replace("/", "-")
    tags = ["scas", "distillation", "synthetic", student_tag, *ctx.source.get("tags", ())]
    source_datasets = list(ctx.source.get("datasets") or ([ctx.source["repo_id"]] if ctx.source.get("repo_id") else []))
    data = DatasetCardData(
        license=ctx.source.get("license") or "other",
        task_categories=["text-generation"],
        tags=list(dict.fromkeys(tags)),
        size_categories=[size_category(ctx.stats["questions_selected"])],
        source_datasets=source_datasets,
        pretty_name=f"SCAS selection for {ctx.student['name']}",
        configs=configs_metadata(),
    )
    template = resources.files("scas_hub.cards").joinpath(TEMPLATE).read_text(encoding="utf-8")
    return DatasetCard.from_template(
        data, template_str=template, ctx=ctx, paper_url=PAPER_URL,
    )
