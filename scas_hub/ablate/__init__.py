"""Compare selection strategies on one student: score once, select per strategy, train, evaluate, bootstrap.

A stage beside the pipeline that calls `curate`, `reselect`, `train` and `evaluate`; see `experiment`.
"""

from .experiment import DEFAULT_STRATEGIES, AblationResult, ablate
from .summary import paired_comparison, question_scores, strategy_summary, summarise

__all__ = [
    "DEFAULT_STRATEGIES",
    "AblationResult",
    "ablate",
    "paired_comparison",
    "question_scores",
    "strategy_summary",
    "summarise",
]
