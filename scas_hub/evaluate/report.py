"""The evaluation report (`report.json`); answers are graded in `grading.py`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import write_json_atomic

CUT_WARNING_SHARE = 0.10
"""Above this share of answers cut at the token limit, the summary warns: the accuracy then measures
the limit as much as the student (raise --max-new-tokens)."""


def cut_summary(n_questions: int, n_cut: int, n_correct_finished: int, max_new_tokens: int | None) -> dict[str, Any]:
    """Cut answers and the accuracy on finished ones, with a warning above `CUT_WARNING_SHARE`."""
    finished = n_questions - n_cut
    share = n_cut / n_questions if n_questions else 0.0
    warning = None
    if share > CUT_WARNING_SHARE:
        limit = f" at {max_new_tokens} new tokens" if max_new_tokens else ""
        warning = (
            f"{n_cut} of {n_questions} answers ({100 * share:.0f}%) were cut{limit}; they are graded only "
            f"on an explicit final answer, so accuracy depends on the limit: raise --max-new-tokens"
        )
    return {
        "cut_at_max_new_tokens": n_cut,
        "cut_share": share,
        "n_finished": finished,
        "accuracy_finished": n_correct_finished / finished if finished else None,
        "cut_warning": warning,
    }


@dataclass
class QuestionResult:
    """One question's outcome."""

    question_id: str
    generated: str
    correct: bool
    outcome: str
    """See `grading.OUTCOMES`."""
    reference_answer: str
    n_generated_tokens: int | None = None
    stopped: bool | None = None
    """The student ended its turn (False: cut at `max_new_tokens`; None: unknown)."""
    reference_nll: float | None = None
    """Mean NLL of the reference solution's answer tokens under the student (`answer_mean_nll`)."""


@dataclass
class EvalReport:
    """What `scas-hub evaluate` measured, and everything that pins the run."""

    per_question: list[QuestionResult]
    student: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)
    """The eval source (name, repo, revision) and how its questions were drawn."""
    decoding: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    """Versions, hardware, command, timings."""

    @property
    def n_questions(self) -> int:
        return len(self.per_question)

    @property
    def n_correct(self) -> int:
        return sum(r.correct for r in self.per_question)

    @property
    def accuracy(self) -> float:
        return self.n_correct / self.n_questions if self.per_question else 0.0

    @property
    def reference_nll(self) -> dict[str, Any] | None:
        """Mean over questions of the reference solutions' mean NLL, where the source has them."""
        values = [r.reference_nll for r in self.per_question if r.reference_nll is not None]
        if not values:
            return None
        return {"mean": sum(values) / len(values), "n_questions": len(values)}

    def outcomes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.per_question:
            counts[r.outcome] = counts.get(r.outcome, 0) + 1
        return dict(sorted(counts.items()))

    def cut(self) -> dict[str, Any]:
        """Answers cut at `max_new_tokens`, the accuracy on the finished ones, and a warning above 10% cut."""
        cut = sum(r.stopped is False for r in self.per_question)
        correct_finished = sum(r.correct for r in self.per_question if r.stopped is not False)
        return cut_summary(self.n_questions, cut, correct_finished, self.decoding.get("max_new_tokens"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "n_questions": self.n_questions,
            "n_correct": self.n_correct,
            "outcomes": self.outcomes(),
            **self.cut(),
            "reference_nll": self.reference_nll,
            "student": self.student,
            "eval": self.eval,
            "decoding": self.decoding,
            "run": self.run,
            "per_question": [asdict(r) for r in self.per_question],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalReport:
        return cls(
            per_question=[QuestionResult(**r) for r in data["per_question"]],
            student=data.get("student", {}),
            eval=data.get("eval", {}),
            decoding=data.get("decoding", {}),
            run=data.get("run", {}),
        )

    def write(self, path: str | Path) -> Path:
        """Write `report.json` atomically."""
        return write_json_atomic(path, self.to_dict(), ensure_ascii=False)
