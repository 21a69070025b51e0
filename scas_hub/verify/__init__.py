"""Verify stage: group candidates by question, keep the usable, verified, distinct ones, count the rest.

Rows with the same (question, teacher) and different answers are **samples** of that teacher:
all are kept, numbered by `Candidate.sample`: the row's position among the teacher's rows for the
question, in source order (0, 1, ...). Every row counts, so a sample's number does not depend on
the verification rule, a wide row's answers from one teacher keep their index in the list, and
rows set aside leave gaps.

Every row set aside gets one reason (a key of `skipped`, also counted per teacher):

- from the source adapters: `missing_<field>`, `empty_<field>`, `wrong_type_<field>`, `no_answers`
  (a wide row with an empty answer list), `answer_list_length_mismatch` (parallel lists of
  different lengths), `missing_question_id` (the row belongs to no question), `truncated_answer`
  (the corpus records `finish_reason` `length`: the answer was cut off at the generation limit);
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
from collections.abc import Callable, Iterable, Iterator, Sequence

from ..errors import NoUsableCandidatesError, SourceError
from ..records import Candidate, Question
from ..source.columns import normalise_question
from ..source.recipe import VERIFY_RULES, check_verification
from ..stats import PipelineStats
from .grouping import QuestionGrouper
from .math_answers import check as math_check

__all__ = [
    "VERIFY_RULES",
    "QuestionGrouper",
    "iter_verified",
    "nothing_usable",
    "question_skip_reasons",
    "verify_question",
    "verification_reason",
]

FLAG_HINTS = ("correct", "verif", "valid", "pass", "accept", "label", "flag", "reward")
"""Parts of column names that suggest a correctness flag."""


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


def question_skip_reasons(
    rows: Sequence[tuple[str | None, str, bool, object, object]], verification: Callable[[int], str | None]
) -> tuple[list[str | None], list[int]]:
    """The skip reason (None: usable) and sample number of every candidate of one question, in
    source order: a teacher's rows for a question are its samples 0, 1, ...

    Args:
        rows: per candidate, `(reason set by the source, teacher, has question text, key of the
            normalised question text, key of the stripped answer)`; keys are any comparable values
            (the texts themselves, or their hashes).
        verification: `i -> reason` for candidate `i` under the verification rule; called only for
            candidates that pass every other check.
    """
    rows_of: Counter = Counter()  # per teacher, its rows for this question so far
    answers_of: set = set()  # (teacher, answer key) of the rows kept so far
    seen_answers: set = set()
    # the question's text is its first row's, even when that row is unusable for another reason
    first_text = next((key for _, _, has_text, key, _ in rows if has_text), None)
    reasons: list[str | None] = []
    samples: list[int] = []
    for i, (reason, teacher, _, text, answer) in enumerate(rows):
        samples.append(rows_of[teacher])
        rows_of[teacher] += 1
        if reason is None:
            if (teacher, answer) in answers_of:
                reason = "duplicate_row"
            elif first_text is not None and text != first_text:
                reason = "question_text_mismatch"
            else:
                answers_of.add((teacher, answer))
                if answer in seen_answers:
                    reason = "duplicate_answer"
                else:
                    seen_answers.add(answer)
                    reason = verification(i)
        reasons.append(reason)
    return reasons, samples


def verify_question(question: Question, stats: PipelineStats, rule: str = "auto") -> Question:
    """Number each teacher's samples, set `skip_reason` on every unusable candidate of one
    question and count it in `stats`."""
    cands = question.candidates
    first = next((c for c in cands if c.instruction.strip()), None)
    for c in cands:
        if first is not None and c.instruction == first.instruction:
            c.instruction = first.instruction  # one string object per question, not per row
    rows = [
        (c.skip_reason, c.teacher, bool(c.instruction.strip()), normalise_question(c.instruction), c.answer.strip())
        for c in cands
    ]
    reasons, samples = question_skip_reasons(rows, lambda i: verification_reason(cands[i], rule))
    for c, reason, sample in zip(cands, reasons, samples, strict=True):
        c.skip_reason, c.sample = reason, sample
        if reason is not None:
            stats.skip(reason, c.teacher or None)
    return question


def iter_verified(
    candidates: Iterable[Candidate], stats: PipelineStats, *, rule: str = "auto", grouper: QuestionGrouper | None = None
) -> Iterator[Question]:
    """Group a candidate stream by question (bounded memory) and verify each question.

    Counts `rows_in` and every skipped row in `stats`; rows without a question id are counted and
    belong to no question.

    Raises:
        SourceError: unknown `rule`, or (rule `auto`) no row carries a correctness flag or a
            reference answer, so nothing could be verified.
    """
    check_verification(rule)
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


def nothing_usable(
    stats: PipelineStats, stage: str, columns: dict[str, str] | None = None, rule: str | None = None
) -> NoUsableCandidatesError:
    """The error for a run where no candidate survived `stage` (`verification` or `scoring`):
    counts per reason, and what to do about the most common one.

    Args:
        columns: the corpus's columns and value types (`OpenedSource.sample_columns`), to name
            the flag-like ones.
        rule: the verification rule the run used.
    """
    reasons = ", ".join(f"{reason} {n}" for reason, n in stats.skipped.most_common())
    head = (
        f"no candidate survived {stage}: {stats.rows_in} rows in, "
        f"{sum(stats.skipped.values())} set aside ({reasons or 'none'})."
    )
    top = stats.skipped.most_common(1)[0][0] if stats.skipped else ""
    columns = columns or {}
    flags = [
        f"{name} ({kind})"
        for name, kind in columns.items()
        if kind == "bool" or any(hint in name.lower() for hint in FLAG_HINTS)
    ]
    if top in (
        "no_verification_flag",
        "no_flag_or_reference",
        "not_verified",
        "no_reference_answer",
        "unverifiable",
        "unverifiable_reference",
    ):
        what = (
            f"The corpus's flag-like columns: {', '.join(flags)}. "
            if flags
            else f"The corpus has no flag-like column (columns: {', '.join(columns) or 'unknown'}). "
        )
        what += (
            'Map the correctness flag in a recipe (`Columns(verified="<column>")`), or choose another '
            "rule: `--verify math` checks answers against the reference answer, `--verify trusted` keeps "
            "every answer not flagged false."
        )
        if rule:
            what = f"Verification rule: `{rule}`. " + what
    elif top in ("too_long", "no_answer_tokens", "no_question_tokens", "control_tokens_in_answer"):
        what = (
            "The student set every verified candidate aside: raise `--max-length`, or pass `--truncate` to "
            "score the first `--max-length` tokens of long answers."
        )
    else:
        what = "Every row was set aside for the reasons above: check the corpus and its column map."
    return NoUsableCandidatesError(f"{head} {what} Nothing was written.")
