"""Score cache and resume log: scores stored per candidate content, under a scoring key.

A score depends only on the student (id + resolved revision), its tokenizer files (by content),
the chat template it renders with (its SHA-256; an override included), the compute dtype, the
feature module, truncation, and the candidate's text with its system prompt (`candidate_digest`);
never on lambda or selection.
So `scoring_key(...)` names a folder, and each scored window is written there atomically as one
JSON shard mapping `candidate_digest` -> outcome. A rerun (after a crash, a new strategy, a new
version) loads the folder and scores only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..records import Candidate
from .proxy import ProxyComponents

SCORER_VERSION = 2  # 2: packed engine (bf16 scores move within rounding)
"""Bump when a change to the engine or the proxy changes any score: old cache entries then miss."""

# Skip reasons that depend only on the tokenizer and the text, so they can be cached too.
CACHEABLE_SKIPS = frozenset({"control_tokens_in_answer", "no_answer_tokens", "no_question_tokens"})
_COMPONENTS = [f.name for f in fields(ProxyComponents)]

Outcome = dict[str, Any]
"""`{"score": {...ProxyComponents fields}, "truncated": bool}` or `{"skip": reason}`."""


def _digest(payload: Any, n: int) -> str:
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()[:n]


def scoring_key(**settings: Any) -> str:
    """Folder name for one scoring setup (keyword order does not matter)."""
    return _digest(sorted(settings.items()), 20)


def candidate_digest(c: Candidate, truncate_to: int | None = None) -> str:
    """Content hash of what the student reads: system prompt, question, answer (and truncation)."""
    return _digest([c.system_prompt, c.instruction, c.answer, truncate_to], 32)


def shard_name(outcomes: dict[str, Outcome]) -> str:
    """A shard's file name from its candidates: the same window always writes the same file."""
    return "window-" + hashlib.sha256("".join(sorted(outcomes)).encode()).hexdigest()[:20]


def outcome_of(c: Candidate) -> Outcome | None:
    if c.score is not None:
        return {"score": c.score.to_dict(), "truncated": c.truncated}
    if c.skip_reason is not None:
        return {"skip": c.skip_reason}
    return None


def apply_outcome(c: Candidate, outcome: Outcome) -> None:
    if "score" in outcome:
        c.score = ProxyComponents(**{k: outcome["score"][k] for k in _COMPONENTS})
        c.truncated = bool(outcome.get("truncated", False))
    else:
        c.skip_reason = outcome["skip"]


class ScoreCache:
    """A folder of JSON shards; `root=None` disables caching (loads nothing, writes nothing)."""

    def __init__(self, root: str | Path | None):
        self.root = Path(root) if root is not None else None

    def load(self) -> dict[str, Outcome]:
        if self.root is None or not self.root.is_dir():
            return {}
        known: dict[str, Outcome] = {}
        for shard in sorted(self.root.glob("*.json")):
            try:
                known.update(json.loads(shard.read_text(encoding="utf-8")))
            except (OSError, json.JSONDecodeError):
                continue  # a foreign or damaged file: its candidates are simply scored again
        return known

    def write(self, name: str, outcomes: dict[str, Outcome]) -> None:
        """Write one shard atomically (temp file + rename): a killed run never leaves half a shard."""
        cacheable = {k: v for k, v in outcomes.items() if "score" in v or v.get("skip") in CACHEABLE_SKIPS}
        if self.root is None or not cacheable:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(cacheable, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.root / f"{name}.json")
