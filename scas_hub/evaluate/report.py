"""Checking generated answers against the reference, and the evaluation report (`report.json`)."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..verify.math_answers import check as math_check


def grade(generated: str, reference_answer: str) -> tuple[bool, str]:
    """math-verify the generated answer against the reference: `(correct, outcome)`.

    `outcome` is `correct`, `not_verified` (a final answer that differs), `unverifiable` (no final
    answer could be extracted) or `unverifiable_reference` (the reference does not parse).
    """
    reason = math_check(generated, reference_answer)
    return reason is None, reason or "correct"


@dataclass
class QuestionResult:
    """One question's outcome."""

    question_id: str
    generated: str
    correct: bool
    outcome: str
    """See `grade`."""
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

    def to_dict(self) -> dict[str, Any]:
        cut = sum(r.stopped is False for r in self.per_question)
        return {"accuracy": self.accuracy, "n_questions": self.n_questions, "n_correct": self.n_correct,
                "outcomes": self.outcomes(), "cut_at_max_new_tokens": cut, "reference_nll": self.reference_nll,
                "student": self.student, "eval": self.eval, "decoding": self.decoding, "run": self.run,
                "per_question": [asdict(r) for r in self.per_question]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalReport:
        return cls(per_question=[QuestionResult(**r) for r in data["per_question"]], student=data.get("student", {}),
                   eval=data.get("eval", {}), decoding=data.get("decoding", {}), run=data.get("run", {}))

    def write(self, path: str | Path) -> Path:
        """Write `report.json` atomically."""
        return write_json_atomic(path, self.to_dict())


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write JSON through a temporary file and a rename: a killed run never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
