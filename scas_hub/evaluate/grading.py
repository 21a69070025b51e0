"""Grading a generated answer against the reference with math-verify, configured as lighteval does.

- The prediction is parsed with `ExprExtractionConfig()` and `LatexExtractionConfig(boxed_match_priority=0)`:
  a `\\boxed{}` answer wins over any other candidate in the text (math-verify's default priority
  lets "the final answer is 7" after `\\boxed{5}` decide).
- An answer cut at the token limit has no end, so only an explicit final answer counts: a `\\boxed{}`
  or an anchored "the (final) answer is ..." (`try_extract_without_anchor=False`). An expression
  picked out of running text, such as the question restated ("To calculate -5 * -6, ...") or the last
  intermediate number, is never graded.
"""

from __future__ import annotations

# the reference is parsed as `verify` parses it (the same cache); `_timeout` is math-verify's
# signal-based timeout, off outside the main thread
from ..verify.math_answers import _parse_reference, _timeout

OUTCOMES = ("correct", "not_verified", "unverifiable", "cut_without_final_answer", "unverifiable_reference")
"""`correct`; `not_verified` (a final answer that differs); `unverifiable` (no answer could be extracted);
`cut_without_final_answer` (cut at the token limit before an explicit final answer);
`unverifiable_reference` (the reference does not parse)."""


def _finished_config():
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    return [ExprExtractionConfig(), LatexExtractionConfig(boxed_match_priority=0)]


def _cut_config():
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    return [
        ExprExtractionConfig(try_extract_without_anchor=False),
        LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=False),
    ]


def grade(generated: str, reference_answer: str, *, finished: bool | None = True) -> tuple[bool, str]:
    """math-verify `generated` against the reference: `(correct, outcome)` (see `OUTCOMES`).

    Args:
        finished: False for an answer cut at the token limit: only an explicit final answer
            (`\\boxed{}`, "the answer is ...") is graded. None (unknown) counts as finished.
    """
    from math_verify import parse, verify

    gold = _parse_reference(reference_answer)
    if not gold:
        return False, "unverifiable_reference"
    cut = finished is False
    predicted = parse(generated, _cut_config() if cut else _finished_config(), parsing_timeout=_timeout())
    if not predicted:
        return False, "cut_without_final_answer" if cut else "unverifiable"
    correct = verify(gold, predicted, timeout_seconds=_timeout())
    return correct, "correct" if correct else "not_verified"
