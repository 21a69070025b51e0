"""scas-hub: student-specific distillation datasets with SCAS, published on the Hugging Face Hub.

The pipeline, stage by stage (each a plain function over `Candidate` records):

    load_questions (source + verify) -> score -> select -> write/publish; `curate` runs them all.
"""

from .errors import (
    CorpusFormatError,
    PublishError,
    ScasHubError,
    SelectionError,
    SourceError,
    StudentError,
)
from .pipeline import CurateResult, curate, load_questions, score
from .records import Candidate, Question
from .score.engine import ScoringConfig, StudentScorer
from .score.proxy import ProxyComponents
from .select import SelectionConfig, select
from .stats import PipelineStats

__version__ = "0.1.0"

__all__ = [
    "Candidate", "CorpusFormatError", "CurateResult", "ProxyComponents", "PipelineStats", "PublishError",
    "Question", "ScasHubError", "ScoringConfig", "SelectionConfig", "SelectionError", "SourceError",
    "StudentError", "StudentScorer", "curate", "load_questions", "score", "select",
]
