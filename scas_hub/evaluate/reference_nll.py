"""Mean NLL of reference solutions under the student: the scoring engine's `answer_mean_nll`.

The solution is rendered as the assistant turn of `[system, user, assistant]` with the student's
chat template, exactly as a candidate answer is scored and trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from ..records import Question
from ..score.engine import ScoringConfig, StudentScorer
from ..stats import PipelineStats
from .questions import EvalQuestion

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def reference_solution_nll(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[EvalQuestion],
    *,
    progress: bool = True,
    chat_template: str | None = None,
    system_prompt: str | None = None,
) -> dict[str, float]:
    """`{question_id: answer_mean_nll}` for every question with a scorable reference solution.

    `chat_template` (text) and `system_prompt` override the student's template and the rows' prompts,
    as they do for generation.
    """
    to_score = []
    for q in questions:
        if q.reference_solution and q.reference_solution.strip():
            cand = q.as_candidate(q.reference_solution, teacher="reference_solution")
            if system_prompt is not None:
                cand = replace(cand, system=system_prompt)
            to_score.append(Question(q.question_id, [cand]))
    if not to_score:
        return {}
    scorer = StudentScorer(model, tokenizer, ScoringConfig(progress=progress), chat_template=chat_template)
    try:
        scored = list(scorer.score_questions(to_score, PipelineStats(), total_rows=len(to_score)))
    finally:
        scorer.close()
    return {q.question_id: q.candidates[0].score.answer_mean_nll for q in scored if q.candidates[0].score is not None}
