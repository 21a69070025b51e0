"""Verification: keep only usable, verified, distinct candidates; count every row set aside.

Reasons (keys of `skipped`): `missing_question_id`, `empty_instruction`, `empty_answer`,
`not_verified` (the corpus flags the answer as incorrect), `duplicate_row` (same question and
teacher seen again), `question_text_mismatch` (same id, different question text),
`duplicate_answer` (identical answer text from another teacher of the same question).
"""

from __future__ import annotations

from collections.abc import Iterable

from .records import Candidate, Question
from .stats import PipelineStats

VERIFY_REASONS = frozenset({"missing_question_id", "empty_instruction", "empty_answer", "not_verified",
                            "duplicate_row", "question_text_mismatch", "duplicate_answer"})
"""Skip reasons set by this stage; any other reason (e.g. `too_long`) is set by scoring, after verification."""


def _row_reason(c: Candidate) -> str | None:
    if not c.question_id:
        return "missing_question_id"
    if not c.instruction.strip():
        return "empty_instruction"
    if not c.answer.strip():
        return "empty_answer"
    if c.verified is False:
        return "not_verified"
    return None


def group_questions(candidates: Iterable[Candidate], stats: PipelineStats) -> list[Question]:
    """Group rows into questions (first-seen order), setting aside rows that cannot belong to one."""
    questions: dict[str, Question] = {}
    for c in candidates:
        stats.rows_in += 1
        reason = _row_reason(c)
        if reason == "missing_question_id":
            stats.skip(reason, c.teacher)
            continue
        c.skip_reason = reason
        questions.setdefault(c.question_id, Question(c.question_id, [])).candidates.append(c)
    return list(questions.values())


def verify(questions: list[Question], stats: PipelineStats) -> list[Question]:
    """Mark unusable candidates of each question with a `skip_reason` and count them."""
    for q in questions:
        seen_teachers: set[str] = set()
        seen_answers: set[str] = set()
        first = q.candidates[0].instruction.strip() if q.candidates else ""
        for c in q.candidates:
            if c.skip_reason is None:
                if c.teacher in seen_teachers:
                    c.skip_reason = "duplicate_row"
                elif c.instruction.strip() != first:
                    c.skip_reason = "question_text_mismatch"
                elif c.answer.strip() in seen_answers:
                    c.skip_reason = "duplicate_answer"
            if c.skip_reason is None:
                seen_teachers.add(c.teacher)
                seen_answers.add(c.answer.strip())
            else:
                stats.skip(c.skip_reason, c.teacher)
    return questions
