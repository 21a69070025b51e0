"""One arm of an ablation: a strategy's dataset, trained with one seed, evaluated on the held-out questions.

The training step is one function, `train_arm`, over `scas_hub.train.train`. Each finished arm is
stored atomically as `arms/<strategy>/seed-<seed>.json` (training facts + evaluation report), so
a rerun after a crash skips it; an unfinished training run resumes from its own checkpoints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import write_json_atomic
from ..evaluate.report import EvalReport
from ..slug import strategy_slug

if TYPE_CHECKING:
    from ..train.config import TrainConfig

ARMS_DIR = "arms"
BASELINE = "baseline"
"""The untrained student, evaluated once on the same questions."""


@dataclass
class ArmResult:
    """A finished arm: what was trained (None for the baseline) and how it scored."""

    strategy: str
    seed: int | None
    training: dict[str, Any] | None
    report: EvalReport

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "seed": self.seed,
            "training": self.training,
            "report": self.report.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArmResult:
        return cls(
            strategy=data["strategy"],
            seed=data["seed"],
            training=data["training"],
            report=EvalReport.from_dict(data["report"]),
        )


def arm_path(out: Path, strategy: str, seed: int | None) -> Path:
    if seed is None:
        return out / ARMS_DIR / f"{strategy_slug(strategy)}.json"
    return out / ARMS_DIR / strategy_slug(strategy) / f"seed-{seed}.json"


def read_arm(path: Path) -> ArmResult | None:
    """A finished arm, or None when it has not finished (the file is written last, atomically)."""
    if not path.exists():
        return None
    return ArmResult.from_dict(json.loads(path.read_text(encoding="utf-8")))


def write_arm(path: Path, arm: ArmResult) -> Path:
    return write_json_atomic(path, arm.to_dict())


def train_arm(
    dataset: Path,
    student: str,
    out: Path,
    config: TrainConfig,
    *,
    student_revision: str | None = None,
    progress: bool = True,
) -> tuple[Path, dict[str, Any]]:
    """Train `student` on one strategy's dataset: the ablation's only training call.

    Returns:
        The checkpoint folder and the facts the report keeps (steps, losses, rows, seed, revision).
    """
    from ..train import train

    result = train(dataset, student, out, student_revision=student_revision, config=config, progress=progress)
    facts = result.facts
    return result.checkpoint, {
        "steps": result.steps,
        "final_loss": result.final_loss,
        "train_loss": result.train_loss,
        "rows": facts.get("rows"),
        "rows_cut": facts.get("rows_cut"),
        "rows_dropped": facts.get("rows_dropped"),
        "max_length": facts["config"]["max_length"],
        "seed": config.seed,
        "checkpoint_revision": result.revision,
        "dataset": result.dataset.to_dict(),
        "chat_template_sha256": result.chat_template_sha256,
        "bf16": facts.get("bf16"),
        "wall_seconds": facts.get("wall_seconds"),
    }
