"""Group a stream of candidates by question in bounded memory (an external merge sort).

Candidates are buffered up to `max_rows` rows or `max_chars` characters of text; a full buffer is
sorted by question id and spilled to a temporary file (a "run"). At the end the runs are merged
(`heapq.merge`), reading each one block by block, so at most one buffer plus one block per run is
in memory, whatever the corpus size. A corpus that fits one buffer never touches the disk.

Questions come out in natural order of their ids (`q2` before `q10`); the candidates of a question
keep their source order, which decides what counts as "first" for duplicates.
"""

from __future__ import annotations

import heapq
import itertools
import pickle
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..records import Candidate

DEFAULT_MAX_ROWS = 50_000
DEFAULT_MAX_CHARS = 64 * 1024 * 1024
BLOCK_ROWS = 512
_DIGITS = re.compile(r"(\d+)")


def natural_key(question_id: str) -> tuple:
    """`math/10` sorts after `math/9`: digit runs compare as numbers."""
    parts = _DIGITS.split(question_id)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


def _sort_key(item: tuple[tuple, str, int, Candidate]):
    return item[:3]


class QuestionGrouper:
    """Group candidates by `question_id` with memory bounded by the buffer, not the corpus."""

    def __init__(
        self, max_rows: int = DEFAULT_MAX_ROWS, max_chars: int = DEFAULT_MAX_CHARS, tmp_dir: str | Path | None = None
    ):
        self.max_rows = max_rows
        self.max_chars = max_chars
        self.tmp_dir = tmp_dir
        self.runs_spilled = 0

    def group(self, candidates: Iterable[Candidate]) -> Iterator[list[Candidate]]:
        """Yield the candidates of each question together (natural order of question ids)."""
        with tempfile.TemporaryDirectory(prefix="scas-hub-group-", dir=self.tmp_dir) as tmp:
            runs: list[Path] = []
            buffer: list[tuple[tuple, str, int, Candidate]] = []
            chars = 0
            for seq, cand in enumerate(candidates):
                buffer.append((natural_key(cand.question_id), cand.question_id, seq, cand))
                chars += len(cand.instruction) + len(cand.answer)
                if len(buffer) >= self.max_rows or chars >= self.max_chars:
                    runs.append(self._spill(buffer, Path(tmp) / f"run-{len(runs):05d}.pkl"))
                    buffer, chars = [], 0
            buffer.sort(key=_sort_key)
            if runs:
                if buffer:
                    runs.append(self._spill(buffer, Path(tmp) / f"run-{len(runs):05d}.pkl"))
                    buffer = []
                stream: Iterable = heapq.merge(*(self._read(run) for run in runs), key=_sort_key)
            else:
                stream = buffer
            for _, items in itertools.groupby(stream, key=lambda item: item[1]):
                yield [item[3] for item in items]

    def _spill(self, buffer: list, path: Path) -> Path:
        buffer.sort(key=_sort_key)
        with open(path, "wb") as f:
            for i in range(0, len(buffer), BLOCK_ROWS):
                pickle.dump(buffer[i : i + BLOCK_ROWS], f, protocol=pickle.HIGHEST_PROTOCOL)
        self.runs_spilled += 1
        return path

    @staticmethod
    def _read(path: Path) -> Iterator[tuple]:
        with open(path, "rb") as f:
            while True:
                try:
                    block = pickle.load(f)
                except EOFError:
                    return
                yield from block
