"""The Arrow table schemas and column lists, and the content digest of a candidate (no torch).

A scored window (`window_schema`) holds a candidate's identity and texts, `scored`, and the proxy
components (`COMPONENTS`); the score cache stores one outcome row per candidate content
(`outcome_schema`), keyed by `candidate_digest`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from typing import TYPE_CHECKING

from .proxy import ProxyComponents

if TYPE_CHECKING:
    import pyarrow as pa

    from .records import Candidate

COMPONENTS = [f.name for f in fields(ProxyComponents)]
INTEGER_COMPONENTS = frozenset({"n_answer_tokens", "n_question_tokens"})

WINDOW_ROWS = 4096
TEXT_COLUMNS = ("question_id", "teacher", "source_dataset", "system", "instruction", "answer", "reference_answer")
WINDOW_COLUMNS = (*TEXT_COLUMNS, "sample", "scored", *COMPONENTS)
"""A window: the candidate's identity and texts, `scored`, and the proxy components (null when not scored)."""


def outcome_schema() -> pa.Schema:
    """One row per scored candidate: its content digest, the components (null when set aside),
    whether it was truncated, and the reason the student set it aside (null when scored)."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("content_digest", pa.binary(16)),
            *(pa.field(n, pa.int64() if n in INTEGER_COMPONENTS else pa.float64()) for n in COMPONENTS),
            pa.field("truncated", pa.bool_()),
            pa.field("skip", pa.string()),
        ]
    )


def window_schema() -> pa.Schema:
    """The Arrow schema of a window (`WINDOW_COLUMNS`)."""
    import pyarrow as pa

    components = [outcome_schema().field(name) for name in COMPONENTS]
    return pa.schema(
        [
            *(pa.field(n, pa.string()) for n in TEXT_COLUMNS),
            pa.field("sample", pa.int64()),
            pa.field("scored", pa.bool_()),
            *components,
        ]
    )


def content_digest(system_prompt: str, instruction: str, answer: str) -> bytes:
    """16-byte hash of what the student reads: system prompt, question, answer (truncation is part
    of the scoring key)."""
    payload = json.dumps([system_prompt, instruction, answer], ensure_ascii=False).encode()
    return hashlib.sha256(payload).digest()[:16]


def candidate_digest(c: Candidate) -> bytes:
    """`content_digest` of a candidate (its system prompt, instruction and answer)."""
    return content_digest(c.system_prompt, c.instruction, c.answer)
