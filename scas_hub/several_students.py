"""Several students in one run: read and verify the corpus once, then score, select and publish
one dataset per student, and a summary comparing their selections."""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .constants import DEFAULT_STUDENT
from .errors import PublishError, StudentError
from .pipeline import CurateResult, dataset_name, default_repo, publish, run_table, source_record
from .publish.config import PublishConfig
from .publish.hub import check_push_settings
from .publish.output import check_out_folder
from .publish.summary import check_summary_writable, students_summary, summary_markdown, write_summary
from .score.config import ScoringConfig
from .score.runner import score_table
from .score.scored_table import ScoredTable
from .select import SelectionConfig
from .stats import PipelineStats
from .student.config import StudentConfig
from .student.loading import check_student, student_slug
from .verify import nothing_usable


@dataclass
class StudentsResult:
    """What `curate_students` wrote: one dataset per student (by short name) and the summary."""

    results: dict[str, CurateResult]
    summary: dict[str, Any]
    summary_json: Path
    summary_markdown: Path

    @property
    def table(self) -> str:
        return summary_markdown(self.summary)


def curate_students(
    students: Sequence[str | StudentConfig],
    source: str | None = None,
    out: str | Path | None = None,
    *,
    subset: str | None = None,
    source_revision: str | None = None,
    verification: str | None = None,
    selection: SelectionConfig | None = None,
    scoring: ScoringConfig | None = None,
    publishing: PublishConfig | None = None,
) -> StudentsResult | None:
    """Score one corpus with several students: one dataset per student, and a comparison.

    The corpus is read and verified once into the candidate table; each student scores it and
    selects from it window by window, as `curate` does. Writes `<out>/scas-<student>/` per student
    (`-<strategy>` appended for another strategy than `scas`) and `<out>/students_summary.{json,md}`:
    teacher shares per student and, per pair of students, the share of questions with the same
    selected answer.

    Args:
        students: aliases, Hub model ids or local folders, or `StudentConfig`s (their short names
            must differ); a student's chat template overrides `scoring.chat_template` for it.
        out: parent folder (default `out`).
        publishing: `push` takes an org; student S goes to `<org>/scas-<S>` (`-<strategy>` appended
            as for the folders).
        Other arguments: as in `curate`.

    Returns:
        The result on the main process; `None` on the other processes of an `accelerate launch`.

    Raises:
        SourceError, StudentError, SelectionError, PublishError: with what to do.
    """
    models = [StudentConfig.of(s) for s in students]
    names = [model.name for model in models]
    scoring = scoring or ScoringConfig()
    publishing = publishing or PublishConfig()
    push, version, private = publishing.push, publishing.version, publishing.private
    selection = (selection or SelectionConfig()).validate()
    strategy = selection.strategy
    slugs = _check_students(names, publishing, strategy)
    if source is None:  # "" is refused by open_source, never taken for the default
        source = "demo" if all(s == DEFAULT_STUDENT for s in names) else "scas_pool"
    parent = Path(out) if out else Path("out")
    folders = {s: parent / dataset_name(s, strategy) for s in names}
    for folder in folders.values():  # before any work
        check_out_folder(folder)
    check_summary_writable(parent)

    corpus_stats = PipelineStats()
    opened, table, verified = run_table(source, subset, source_revision, corpus_stats, verification, selection)
    results: dict[str, CurateResult] = {}
    for model, slug in zip(models, slugs, strict=True):
        student = model.name
        started = time.perf_counter()
        stats = copy.deepcopy(corpus_stats)  # each student counts afresh from the verified corpus
        with stats.stage("score"):
            report = score_table(table, model, stats, scoring=scoring)
        if report is None:  # not the main process: rank 0 publishes
            continue
        if not stats.rows_scored:
            raise nothing_usable(stats, "scoring")
        results[slug] = publish(
            ScoredTable(table, report.scores).windows(),
            selection,
            stats,
            folders[student],
            student=report.student,
            source=source_record(opened.info),
            started=started,
            verified=verified,
            repo_id=default_repo(push, student, strategy) if push else None,
            version=version,
            private=private,
            report=report,
            repo_from_org=bool(push),
        )
    if not results:
        return None
    datasets = {
        s: {
            "out": str(r.out),
            "repo_id": r.repo_id,
            "version": r.version,
            "questions_selected": r.stats["questions_selected"],
        }
        for s, r in results.items()
    }
    summary = students_summary({s: r.selection for s, r in results.items()}, datasets)
    json_path, md_path = write_summary(parent, summary)
    return StudentsResult(results, summary, json_path, md_path)


def _check_students(names: list[str], publishing: PublishConfig, strategy: str) -> list[str]:
    """Before any work: distinct dataset names, known students, and push settings each student's
    repo can take. Returns the students' short names."""
    slugs = [student_slug(s) for s in names]
    if not names or len(set(slugs)) != len(slugs):
        raise StudentError(f"several students need distinct names for their datasets, got {', '.join(slugs)}")
    for s in names:
        check_student(s)
    push = publishing.push
    if push and "/" in push:
        raise PublishError(
            f"with several students --push takes an org (each dataset goes to <org>/scas-<student>), not {push!r}"
        )
    for s in names:  # each student's repo name and the tag
        check_push_settings(push, default_repo(push, s, strategy) if push else None, publishing.version)
    return slugs
