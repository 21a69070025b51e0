"""`rounds --eval`: does each round help? The base student θ1 and every trained θ_{r+1} answer the same
held-out questions; the rounds table, `rounds.json` and `OUT/figures/accuracy.png` show each one's
accuracy with its bootstrap interval.

The questions are drawn once (`--eval-limit`, seeded); corpus questions whose text is an eval
question are set aside from every round's training (counted as `held_out` in each round's dataset),
so no θ is evaluated on a question it was trained on. Each finished evaluation is stored as
`OUT/eval/theta-<k>.json` (the `evaluate` report), so a rerun skips it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..evaluate import DecodingConfig, EvalReport, EvalSet, Overlap, accuracy_interval, evaluate_student, find_overlap
from ..evaluate.config import QuestionsConfig
from ..publish.figures import save_figure
from ..source import source_record

EVAL_DIR = "eval"
FIGURE = "figures/accuracy.png"


@dataclass
class RoundsEval:
    """The held-out questions every θ of one loop is evaluated on, and how."""

    eval_set: EvalSet
    overlap: Overlap
    decoding: DecodingConfig
    folder: Path

    @classmethod
    def load(
        cls,
        questions: QuestionsConfig,
        out: Path,
        *,
        corpus: str,
        corpus_subset: str | None,
        decoding: DecodingConfig | None = None,
    ) -> RoundsEval:
        """Draw the eval questions and find those the training corpus shares with them.

        Raises:
            SourceError, ConfigError: the eval source or the corpus cannot be read, or `limit` < 1.
        """
        from ..source import open_source

        eval_set = questions.load()
        overlap = find_overlap(open_source(corpus, subset=corpus_subset).candidates(), eval_set.questions)
        return cls(eval_set, overlap, decoding or DecodingConfig(), out / EVAL_DIR)

    @property
    def held_out(self) -> frozenset[str]:
        """Normalised texts of the corpus questions set aside from training."""
        return self.overlap.texts

    def settings(self) -> dict[str, Any]:
        """What a rerun must match (recorded in `rounds.json`)."""
        return {
            "source": source_record(self.eval_set.source),
            **self.eval_set.to_dict(),
            "question_ids": [q.question_id for q in self.eval_set.questions],
            "decoding": self.decoding.to_dict(),
            "overlap_set_aside": self.overlap.to_dict(),
        }

    def evaluate(
        self,
        theta: int,
        student: str,
        revision: str,
        *,
        student_revision: str | None = None,
        device: str | None = None,
        progress: bool = True,
    ) -> dict[str, Any]:
        """θ_k's accuracy on the questions: from its stored report when it was evaluated at this revision."""
        import json

        path = self.folder / f"theta-{theta}.json"
        report = None
        if path.exists():
            report = EvalReport.from_dict(json.loads(path.read_text(encoding="utf-8")))
            if report.student.get("revision") != revision:
                report = None
        if report is None:
            report = evaluate_student(
                student,
                self.eval_set,
                path,
                student_revision=student_revision,
                decoding=self.decoding,
                device=device,
                reference_nll=False,
                progress=progress,
            )
        return accuracy_facts(report, path.relative_to(self.folder.parent).as_posix())


def accuracy_facts(report: EvalReport, where: str) -> dict[str, Any]:
    """Accuracy with its 95% percentile-bootstrap interval over questions."""
    interval = accuracy_interval([float(r.correct) for r in report.per_question])
    return {
        "accuracy": interval.estimate,
        "ci_low": interval.low,
        "ci_high": interval.high,
        "n_correct": report.n_correct,
        "n_questions": report.n_questions,
        "student_revision": report.student.get("revision"),
        "report": where,
    }


def plot_accuracy(base: dict[str, Any], rounds: list[dict[str, Any]], path: Path) -> Path:
    """θ1 (the base student) and each θ_{r+1}: accuracy with its interval, one point per θ."""
    from matplotlib.figure import Figure

    points = [("θ1\n(base)", base)] + [
        (f"θ{r['round'] + 1}\n(round {r['round']})", r["eval"]) for r in rounds if r.get("eval")
    ]
    fig = Figure(figsize=(1.6 + 1.1 * len(points), 3.2), dpi=110, layout="constrained")
    ax = fig.subplots()
    ax.spines[["top", "right"]].set_visible(False)
    x = list(range(len(points)))
    acc = [100 * p["accuracy"] for _, p in points]
    low = [a - 100 * p["ci_low"] if p["ci_low"] is not None else 0 for a, (_, p) in zip(acc, points, strict=True)]
    high = [100 * p["ci_high"] - a if p["ci_high"] is not None else 0 for a, (_, p) in zip(acc, points, strict=True)]
    ax.errorbar(x, acc, yerr=[low, high], fmt="o-", color="#e8743b", ecolor="#9aa5b1", capsize=4)
    ax.set_xticks(x, [label for label, _ in points])
    ax.set_ylabel(f"accuracy, % (95% interval, {base['n_questions']} questions)")
    ax.set_ylim(0, 100)
    save_figure(fig, path)
    return path


def format_accuracy(facts: dict[str, Any] | None) -> str:
    if not facts:
        return "n/a"
    if facts["ci_low"] is None:
        return f"{facts['accuracy']:.3f} [n/a]"
    return f"{facts['accuracy']:.3f} [{facts['ci_low']:.3f}, {facts['ci_high']:.3f}]"
