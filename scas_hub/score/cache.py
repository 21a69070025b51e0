"""Score cache and resume log: scores stored per candidate content, under a scoring key.

A score depends only on the student (id + resolved revision), its tokenizer files (by content),
the chat template it renders with (its SHA-256; an override included), the compute dtype, the
feature module, truncation, and the candidate's text with its system prompt (`candidate_digest`);
never on lambda or selection.
So `scoring_key(...)` names a folder, and each scored window is written there atomically as one
columnar shard (an Arrow IPC file: `content_digest` plus the proxy components, or the reason the
student set the candidate aside). A rerun (after a crash, a new strategy, a new version) loads the
folder's columns and scores only what is missing. Texts never enter the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import cannot_write
from ..proxy import ProxyComponents
from ..records import Candidate

if TYPE_CHECKING:
    import pyarrow as pa
from ..schema import COMPONENTS, outcome_schema

SCORER_VERSION = 2  # 2: packed engine (bf16 scores move within rounding)
"""Bump when a change to the engine or the proxy changes any score: old cache entries then miss."""

# Skip reasons that depend only on the tokenizer and the text, so they can be cached too.
CACHEABLE_SKIPS = frozenset({"control_tokens_in_answer", "no_answer_tokens", "no_question_tokens"})
SHARD_SUFFIX = ".arrow"


def _digest(payload: Any, n: int) -> str:
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()[:n]


def scoring_key(**settings: Any) -> str:
    """Folder name for one scoring setup (keyword order does not matter)."""
    return _digest(sorted(settings.items()), 20)


def shard_name(digests: list[bytes]) -> str:
    """A shard's file name from its candidates: the same window always writes the same file."""
    return "window-" + hashlib.sha256(b"".join(sorted(digests))).hexdigest()[:20]


def outcomes_table(candidates: list[Candidate], digests: list[bytes]) -> pa.Table:
    """The outcome rows of scored (or set-aside) candidates, as an Arrow table."""
    import pyarrow as pa

    columns: dict[str, list] = {"content_digest": digests}
    for name in COMPONENTS:
        columns[name] = [getattr(c.score, name) if c.score is not None else None for c in candidates]
    columns["truncated"] = [bool(c.truncated) for c in candidates]
    columns["skip"] = [None if c.score is not None else c.skip_reason for c in candidates]
    return pa.table(columns, schema=outcome_schema())


def apply_outcome(c: Candidate, outcome: dict[str, Any]) -> None:
    """Set a candidate's score (or skip reason) from one outcome row (`to_pylist` form)."""
    if outcome["skip"] is None:
        c.score = ProxyComponents(**{k: outcome[k] for k in COMPONENTS})
        c.truncated = bool(outcome["truncated"])
    else:
        c.skip_reason = outcome["skip"]


class ScoreCache:
    """A folder of columnar shards; `root=None` disables caching (loads nothing, writes nothing)."""

    def __init__(self, root: str | Path | None):
        self.root = Path(root) if root is not None else None

    def _write_error(self, err: OSError):
        return cannot_write("the score cache", self.root, err, "pass another --score-cache DIR, or --no-score-cache")

    def check_writable(self) -> None:
        """Create the folder and a file in it, so a read-only or full cache fails before any scoring.

        Raises:
            StorageError: the folder cannot be written (the message says what to do).
        """
        if self.root is None:
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".tmp-probe-"):
                pass
        except OSError as err:
            raise self._write_error(err) from err

    def load(self) -> pa.Table:
        """Every cached outcome as one Arrow table (no texts: digests and numbers); checks first that
        the folder can be written (`check_writable`)."""
        import pyarrow as pa

        self.check_writable()
        tables = []
        if self.root is not None and self.root.is_dir():
            for shard in sorted(self.root.glob(f"window-*{SHARD_SUFFIX}")):
                try:
                    with pa.OSFile(str(shard)) as f:
                        tables.append(pa.ipc.open_file(f).read_all().cast(outcome_schema()))
                except (OSError, pa.ArrowException):
                    continue  # a foreign or damaged file: its candidates are simply scored again
        return pa.concat_tables(tables) if tables else outcome_schema().empty_table()

    def write(self, name: str, outcomes: pa.Table) -> None:
        """Write one shard atomically (temp file + rename): a killed run never leaves half a shard."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if self.root is None:
            return
        keep = pc.or_(
            pc.is_null(outcomes.column("skip")), pc.is_in(outcomes.column("skip"), pa.array(sorted(CACHEABLE_SKIPS)))
        )
        cacheable = outcomes.filter(keep)
        if not cacheable.num_rows:
            return
        tmp = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=SHARD_SUFFIX)
            with os.fdopen(fd, "wb") as f:
                with pa.ipc.new_file(f, cacheable.schema) as writer:
                    writer.write_table(cacheable)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.root / f"{name}{SHARD_SUFFIX}")
        except OSError as err:  # a full disk: no half shard stays behind
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise self._write_error(err) from err
