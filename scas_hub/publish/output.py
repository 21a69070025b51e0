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
`files` list names (older outputs without the list: the tool paths present). Either way a path
counts only if it matches the exact grammar of tool paths (`TOOL_PATH`: no `..`, no absolute path)
and lies inside `--out` without passing a symbolic link; a link where the tool writes is refused.
A crash while writing leaves `--out` as it was (and a staging folder beside it, removed by the next
run on `--out`, which holds its lock: see `publish.lock`); a crash during the moves leaves `--out`
with a `selection_stats.json` that lists every tool file in it, so the next run recognises it and
replaces exactly those files.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..atomic import new_folder_mode
from ..constants import STATS_FILENAME
from ..errors import PublishError
from .figures import FIGURES_DIR, ROUNDS, SCORE_DISTRIBUTION, SELECTED_SHARE
from .folder import CONFIG_DIRS, write_stats
from .lock import holds_lock

CARD_FILENAME = "README.md"
TOOL_DIRS = (*CONFIG_DIRS.values(), FIGURES_DIR)
"""The folders of an output that hold tool files; the tool creates them and removes them when empty."""
_SHARD = r"train-[0-9]{5,}-of-[0-9]{5,}\.parquet"
TOOL_PATH = re.compile(
    "|".join(
        [
            *(re.escape(p) for p in (CARD_FILENAME, STATS_FILENAME, SELECTED_SHARE, SCORE_DISTRIBUTION, ROUNDS)),
            *(rf"{re.escape(d)}/{_SHARD}" for d in CONFIG_DIRS.values()),
        ]
    )
)
"""The exact grammar of tool paths: fixed names and `<config dir>/train-NNNNN-of-NNNNN.parquet`; no
`..`, no absolute path, no wildcard that crosses `/`."""
STAGING_INFIX = ".scas-hub-staging-"
STATS_TMP = f".{STATS_FILENAME}.tmp"
"""Written in `--out` (then renamed over `selection_stats.json`) by `folder.write_stats`."""
_STAGING_TEMP = re.compile(
    "|".join([re.escape(STATS_TMP), *(rf"{re.escape(d)}/\.train-[0-9]{{5,}}\.parquet" for d in CONFIG_DIRS.values())])
)
"""Files a staging folder holds while it is written (besides tool paths)."""


def is_tool_path(relative: str) -> bool:
    """Whether a path (relative, posix) is one scas-hub writes in an output folder (`TOOL_PATH`)."""
    return isinstance(relative, str) and TOOL_PATH.fullmatch(relative) is not None


def _walk(folder: Path) -> tuple[list[str], list[str]]:
    """The regular files under `folder` and the symbolic links (relative, posix); links are not followed."""
    files, links = [], []
    for root, dirs, names in os.walk(folder):
        here = Path(root).relative_to(folder)
        for name in [*dirs, *names]:
            rel = (here / name).as_posix()
            if os.path.islink(os.path.join(root, name)):
                links.append(rel)
            elif name in names and os.path.isfile(os.path.join(root, name)):
                files.append(rel)
    return sorted(files), sorted(links)


def _relative_files(folder: Path) -> list[str]:
    return _walk(folder)[0]


def _contained(folder: Path, relative: str) -> bool:
    """`folder/relative` is a regular file reached without a link, inside `folder`."""
    path = folder / relative
    return path.resolve() == folder.resolve() / relative and path.is_file() and not path.is_symlink()


