"""The one record that flows through the pipeline: a candidate answer to a question.

source -> verify -> score -> select only ever add to a `Candidate`: sources fill the identity,
text and provenance; verification sets `skip_reason` for unusable rows; scoring attaches a
`ProxyComponents`; selection sets `selected`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .constants import DEFAULT_SYSTEM_PROMPT
from .proxy import ProxyComponents

SCORING_SKIP_REASONS = frozenset({"too_long", "control_tokens_in_answer", "no_answer_tokens", "no_question_tokens"})
"""Reasons set by the scoring stage (the student's tokenizer); any other reason is set before it,
by the source and verification stages (the row is unusable or not verified)."""


@dataclass
class Candidate:
    """One teacher's answer (one of its samples) to one question, plus everything the pipeline learns about it."""

    question_id: str
    teacher: str
    instruction: str
    answer: str
    system: str | None = None
    source_dataset: str | None = None
    reference_answer: str | None = None
    reference_solution: str | None = None
    """A worked solution to the question, where the corpus has one (evaluation reports its NLL)."""
    verified: bool | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    sample: int = 0
    """Which of the teacher's answers to this question it is (0, 1, ... in source order; set by the
    verify stage): rows with the same question and teacher but different answers are samples."""
    # filled by later stages
    skip_reason: str | None = None
    score: ProxyComponents | None = None
    truncated: bool = False
    """Scored on its first `--max-length` tokens (`--truncate`)."""
    selected: bool = False

    @property
    def system_prompt(self) -> str:
        """The system prompt used for rendering: the row's own, else the fixed default."""
        return self.system if self.system else DEFAULT_SYSTEM_PROMPT

    def prompt_messages(self) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": self.instruction},
        ]

    def messages(self) -> list[dict[str, str]]:
        """Conversational format (system, user, assistant), as TRL's SFTTrainer takes it."""
        return [*self.prompt_messages(), {"role": "assistant", "content": self.answer}]

    @property
    def is_scored(self) -> bool:
        return self.score is not None


@dataclass
class Question:
    """All candidates of one question, in source order."""

    question_id: str
    candidates: list[Candidate]

    @property
    def scored(self) -> list[Candidate]:
        return [c for c in self.candidates if c.score is not None]
