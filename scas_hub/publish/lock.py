"""One writer per output folder: a lock file beside `--out`, held for the whole run.

`curate`, `select`, `push`, `train`, `rounds`, `ablate` and `generate` take `.<name>.scas-hub.lock` beside their output
folder before they look at it, and keep it until they return. A second run on the same folder fails
at once with a one-line message naming the holder (pid, host, command, start time). The lock is an
OS lock (`filelock`, `flock` on POSIX): a killed holder's lock ends with its process, so the next
run takes it over and says whose it was. The lock file is removed when the run ends normally.

Under `accelerate launch` only the main process (RANK 0) takes the lock; the other ranks of the
same run never write the folder.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import shlex
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from ..errors import PublishError

F = TypeVar("F", bound=Callable[..., Any])
logger = logging.getLogger("scas_hub.publish")
LOCK_SUFFIX = ".scas-hub.lock"
_held: dict[str, list[int]] = {}
"""Locks this process holds: path -> [thread that took it, depth]. A nested `output_lock` on the same
folder in the same thread is a no-op; another thread of this process is refused like another process."""


def lock_path(out: str | Path) -> Path:
    """`.<name>.scas-hub.lock` beside `out` (beside it, so a missing or empty `out` stays so)."""
    out = Path(out).expanduser().resolve()
    return out.parent / f".{out.name}{LOCK_SUFFIX}"


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _holder() -> dict[str, Any]:
    argv = list(sys.argv) or ["python"]
    if argv[0].endswith(("scas-hub", "__main__.py")):
        argv[0] = "scas-hub"
    command = shlex.join(argv)
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command[:300],
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def read_holder(path: Path) -> dict[str, Any] | None:
    """What the lock file at `path` says about its (last) holder, if readable."""
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def describe_holder(holder: dict[str, Any] | None) -> str:
    """`pid 123 on host h, started ...: scas-hub curate ...` (or `another process`)."""
    if not holder:
        return "another process (it has not said which yet)"
    return f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}: {holder.get('command')}"


def _take_over(fd: int) -> None:
    """Called by filelock with the locked file: note a killed holder, then write ourselves in."""
    previous = os.pread(fd, 4096, 0)
    if previous.strip():
        try:
            before = json.loads(previous)
        except ValueError:
            before = None
        if isinstance(before, dict) and before.get("pid") != os.getpid():
            logger.warning(
                "taking over the lock of a run that ended without releasing it (%s)", describe_holder(before)
            )
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(_holder()).encode(), 0)


def _missing_parents(folder: Path) -> list[Path]:
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_if_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first; rmdir never removes a folder that holds anything
        try:
            folder.rmdir()
        except OSError:
            return


@contextmanager
def output_lock(out: str | Path, *, what: str = "--out") -> Iterator[None]:
    """Hold the lock of the output folder `out` for the `with` block.

    Folders created to hold the lock file are removed again when they are still empty at the end,
    so a run refused later (bad settings, missing source) leaves nothing behind.

    Raises:
        PublishError: another live run holds the lock, or the lock file cannot be written beside
            `out` (a read-only place).
    """
    from filelock import FileLock, Timeout

    if Path(out).expanduser().resolve().parent == Path(out).expanduser().resolve():
        raise PublishError(f"{what} {out} is the root of the file system; pass a folder")
    path = lock_path(out)
    key = str(path)
    if not _is_main_process():  # the main process of this `accelerate launch` holds it
        yield
        return
    if key in _held and _held[key][0] == threading.get_ident():
        _held[key][1] += 1
        try:
            yield
        finally:
            _held[key][1] -= 1
        return
    if key in _held:
        raise PublishError(
            f"{what} {out} is being written by another thread of this process; wait for it to end, "
            f"or pass another {what}"
        )
    created = _missing_parents(path.parent)
    lock = FileLock(path, timeout=0, on_acquired=_take_over)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout:
        _remove_if_empty(created)
        raise PublishError(
            f"{what} {out} is being written by another scas-hub run ({describe_holder(read_holder(path))}); "
            f"wait for it to end, or pass another {what}. (Lock file: {path})"
        ) from None
    except OSError as err:
        _remove_if_empty(created)
        raise PublishError(
            f"cannot write beside {what} {out} ({err.strerror or err}); pass a {what} in a folder you can write"
        ) from err
    _held[key] = [threading.get_ident(), 1]
    try:
        yield
    finally:
        del _held[key]
        try:
            path.unlink(missing_ok=True)  # while still held: a run waiting on this inode retries on a new one
        finally:
            lock.release()
            _remove_if_empty(created)


def holds_lock(out: str | Path) -> bool:
    """Whether this process holds the lock of `out` (so no other live run writes beside it)."""
    return str(lock_path(out)) in _held


def locks_output(
    out_of: Callable[[dict[str, Any]], Path], *, check: Callable[[Path], Any] | None = None, what: str = "--out"
) -> Callable[[F], F]:
    """Decorate a command so that it runs holding the lock of its output folder.

    Args:
        out_of: the output folder, from the call's arguments (by name, defaults applied).
        check: run on the folder before the lock is taken (a folder refused there is not touched,
            not even beside it), e.g. `output.check_out_folder`.
    """

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def locked(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            out = Path(out_of(bound.arguments))
            if check is not None:
                check(out)
            with output_lock(out, what=what):
                return fn(*args, **kwargs)

        return locked  # type: ignore[return-value]

    return decorate
