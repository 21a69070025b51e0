"""Files and folders written whole or not at all: built beside their place, then renamed into it.

`write_text_atomic`/`write_json_atomic` are the one atomic file writer of the package; `build_aside`
builds a whole folder (a cache entry) the same way.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def new_folder_mode(path: Path) -> None:
    """Give a folder made by `tempfile.mkdtemp` (mode 0700) the mode `mkdir` gives (0777 less the
    umask), since it is renamed into a place the user reads (an output, a cache)."""
    mask = os.umask(0o022)
    os.umask(mask)
    os.chmod(path, 0o777 & ~mask)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_asides(target: Path) -> list[Path]:
    """Remove the folders beside `target` that `build_aside` started in processes of this host that
    are gone (killed midway); folders of live processes, other hosts and other names stay."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.tmp-(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-[a-z0-9_]{{8}}")
    removed = []
    for path in target.parent.glob(f".{glob.escape(target.name)}.tmp-*"):
        match = pattern.fullmatch(path.name)
        if (
            match
            and match["host"] == _host()
            and not _alive(int(match["pid"]))
            and path.is_dir()
            and not path.is_symlink()
        ):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def aside_folder(target: Path) -> Path:
    """A new empty folder beside `target`, `.<name>.tmp-<host>-<pid>-XXXXXXXX`, to be renamed to
    `target` when complete; the ones processes killed midway left are removed first."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_asides(target)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-{_host()}-{os.getpid()}-"))
    new_folder_mode(tmp)
    return tmp


@contextmanager
def build_aside(target: Path, marker: str) -> Iterator[Path]:
    """Yield a fresh folder beside `target` to write into; on success it is renamed to `target`.

    A process killed midway leaves no half-written `target`; the folder it left is removed by the
    next `build_aside` of the same target (it names its host and pid). If another process
    completed `target` meanwhile (its `marker` file exists), that one is kept and this one is dropped.
    """
    tmp = aside_folder(target)
    try:
        yield tmp
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / marker).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text_atomic(path: str | Path, text: str, *, tmp: Path | None = None) -> Path:
    """Write `text` to a temporary file beside `path` (`.<name>.tmp`, or `tmp`), fsync it and rename
    it over `path`: readers, and a run killed midway, see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp if tmp is not None else path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(
    path: str | Path, data: Any, *, sort_keys: bool = False, ensure_ascii: bool = True, tmp: Path | None = None
) -> Path:
    """`write_text_atomic` of `data` as indented JSON (2 spaces) and a final newline."""
    text = json.dumps(data, indent=2, sort_keys=sort_keys, ensure_ascii=ensure_ascii) + "\n"
    return write_text_atomic(path, text, tmp=tmp)