def _read_record(folder: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((folder / STATS_FILENAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "selection" in record else None


def tool_files(folder: Path) -> list[str]:
    """The files of a previous output that scas-hub wrote (its `files` list, else the tool paths
    present), keeping only tool paths that lie inside `folder` without passing a link."""
    record = _read_record(folder) or {}
    listed = record.get("files")
    if isinstance(listed, list) and all(isinstance(p, str) for p in listed):
        return sorted({p for p in listed if is_tool_path(p) and _contained(folder, p)})
    return [p for p in _relative_files(folder) if is_tool_path(p) and _contained(folder, p)]


def present_tool_files(folder: Path) -> list[str]:
    """The regular files in `folder` at tool paths, reached without a link (what a push uploads)."""
    return [p for p in _relative_files(Path(folder)) if is_tool_path(p) and _contained(Path(folder), p)]


def _on_tool_path(relative: str) -> bool:
    return is_tool_path(relative) or relative.split("/")[0] in TOOL_DIRS


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(out: str | Path, *, what: str = "--out") -> None:
    """Refuse an `out` that cannot be written: itself read-only, or its parent (where the staging
    folder and the lock go).

    Raises:
        PublishError: a folder that would be written is read-only.
    """
    out = Path(out).expanduser()
    places = [out] if out.is_dir() else []
    places.append(_nearest_existing(out.resolve().parent))
    for place in places:
        if not os.access(place, os.W_OK | os.X_OK):
            raise PublishError(
                f"{what} {out} cannot be written: {place} is read-only for this user. Nothing was "
                f"done; pass a {what} in a folder you can write"
            )


def check_out_folder(out: str | Path, *, what: str = "--out") -> list[str]:
    """Check that `out` may be written, before any work starts; returns the previous output's files.

    Raises:
        PublishError: `out` is a file, a non-empty folder that is not an output of scas-hub, holds a
            file at a path the tool writes that the previous output did not write, or a symbolic
            link where the tool writes; or `out` (or its parent) is read-only.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PublishError(f"{what} {out} is a file; pass a folder (new, empty, or a previous scas-hub output)")
    check_writable(out, what=what)
    if not out.exists() or not any(out.iterdir()):
        return []
    if _read_record(out) is None:
        raise PublishError(
            f"{what} {out} is not empty and is not an output of scas-hub (it has no readable {STATS_FILENAME}); "
            "nothing in it was touched. Pass a new or empty folder, or a previous output of scas-hub to replace it."
        )
    files, links = _walk(out)
    links = [p for p in links if _on_tool_path(p)]
    if links:
        raise PublishError(
            f"{what} {out} holds a symbolic link at {links[0]}, where the tool writes: a new output would write or "
            "delete through it, outside the folder. Nothing was touched; replace the link by a folder or pass "
            "another folder."
        )
    previous = tool_files(out)
    foreign = [p for p in files if is_tool_path(p) and p not in previous]
    if foreign:
        raise PublishError(
            f"{what} {out} holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}, which the previous "
            f"output's {STATS_FILENAME} does not list as its own: a new output would overwrite it. Nothing was "
            "touched; move that file away or pass another folder."
        )
    return previous


ROUNDS_SUMMARY = "rounds.json"
_ROUNDS_ENTRY = re.compile(
    r"round-[0-9]+|checkpoints|rounds\.json(?:\.tmp)?|\.round-[0-9]+(?:\.scas-hub\.lock|"
    r"\.scas-hub-staging-[a-z0-9_]{8})"
)
"""What a `rounds` folder holds: round datasets, checkpoints, the summary (and, while a round is
written, its lock and staging folder)."""


def _is_rounds_summary(path: Path) -> bool:
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    rounds = summary.get("rounds") if isinstance(summary, dict) else None
    return isinstance(rounds, list) and all(
        isinstance(r, dict) and {"round", "dataset", "training"} <= r.keys() for r in rounds
    )


def check_rounds_folder(out: str | Path, *, what: str = "--out") -> None:
    """Check a `rounds` folder before any work: missing, empty, or one `scas-hub rounds` wrote.

    Raises:
        PublishError: `out` is a file, read-only, or holds anything the loop does not write (a
            user's file, a `rounds.json` that is not the loop's summary, a symbolic link).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PublishError(f"{what} {out} is a file; pass a folder (new, empty, or the --out of an earlier rounds run)")
    check_writable(out, what=what)
    if not out.exists():
        return
    foreign = []
    for entry in sorted(out.iterdir(), key=lambda p: p.name):
        kind_ok = entry.is_file() if entry.name.endswith((".json", ".tmp", ".lock")) else entry.is_dir()
        if (
            entry.is_symlink()
            or not _ROUNDS_ENTRY.fullmatch(entry.name)
            or not kind_ok
            or (entry.name == ROUNDS_SUMMARY and not _is_rounds_summary(entry))
        ):
            foreign.append(entry.name)
    if foreign:
        raise PublishError(
            f"{what} {out} is not a folder of `scas-hub rounds`: it holds {', '.join(foreign[:3])}"
            f"{' ...' if len(foreign) > 3 else ''}, which the loop did not write; nothing in it was touched. "
            "Pass a new or empty folder, or the --out of an earlier rounds run to continue it."
        )


def check_apart(out: str | Path, other: str | Path, *, what: str) -> None:
    """Refuse an `out` that is, contains or lies inside the folder `other` (e.g. `--candidates`).

    Raises:
        PublishError: the two folders overlap.
    """
    a, b = Path(out).expanduser().resolve(), Path(other).expanduser().resolve()
    if a == b or a.is_relative_to(b) or b.is_relative_to(a):
        raise PublishError(
            f"--out {out} overlaps {what} {other}: the new output would overwrite what it reads. "
            "Pass another --out, e.g. a folder named after the strategy."
        )


def _is_tool_staging(folder: Path) -> bool:
    """A staging folder holding only what the tool writes there (so removing it loses nothing of the user's)."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    files, links = _walk(folder)
    if links:
        return False
    dirs = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_dir()}
    return dirs <= set(TOOL_DIRS) and all(is_tool_path(p) or _STAGING_TEMP.fullmatch(p) for p in files)


def remove_leftovers(out: str | Path) -> list[Path]:
    """Remove what a killed run on `out` left: staging folders beside it and the half-written
    `selection_stats.json` in it. Only while this process holds `out`'s lock (no live run can be
    using them), and only folders that hold nothing but tool files; returns what was removed."""
    out = Path(out).expanduser().resolve()
    if not holds_lock(out) or not out.parent.is_dir():
        return []
    removed = []
    for stage in out.parent.glob(f".{glob.escape(out.name)}{STAGING_INFIX}*"):
        if re.fullmatch(
            rf"\.{re.escape(out.name)}{re.escape(STAGING_INFIX)}[a-z0-9_]{{8}}", stage.name
        ) and _is_tool_staging(stage):
            shutil.rmtree(stage)
            removed.append(stage)
    tmp = out / STATS_TMP
    if tmp.is_file() and not tmp.is_symlink():
        tmp.unlink()
        removed.append(tmp)
    return removed


@contextmanager
def staged_output(out: str | Path) -> Iterator[Path]:
    """A fresh staging folder beside `out`; removed on leaving (moved into place by `replace_output`).
    Leftovers of killed runs on `out` are removed first (see `remove_leftovers`).

    Raises:
        PublishError: the folder beside `out` cannot be written.
    """
    out = Path(out).expanduser().resolve()  # `--out .`: beside the current folder, not inside it
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(out)
        stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}{STAGING_INFIX}"))
        new_folder_mode(stage)
    except OSError as err:
        raise PublishError(
            f"cannot write a staging folder beside {out} ({err}); pass an --out in a writable folder"
        ) from err
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
        raise PublishError(
            f"replacing the output in {out} failed ({err}); its {STATS_FILENAME} lists every file "
            "the tool wrote there, so running the same command again replaces them"
        ) from err


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
        if not (is_tool_path(rel) and _contained(out, rel)):  # checked in `check_out_folder`; never outside
            continue
        (out / rel).unlink()
        parent = (out / rel).parent
        if parent.parent == out and parent.name in TOOL_DIRS and not parent.is_symlink() and not any(parent.iterdir()):
            parent.rmdir()
    # 4. the card, and the record that names exactly the new files
    for rel in last:
        os.replace(stage / rel, out / rel)
