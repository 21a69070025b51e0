"""Compare a math answer with the reference using `math-verify` (offline, sympy-based).

`check(answer, reference)` returns `None` when the answer matches, else the reason it is excluded:
`not_verified` (parsed, but not equal), `unverifiable` (no final answer could be extracted from
it) or `unverifiable_reference` (the reference itself does not parse).
"""

from __future__ import annotations

import threading
from functools import lru_cache

PARSE_TIMEOUT_S = 5


def _timeout() -> int | None:
    # math-verify's timeouts use signal.alarm, which only works in the main thread
    return PARSE_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


@lru_cache(maxsize=4096)
def _parse_reference(reference: str):
    from math_verify import parse

    text = reference.strip()
    if "$" not in text and "\\boxed" not in text:
        text = f"${text}$"  # a bare reference such as `\frac{1}{2}` is LaTeX
    return parse(text, parsing_timeout=_timeout())


def check(answer: str, reference: str) -> str | None:
    """`None` if `answer`'s final answer equals `reference`, else the reason it is excluded."""
    from math_verify import parse, verify

    gold = _parse_reference(reference)
    if not gold:
        return "unverifiable_reference"
    predicted = parse(answer, parsing_timeout=_timeout())
    if not predicted:
        return "unverifiable"
    return None if verify(gold, predicted, timeout_seconds=_timeout()) else "not_verified"
