"""scas-hub: student-specific distillation datasets with SCAS, published on the Hugging Face Hub.

The pipeline, stage by stage (each a plain function over `Candidate` records):

    load_questions (source + verify) -> score -> select -> write/publish; `curate` runs them all.

`reselect` selects again from a published dataset's stored scores (no model); `curate_students`
scores one corpus with several students and compares their selections. Beside the pipeline,
`scas_hub.train.train` fine-tunes a student on a curated dataset (TRL); `run_rounds` runs the SCAS loop.
"""

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
from .loop import RoundsResult, run_rounds
from .pipeline import CurateResult, curate, load_questions, reselect, score
from .records import Candidate, Question
from .score.engine import ScoringConfig, StudentScorer
from .score.proxy import ProxyComponents
from .select import SelectionConfig, select
from .several_students import StudentsResult, curate_students
from .stats import PipelineStats
from .train import TrainConfig, TrainResult  # train() itself: `from scas_hub.train import train`

__version__ = "0.1.0"

__all__ = [
    "Candidate", "ChatTemplateMismatchError", "ConfigError", "CorpusFormatError",
    "CurateResult", "NoUsableCandidatesError", "ProxyComponents", "PipelineStats", "PublishError",
    "Question", "ScasHubError", "ScoringConfig", "SelectionConfig", "SelectionError", "SourceError",
    "StudentError", "StudentScorer", "StudentsResult", "curate", "curate_students", "load_questions", "reselect",
    "score", "select", "RoundsResult", "TrainConfig", "TrainError", "TrainResult", "run_rounds",
]
