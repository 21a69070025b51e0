"""The several-students summary: teacher shares per student and agreement between selections.

Written next to the per-student datasets as `students_summary.json` and `students_summary.md`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..compare import Pick, agreement, teacher_shares
from ..errors import PublishError
from .markdown import cell

SUMMARY_STEM = "students_summary"


def students_summary(
    selections: Mapping[str, Mapping[str, Pick]], datasets: Mapping[str, dict[str, Any]]
) -> dict[str, Any]:
    """Teacher shares per student, and for each pair of students the share of questions (selected
    for both) on which they select the same answer.

    Args:
        selections: per student name, its selection by question id.
        datasets: per student name, where its dataset went (`out`, `repo_id`, `version`, counts).
    """
    pairs = []
    for a, b in itertools.combinations(selections, 2):
        agree = agreement(selections[a], selections[b])
        pairs.append(
            {"students": [a, b], "questions_compared": agree.compared, "same_answer": agree.same, "share": agree.share}
        )
    return {
        "students": list(selections),
        "datasets": {s: dict(datasets.get(s, {})) for s in selections},
        "teacher_shares": {s: teacher_shares(sel) for s, sel in selections.items()},
        "agreement": pairs,
    }


def summary_markdown(summary: dict[str, Any]) -> str:
    """The summary as two markdown tables: teacher shares (teachers x students) and agreement (names
    escaped: see `markdown.cell`)."""
    students = summary["students"]
    shares = summary["teacher_shares"]
    teachers = sorted(
        {t for s in students for t in shares[s]}, key=lambda t: (-sum(shares[s].get(t, 0.0) for s in students), t)
    )
    lines = ["| teacher | " + " | ".join(cell(s) for s in students) + " |", "|---|" + "---:|" * len(students)]
    for t in teachers:
        lines.append(f"| {cell(t)} | " + " | ".join(f"{100 * shares[s].get(t, 0.0):.1f}%" for s in students) + " |")
    lines.append(
        "| questions selected | "
        + " | ".join(str(summary["datasets"][s].get("questions_selected", "")) for s in students)
        + " |"
    )
    lines += ["", "| students | questions selected for both | same answer | share |", "|---|---:|---:|---:|"]
    for p in summary["agreement"]:
        share = "n/a" if p["share"] is None else f"{100 * p['share']:.1f}%"
        a, b = p["students"]
        lines.append(f"| {cell(a)} vs {cell(b)} | {p['questions_compared']} | {p['same_answer']} | {share} |")
    return "\n".join(lines) + "\n"


SUMMARY_KEYS = {"students", "datasets", "teacher_shares", "agreement"}


def check_summary_writable(folder: Path) -> None:
    """Refuse to replace summary files that an earlier several-students run did not write.

    Raises:
        PublishError: `folder` holds a `students_summary.json` that is not such a summary, or a
            `students_summary.md` without one.
    """
    json_path, md_path = folder / f"{SUMMARY_STEM}.json", folder / f"{SUMMARY_STEM}.md"
    ours = False
    if json_path.exists():
        try:
            record = json.loads(json_path.read_text(encoding="utf-8"))
            ours = isinstance(record, dict) and set(record) >= SUMMARY_KEYS
        except (OSError, UnicodeDecodeError, ValueError):
            ours = False
        if not ours:
            raise PublishError(f"{json_path} exists and was not written by scas-hub: move it, or pass another --out")
    if md_path.exists() and not ours:
        raise PublishError(f"{md_path} exists and was not written by scas-hub: move it, or pass another --out")


def write_summary(folder: Path, summary: dict[str, Any]) -> tuple[Path, Path]:
    """Write `students_summary.json` and `.md` into `folder` (replacing only an earlier summary);
    returns both paths.

    Raises:
        PublishError: see `check_summary_writable`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    check_summary_writable(folder)
    json_path, md_path = folder / f"{SUMMARY_STEM}.json", folder / f"{SUMMARY_STEM}.md"
    json_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(summary_markdown(summary), encoding="utf-8")
    return json_path, md_path
