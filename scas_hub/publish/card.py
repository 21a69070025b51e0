"""Render the dataset card (README.md) from `cards/dataset_card.md.j2` and the folder's record.

The record is `selection_stats.json`: the pipeline's counters, the student/source/selection facts,
the card numbers (`card_stats.card_numbers`), run facts and, once pushed, the release and the
version history. The YAML `dataset_info` is read from the parquet files themselves, so every
version's card describes exactly the files of that version (a stale `dataset_info` with old
features would break `load_dataset`, datasets issue 8608).
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..constants import PAPER_URL
from .folder import CONFIG_DIRS, configs_metadata, read_stats
from .markdown import cell, code, plain, text

if TYPE_CHECKING:
    from huggingface_hub import DatasetCard

TEMPLATE = "dataset_card.md.j2"
BIBTEX = f"""@article{{scas2026,
  title   = {{The Strongest Teacher Is Not Always the Best Teacher: Student-Centric Answer Selection}},
  journal = {{arXiv preprint arXiv:2605.26872}},
  year    = {{2026}},
  url     = {{{PAPER_URL}}}
}}"""


def size_category(n: int) -> str:
    for limit, label in [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
    ]:
        if n < limit:
            return label
    return "n>10M"


def dataset_info_metadata(folder: Path) -> dict[str, Any] | list[dict[str, Any]] | None:
    """The YAML `dataset_info` block (features, row counts, sizes per config) read from the parquet files."""
    import pyarrow.parquet as pq
    from datasets import DatasetInfo, Features, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCardData

    infos = {}
    for config, subdir in CONFIG_DIRS.items():
        files = sorted((folder / subdir).glob("train-*.parquet"))
        if not files:
            continue
        metas = [pq.ParquetFile(f).metadata for f in files]
        rows = sum(m.num_rows for m in metas)
        nbytes = sum(m.row_group(i).total_byte_size for m in metas for i in range(m.num_row_groups))
        infos[config] = DatasetInfo(
            features=Features.from_arrow_schema(pq.read_schema(files[0])),
            splits=SplitDict({"train": SplitInfo(name="train", num_bytes=nbytes, num_examples=rows)}),
            download_size=sum(f.stat().st_size for f in files),
            dataset_size=nbytes,
            config_name=config,
        )
    card_data = DatasetCardData()
    DatasetInfosDict(infos).to_dataset_card_data(card_data)
    return card_data.get("dataset_info")


def _short(revision: str | None, n: int = 10) -> str:
    """Commit SHAs shortened for tables; other revisions (local content tags) as they are."""
    return revision[:n] if revision and re.fullmatch(r"[0-9a-f]{40}", revision) else (revision or "")


SCORE_RANKED = ("scas", "argmin")
"""Strategies that rank by the SCAS score, so λ changes what they pick."""


def describe_strategy(selection: dict[str, Any]) -> dict[str, Any]:
    """What the card says about a selection strategy: its title, what was kept per question, the
    rule in the method section, and which settings took part.

    Returns:
        `title`, `kept` (a phrase), `rule` (a sentence), `by_student` (the student's scores chose
        the answers), and `uses` (settings that mattered: `lam`, `groups`, `seed`, `teacher_order`).
    """
    strategy = selection["strategy"]
    base, _, teacher = strategy.partition(":")
    group, groups, seed = selection.get("group"), selection.get("groups"), selection.get("seed")
    if base == "scas":
        kept = (
            f"one answer per question was drawn from the lowest-cost of {groups} cost groups"
            if group == 1
            else f"one answer per question was drawn from cost group {group} of {groups} (group 1 is the cheapest)"
        )
        return {
            "title": "SCAS selection",
            "kept": kept,
            "by_student": True,
            "uses": {"lam", "groups", "seed"},
            "rule": "candidates are ranked by (score, teacher), rank k of M goes to group ceil(k·G/M), and one "
            "answer is drawn (seeded per question) from the chosen group.",
        }
    if base == "argmin":
        return {
            "title": "Lowest-SCAS-score selection",
            "by_student": True,
            "uses": {"lam"},
            "kept": "the answer with the lowest SCAS score (the cheapest for the student to learn) was kept per "
            "question",
            "rule": "the candidate with the lowest SCAS score is kept (ties: teacher name).",
        }
    if base == "lowest-nll":
        return {
            "title": "Lowest-NLL selection",
            "by_student": True,
            "uses": set(),
            "kept": "the answer with the lowest mean answer NLL under the student (GRAPE's rule) was kept per "
            "question; the SCAS score did not take part",
            "rule": "the candidate with the lowest answer mean NLL `l_A` is kept (ties: teacher name); λ and the "
            "similarity terms play no part.",
        }
    if base == "strongest":
        order = selection.get("teacher_order") or []
        ranked = "the given --teacher-ranking" if selection.get("teacher_ranking") else "verified answers in the corpus"
        shown = ", ".join(code(t) for t in order[:5]) + (", ..." if len(order) > 5 else "")
        return {
            "title": "Strongest-teacher selection",
            "by_student": False,
            "uses": {"teacher_order"},
            "kept": f"the strongest teacher's answer for each question (teachers ranked by {ranked}: {shown}; "
            "where the first did not answer, the next one's)",
            "rule": "the answer of the highest-ranked teacher that answered the question is kept; the "
            "student's scores play no part.",
        }
    if base == "teacher":
        return {
            "title": f"Single-teacher selection ({code(teacher)})",
            "by_student": False,
            "uses": set(),
            "kept": f"{code(teacher)}'s answer for each question it answered (the others are left out)",
            "rule": f"the answer of {code(teacher)} is kept; questions it did not answer are dropped. The "
            "student's scores play no part.",
        }
    return {
        "title": "Random selection",
        "by_student": False,
        "uses": {"seed"},
        "kept": f"one answer per question drawn uniformly at random (seed {seed})",
        "rule": "one candidate is drawn uniformly (seeded per question); the student's scores play no part.",
    }


def render_card(record: dict[str, Any], folder: str | Path, name: str | None = None) -> DatasetCard:
    """Return a `huggingface_hub.DatasetCard` (YAML metadata + body) for the folder holding `record`;
    `name` is the folder's name in the card's load lines (default: the folder's own)."""
    from huggingface_hub import DatasetCard, DatasetCardData

    folder = Path(folder)
    student, source = record["student"], record["source"]
    method = describe_strategy(record["selection"])
    student_tag = student["name"].lower().replace("/", "-")
    tags = ["scas", "distillation", "synthetic", student_tag, *source.get("tags", ())]
    data = DatasetCardData(
        license=source.get("license") or "other",
        task_categories=["text-generation"],
        tags=list(dict.fromkeys(tags)),
        size_categories=[size_category(record["questions_selected"])],
        source_datasets=[source["repo_id"]] if source.get("repo_id") else None,
        pretty_name=f"{method['title'].replace('`', '')} for {(student.get('base_model') or student)['name']}",
        configs=configs_metadata(),
        dataset_info=dataset_info_metadata(folder),
    )
    release = record.get("release") or {}
    template = resources.files("scas_hub.cards").joinpath(TEMPLATE).read_text(encoding="utf-8")
    return DatasetCard.from_template(
        data,
        template_str=template,
        r=record,
        release=release,
        target=release.get("repo_id") or name or folder.resolve().name,
        versions=list(reversed(record.get("versions", []))),
        paper_url=PAPER_URL,
        bibtex=BIBTEX,
        short=_short,
        is_local=not release,
        m=method,
        code=code,
        cell=cell,
        text=text,
        plain=plain,
    )


def write_card(folder: str | Path, name: str | None = None) -> Path:
    """Render README.md in `folder` from its `selection_stats.json`; returns the card's path.

    Args:
        name: the output folder's name, when `folder` is the staging folder it is written in.
    """
    folder = Path(folder)
    path = folder / "README.md"
    render_card(read_stats(folder), folder, name).save(path)
    return path
