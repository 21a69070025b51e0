"""Cache folders written whole or not at all: built beside their place, then renamed into it."""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
        if match and match["host"] == _host() and not _alive(int(match["pid"])) \
                and path.is_dir() and not path.is_symlink():
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
