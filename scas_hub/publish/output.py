"""Safe output folders: check `--out` before any work, write beside it, then move the new files in.

`--out` may be missing, empty, or a previous output of scas-hub (it holds `selection_stats.json`).
Any other non-empty folder is refused before scoring starts, and nothing in it is touched.

A run writes its whole output into a staging folder beside `--out` (`.<name>.scas-hub-staging-*`)
and records the relative path of every file it wrote in `selection_stats.json` (`files`). Only
then is `--out` changed:

1. a missing `--out`: the staging folder is renamed into place;
2. an empty folder or a previous output: its `selection_stats.json` is first (re)written to list
   the old files *and* the new ones; the new files are moved in (same-name files are replaced);
   the old files the new output does not have are removed; last, the new README.md and
   `selection_stats.json`. (The folder itself stays: it may be the current folder of a shell.)

Files the tool did not write are never moved or removed: the old output's files are the ones its
`files` list names (older outputs without the list: the fixed names the tool writes, `TOOL_PATTERNS`).
A crash while writing leaves `--out` as it was (and a staging folder beside it); a crash during
the moves leaves `--out` with a `selection_stats.json` that lists every tool file in it, so the
next run recognises it and replaces exactly those files.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..constants import STATS_FILENAME
from ..errors import PublishError
from .figures import SCORE_DISTRIBUTION, SELECTED_SHARE
from .folder import CONFIG_DIRS, write_stats

CARD_FILENAME = "README.md"
TOOL_PATTERNS = (CARD_FILENAME, STATS_FILENAME, SELECTED_SHARE, SCORE_DISTRIBUTION,
                 *(f"{d}/train-*-of-*.parquet" for d in CONFIG_DIRS.values()))
"""Every path an output folder of scas-hub can hold; older outputs have no `files` list."""


def is_tool_path(relative: str) -> bool:
    """Whether a path (relative, posix) is one scas-hub may write in an output folder."""
    return any(fnmatch.fnmatchcase(relative, p) for p in TOOL_PATTERNS)


def _relative_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def _read_record(folder: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((folder / STATS_FILENAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "selection" in record else None


def tool_files(folder: Path) -> list[str]:
    """The files of a previous output that scas-hub wrote (its `files` list, else `TOOL_PATTERNS`)."""
    record = _read_record(folder) or {}
    listed = record.get("files")
    if isinstance(listed, list) and all(isinstance(p, str) for p in listed):
        return sorted(p for p in listed if is_tool_path(p) and (folder / p).is_file())
    return [p for p in _relative_files(folder) if is_tool_path(p)]


def check_out_folder(out: str | Path, *, what: str = "--out") -> list[str]:
    """Check that `out` may be written, before any work starts; returns the previous output's files.

    Raises:
        PublishError: `out` is a file, a non-empty folder that is not an output of scas-hub, or
            holds a file at a path the tool writes that the previous output did not write.
    """
    out = Path(out)
    if not out.exists():
        return []
    if not out.is_dir():
        raise PublishError(f"{what} {out} is a file; pass a folder (new, empty, or a previous scas-hub output)")
    if not any(out.iterdir()):
        return []
    if _read_record(out) is None:
        raise PublishError(
            f"{what} {out} is not empty and is not an output of scas-hub (it has no readable {STATS_FILENAME}); "
            "nothing in it was touched. Pass a new or empty folder, or a previous output of scas-hub to replace it."
        )
    previous = tool_files(out)
    foreign = [p for p in _relative_files(out) if is_tool_path(p) and p not in previous]
    if foreign:
        raise PublishError(
            f"{what} {out} holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}, which the previous "
            f"output's {STATS_FILENAME} does not list as its own: a new output would overwrite it. Nothing was "
            "touched; move that file away or pass another folder."
        )
    return previous


def check_apart(out: str | Path, other: str | Path, *, what: str) -> None:
    """Refuse an `out` that is, contains or lies inside the folder `other` (e.g. `--candidates`).

    Raises:
        PublishError: the two folders overlap.
    """
    a, b = Path(out).expanduser().resolve(), Path(other).expanduser().resolve()
    if a == b or a.is_relative_to(b) or b.is_relative_to(a):
        raise PublishError(f"--out {out} overlaps {what} {other}: the new output would overwrite what it reads. "
                           "Pass another --out, e.g. a folder named after the strategy.")


@contextmanager
def staged_output(out: str | Path) -> Iterator[Path]:
    """A fresh staging folder beside `out`; removed on leaving (moved into place by `replace_output`).

    Raises:
        PublishError: the folder beside `out` cannot be written.
    """
    out = Path(out).expanduser().resolve()  # `--out .`: beside the current folder, not inside it
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.scas-hub-staging-"))
    except OSError as err:
        raise PublishError(f"cannot write a staging folder beside {out} ({err}); pass an --out in a writable "
                           "folder") from err
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def replace_output(stage: Path, out: Path) -> None:
    """Move the output written in `stage` to `out` (see the module docstring for the order).

    `stage` must hold `selection_stats.json` with its `files` list; `out` must have passed
    `check_out_folder`.

    Raises:
        PublishError: `out` changed since it was checked (it is no longer safe to replace), or a
            move failed (the folder is left recognisable: the same command run again replaces it).
    """
    new_record = json.loads((stage / STATS_FILENAME).read_text(encoding="utf-8"))
    if not out.exists():
        os.replace(stage, out)
        return
    old = check_out_folder(out)
    try:
        _move_in(stage, out, old, new_record)
    except OSError as err:
        raise PublishError(f"replacing the output in {out} failed ({err}); its {STATS_FILENAME} lists every file "
                           "the tool wrote there, so running the same command again replaces them") from err


def _move_in(stage: Path, out: Path, old: list[str], new_record: dict[str, Any]) -> None:
    new = new_record["files"]
    # 1. a record that lists old and new files (an empty folder: the new record), so a crash from
    #    here on leaves a folder the next run recognises and cleans
    record = _read_record(out) or dict(new_record)
    record["files"] = sorted(set(old) | set(new))
    write_stats(out, record)
    last = (CARD_FILENAME, STATS_FILENAME)
    # 2. the new data files and figures
    for rel in new:
        if rel not in last:
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / rel, out / rel)
    # 3. old files the new output does not have (an old extra shard would be loaded with the new ones)
    for rel in sorted(set(old) - set(new)):
        (out / rel).unlink(missing_ok=True)
        parent = (out / rel).parent
        if parent != out and not any(parent.iterdir()):
            parent.rmdir()
    # 4. the card, and the record that names exactly the new files
    for rel in last:
        os.replace(stage / rel, out / rel)
