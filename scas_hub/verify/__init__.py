"""Verify stage: group candidates by question, keep the usable, verified, distinct ones, count the rest.

Rows with the same (question, teacher) and different answers are **samples** of that teacher:
all are kept, numbered by `Candidate.sample`: the row's position among the teacher's rows for the
question, in source order (0, 1, ...). Every row counts, so a sample's number does not depend on
the verification rule, a wide row's answers from one teacher keep their index in the list, and
rows set aside leave gaps.

Every row set aside gets one reason (a key of `skipped`, also counted per teacher):

- from the source adapters: `missing_<field>`, `empty_<field>`, `wrong_type_<field>`, `no_answers`
  (a wide row with an empty answer list), `answer_list_length_mismatch` (parallel lists of
  different lengths), `missing_question_id` (the row belongs to no question);
- `duplicate_row`: the question's teacher again, with the same answer text (the first is kept);
- `question_text_mismatch`: same question id, different question text;
- `duplicate_answer`: the same answer text as another teacher's (the first is kept);
- verification (see `VERIFY_RULES`): `not_verified` (flagged incorrect, or math-verify says the
  answer differs from the reference), `unverifiable` (no final answer could be extracted),
  `unverifiable_reference`, `no_reference_answer` (rule `math`), `no_verification_flag`
  (rule `flags`), `no_flag_or_reference` (rule `auto`: neither is there).

Grouping is an external sort (`grouping.QuestionGrouper`): memory is bounded by its buffer, not by
the corpus.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from ..errors import SourceError
from ..records import Candidate, Question
from ..source.columns import normalise_question
from ..source.recipe import VERIFY_RULES
from ..stats import PipelineStats
from .grouping import QuestionGrouper
from .math_answers import check as math_check

__all__ = ["VERIFY_RULES", "QuestionGrouper", "iter_verified", "verify_question", "verification_reason"]


def verification_reason(c: Candidate, rule: str) -> str | None:
    """Why `c` fails verification under `rule` (None: it passes)."""
    if rule == "trusted":
        return "not_verified" if c.verified is False else None
    if rule in ("flags", "auto") and c.verified is not None:
        return None if c.verified else "not_verified"
    if rule == "flags":
        return "no_verification_flag"
    if not (c.reference_answer and c.reference_answer.strip()):
        return "no_reference_answer" if rule == "math" else "no_flag_or_reference"
    return math_check(c.answer, c.reference_answer)


def verify_question(question: Question, stats: PipelineStats, rule: str = "auto") -> Question:
    """Number each teacher's samples, set `skip_reason` on every unusable candidate of one
    question and count it in `stats`."""
    rows_of: Counter = Counter()  # per teacher, its rows for this question so far
    answers_of: set[tuple[str, str]] = set()  # (teacher, answer text) of the rows kept so far
    seen_answers: set[str] = set()
    # the question's text is its first row's, even when that row is unusable for another reason
    first = next((c for c in question.candidates if c.instruction.strip()), None)
    first_text = normalise_question(first.instruction) if first else ""
    for c in question.candidates:
        c.sample = rows_of[c.teacher]
        rows_of[c.teacher] += 1
        if c.skip_reason is None:
            answer = c.answer.strip()
            if first is not None and c.instruction == first.instruction:
                c.instruction = first.instruction  # one string object per question, not per row
            if (c.teacher, answer) in answers_of:
                c.skip_reason = "duplicate_row"
            elif normalise_question(c.instruction) != first_text:
                c.skip_reason = "question_text_mismatch"
            else:
                answers_of.add((c.teacher, answer))
                if answer in seen_answers:
                    c.skip_reason = "duplicate_answer"
                else:
                    seen_answers.add(answer)
                    c.skip_reason = verification_reason(c, rule)
        if c.skip_reason is not None:
            stats.skip(c.skip_reason, c.teacher or None)
    return question


def iter_verified(candidates: Iterable[Candidate], stats: PipelineStats, *, rule: str = "auto",
                  grouper: QuestionGrouper | None = None) -> Iterator[Question]:
    """Group a candidate stream by question (bounded memory) and verify each question.

    Counts `rows_in` and every skipped row in `stats`; rows without a question id are counted and
    belong to no question.

    Raises:
        SourceError: unknown `rule`, or (rule `auto`) no row carries a correctness flag or a
            reference answer, so nothing could be verified.
    """
    if rule not in VERIFY_RULES:
        raise SourceError(f"unknown verification rule {rule!r}; choose one of {', '.join(VERIFY_RULES)}")
    grouper = grouper or QuestionGrouper()
    before = stats.skipped["no_flag_or_reference"]
    kept = 0

    def counted(stream: Iterable[Candidate]) -> Iterator[Candidate]:
        for c in stream:
            stats.rows_in += 1
            yield c

    for group in grouper.group(counted(candidates)):
        if not group[0].question_id:
            for c in group:
                c.skip_reason = c.skip_reason or "missing_question_id"
                stats.skip(c.skip_reason, c.teacher or None)
            continue
        question = verify_question(Question(group[0].question_id, group), stats, rule)
        kept += sum(c.skip_reason is None for c in question.candidates)
        yield question
    unverifiable = stats.skipped["no_flag_or_reference"] - before
    if unverifiable and not kept:
        raise SourceError(
            f"none of the rows could be verified: {unverifiable} have neither a correctness flag nor a "
            "reference answer. Map those columns in the recipe, or, if the corpus was verified upstream, "
            "use verification 'trusted' (--verify trusted)."
        )
