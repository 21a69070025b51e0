"""scas-hub: student-specific distillation datasets with SCAS, published on the Hugging Face Hub.

The pipeline, stage by stage (each a plain function over `Candidate` records):

    load_questions (source + verify) -> score -> select -> write/publish; `curate` runs them all.

`reselect` selects again from a published dataset's stored scores (no model); `curate_students`
scores one corpus with several students and compares their selections. Beside the pipeline,
`scas_hub.train.train` fine-tunes a student on a curated dataset (TRL); `run_rounds` runs the SCAS loop.
"""

from __future__ import annotations

import importlib
import sys
import types
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("scas-hub")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

# Public names -> the module that defines them, imported on first access (PEP 562), so that
# `import scas_hub.records` or `scas-hub --help` loads no torch.
_LAZY = {
    **dict.fromkeys(
        [
            "ChatTemplateMismatchError",
            "ConfigError",
            "CorpusFormatError",
            "NoUsableCandidatesError",
            "PublishError",
            "ScasHubError",
            "SelectionError",
            "SourceError",
            "StudentError",
            "TrainError",
        ],
        ".errors",
    ),
    "RoundsResult": ".rounds.loop",
    "run_rounds": ".rounds.loop",
    **dict.fromkeys(["CurateResult", "curate", "load_questions", "reselect", "score"], ".pipeline"),
    "Candidate": ".records",
    "Question": ".records",
    "PublishConfig": ".publish.config",
    "ScoringConfig": ".score.config",
    "StudentConfig": ".student.config",
    "StudentScorer": ".score.engine",
    "ProxyComponents": ".proxy",
    "SelectionConfig": ".select",
    "select": ".select",
    "StudentsResult": ".several_students",
    "curate_students": ".several_students",
    "PipelineStats": ".stats",
    "TrainConfig": ".train",
    "TrainResult": ".train",  # train() itself: `from scas_hub.train import train`
}

if TYPE_CHECKING:
    from .errors import (
        ChatTemplateMismatchError,
        ConfigError,
        CorpusFormatError,
        NoUsableCandidatesError,
        PublishError,
        ScasHubError,
        SelectionError,
        SourceError,
        StudentError,
        TrainError,
    )
    from .pipeline import CurateResult, curate, load_questions, reselect, score
    from .proxy import ProxyComponents
    from .publish.config import PublishConfig
    from .records import Candidate, Question
    from .rounds.loop import RoundsResult, run_rounds
    from .score.config import ScoringConfig
    from .score.engine import StudentScorer
    from .select import SelectionConfig, select
    from .several_students import StudentsResult, curate_students
    from .stats import PipelineStats
    from .student.config import StudentConfig
    from .train import TrainConfig, TrainResult


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


class _Package(types.ModuleType):
    """`scas_hub.select` and `scas_hub.score` name the functions, as they did when this file imported
    them eagerly: importing the subpackages of the same name does not bind them over the functions."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("select", "score") and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__all__ = [
    "Candidate",
    "ChatTemplateMismatchError",
    "ConfigError",
    "CorpusFormatError",
    "CurateResult",
    "NoUsableCandidatesError",
    "ProxyComponents",
    "PipelineStats",
    "PublishConfig",
    "PublishError",
    "Question",
    "ScasHubError",
    "ScoringConfig",
    "SelectionConfig",
    "SelectionError",
    "SourceError",
    "StudentConfig",
    "StudentError",
    "StudentScorer",
    "StudentsResult",
    "curate",
    "curate_students",
    "load_questions",
    "reselect",
    "score",
    "select",
    "RoundsResult",
    "TrainConfig",
    "TrainError",
    "TrainResult",
    "run_rounds",
]
