"""Per-teacher JSON-lines files in the published pool's layout, appended one fsynced row at a time.

`data/<source>/<teacher>.jsonl`: a `kill -9` loses at most the requests in flight. A file is
reopened by reading the rows already there (their `(id, sample)` are done); a last line cut off
mid-write is dropped before appending. `finalize` rewrites a finished file in question and
sample order (written aside, then renamed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from ..atomic import write_text_atomic


def folder_name(source_dataset: str) -> str:
    """A subset folder name for a source dataset (`/` would nest folders)."""
    return source_dataset.replace("/", "--").replace("\\", "--") or "default"


class TeacherFile:
    """One teacher's answers to one source dataset's questions."""

    def __init__(self, path: Path):
        self.path = path
        self.done: set[tuple[str, int]] = set()
        if path.exists():
            self._repair()
            for row in read_rows(path):
                self.done.add((str(row["id"]), int(row.get("sample", 0))))
        self._handle: TextIO | None = None

    def _repair(self) -> None:
        """Drop a last line cut off by a kill mid-write (the file is this tool's own)."""
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as f:
                f.truncate(keep)
                f.flush()
                os.fsync(f.fileno())

    def append(self, row: dict[str, Any]) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run
        self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.done.add((str(row["id"]), int(row["sample"])))

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def finalize(self, order: dict[str, int]) -> None:
        """Rewrite the file in question order (`order`: id -> position), then sample order."""
        self.close()
        if not self.path.exists():
            return
        rows = list(read_rows(self.path))
        rows.sort(key=lambda r: (order.get(str(r["id"]), len(order)), int(r.get("sample", 0))))
        write_text_atomic(self.path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_rows(path: Path) -> Iterable[dict[str, Any]]:
    """The complete rows of a teacher file (a torn last line is skipped)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            if line.strip():
                yield json.loads(line)
