"""Cache folders written whole or not at all: built beside their place, then renamed into it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def build_aside(target: Path, marker: str) -> Iterator[Path]:
    """Yield a fresh folder beside `target` to write into; on success it is renamed to `target`.

    A process killed midway leaves no half-written `target`. If another process completed `target`
    meanwhile (its `marker` file exists), that one is kept and this one is dropped.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        yield tmp
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / marker).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
