"""Evaluation, a stage beside the pipeline: does a (trained) student answer held-out questions correctly?

    questions (any source) -> generate (greedy, every parameter pinned, one chat template)
    -> grade (math-verify, boxed first; a cut answer only on its explicit final answer) -> report

`evaluate` runs it all and writes `report.json`; `scas_hub.ablate` evaluates one trained student per
selection strategy on the same questions and compares them with bootstrap intervals.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .bootstrap import accuracy_interval, paired_difference
    from .config import QuestionsConfig
    from .generate import DecodingConfig, Generation, Generator
    from .grading import grade
    from .overlap import Overlap, find_overlap
    from .prompts import training_system_prompt
    from .questions import EvalQuestion, EvalSet, load_eval_questions
    from .report import EvalReport, QuestionResult
    from .run import evaluate, evaluate_student

_EXPORTS = {
    name: module
    for module, names in {
        "bootstrap": (
            "accuracy_interval",
            "paired_difference",
        ),
        "config": ("QuestionsConfig",),
        "generate": (
            "DecodingConfig",
            "Generation",
            "Generator",
        ),
        "grading": ("grade",),
        "overlap": (
            "Overlap",
            "find_overlap",
        ),
        "prompts": ("training_system_prompt",),
        "questions": (
            "EvalQuestion",
            "EvalSet",
            "load_eval_questions",
        ),
        "report": (
            "EvalReport",
            "QuestionResult",
        ),
        "run": (
            "evaluate",
            "evaluate_student",
        ),
    }.items()
    for name in names
}
"""Public name -> submodule; imported on first use (PEP 562), so `scas_hub.evaluate.config` stays light."""

__all__ = [
    "DecodingConfig",
    "EvalQuestion",
    "EvalReport",
    "EvalSet",
    "Generation",
    "Generator",
    "Overlap",
    "QuestionResult",
    "QuestionsConfig",
    "accuracy_interval",
    "evaluate",
    "evaluate_student",
    "find_overlap",
    "grade",
    "load_eval_questions",
    "paired_difference",
    "training_system_prompt",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
