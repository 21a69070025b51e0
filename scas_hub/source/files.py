"""Find a corpus's data files and read their rows in bounded chunks.

Formats: JSON lines (`.jsonl`, `.jsonl.gz`, and `.json` holding lines), JSON arrays (`.json`,
parsed incrementally by `ijson`), and parquet (read batch by batch, only the columns the recipe
needs). Memory does not grow with the file: at most one parquet batch, one line or one array
element is held. A broken JSON line stops the run with the file and line number, a broken array
element with the file and row.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ..errors import CorpusFormatError, SourceError

DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".parquet")
PARQUET_BATCH_ROWS = 1024
JSON_BUFFER = 1 << 16
"""Bytes `ijson` reads at a time from a JSON array file."""


NOT_DATA = ("dataset_info.json", "dataset_infos.json", "dataset_dict.json", "state.json")
"""Metadata files that `datasets` and the Hub keep next to data files."""


def is_data_file(path: Path) -> bool:
    return path.is_file() and path.name.endswith(DATA_SUFFIXES) and path.name not in NOT_DATA


def _data_files(folder: Path, recursive: bool = False) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if is_data_file(p))


def find_pool_files(root: Path, subsets: tuple[str, ...] = ()) -> list[tuple[str | None, Path]]:
    """`(subset, file)` pairs in the published pool's layout: `data/<subset>/*`, `<subset>/*` or `*`.

    Raises:
        SourceError: no data files, or none for a requested subset (the message lists those present).
    """
    if root.is_file():
        return [(None, root)]
    for base in (root / "data", root):
        if subsets:
            pairs = [(s, f) for s in subsets for f in _data_files(base / s)]
            missing = [s for s in subsets if not (base / s).is_dir()]
            if pairs and not missing:
                return pairs
        else:
            nested = [f for sub in sorted(p for p in base.glob("*") if p.is_dir()) for f in _data_files(sub)]
            if nested:
                return [(f.parent.name, f) for f in nested]
    flat = _data_files(root)
    if flat and not subsets:
        return [(None, f) for f in flat]
    available = sorted({p.parent.name for p in _data_files(root, recursive=True)})
    if subsets:
        raise SourceError(
            f"no data files for subset(s) {', '.join(subsets)} under {root}; available: {available or 'none'}"
        )
    raise SourceError(f"no data files ({', '.join(DATA_SUFFIXES)}) under {root}")


def find_pattern_files(root: Path, subsets: tuple[str, ...], patterns_of) -> list[tuple[str, Path]]:
    """`(subset, file)` pairs for glob patterns relative to `root` (`patterns_of(subset)`).

    Raises:
        SourceError: a subset matches no data file (the message lists the files present).
    """
    out: list[tuple[str, Path]] = []
    for subset in subsets:
        found = sorted({p for pat in patterns_of(subset) for p in root.glob(pat) if is_data_file(p)})
        if not found:
            present = [str(p.relative_to(root)) for p in _data_files(root, recursive=True)][:20]
            raise SourceError(
                f"subset {subset!r}: no data files match {list(patterns_of(subset))} under {root}; "
                f"files present: {present or 'none'}"
            )
        out.extend((subset, p) for p in found)
    return out


# ---- readers --------------------------------------------------------------------------------------


def iter_rows(path: Path, columns: list[str] | None = None,
              part: tuple[int, int] | None = None) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Yield `(row, location)` for every row of a data file; location is `{"file", "line"|"row"}`.

    Args:
        columns: top-level columns to read (parquet only; JSON rows are read whole).
        part: `(first, last)`: only lines `first..last-1` (0-based) of a JSON lines file, or rows
            of a parquet file (see `row_parts`); other files are read whole.

    Raises:
        CorpusFormatError: a broken JSON line or value (names file and line), a row that is not an
            object, or an unreadable parquet file.
        SourceError: the file cannot be opened.
    """
    try:
        if path.name.endswith(".parquet"):
            yield from _parquet_rows(path, columns, part)
        else:
            with _open_text(path) as f:
                array = _peek_non_space(f) == "["
                if not array:
                    yield from _json_lines_rows(path, f, part)
            if array:
                yield from _json_array_rows(path)
    except OSError as err:
        raise SourceError(f"cannot read {path}: {err}") from err


def _open_text(path: Path) -> IO[str]:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _peek_non_space(f: IO[str]) -> str:
    """The first non-whitespace character (the stream is rewound to the start)."""
    while True:
        ch = f.read(1)
        if not ch or not ch.isspace():
            f.seek(0)
            return ch


def _check_object(path: Path, where: str, row: Any) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise CorpusFormatError(f"{path}:{where}: expected a JSON object per row, got {type(row).__name__}")
    return row


def _json_lines_rows(path: Path, f: IO[str], part: tuple[int, int] | None = None):
    first, last = part or (0, None)
    for lineno, line in enumerate(f, start=1):
        if lineno <= first:
            continue
        if last is not None and lineno > last:
            return
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise CorpusFormatError(
                f"{path}:{lineno}: broken JSON line ({err.msg} at column {err.colno}); fix or remove that line"
            ) from err
        yield _check_object(path, str(lineno), row), {"file": path.name, "line": lineno}


def _json_array_rows(path: Path):
    """The elements of a top-level `[{...}, {...}]`, one at a time."""
    import ijson

    opener = gzip.open if path.name.endswith(".gz") else open
    index = 0
    with opener(path, "rb") as f:
        try:
            for row in ijson.items(f, "item", use_float=True, buf_size=JSON_BUFFER):
                index += 1
                yield _check_object(path, f" row {index}", row), {"file": path.name, "row": index}
        except ijson.JSONError as err:
            detail = " ".join(str(err).split())  # ijson's message points at the spot across lines
            raise CorpusFormatError(f"{path}: row {index + 1}: broken JSON value in array ({detail}); fix that row, "
                                    "or close the array with ']' if the file was cut short") from err


def _parquet_rows(path: Path, columns: list[str] | None, part: tuple[int, int] | None = None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, pa.ArrowException) as err:
        raise CorpusFormatError(f"{path}: not a readable parquet file ({err})") from err
    present = set(pf.schema_arrow.names)
    wanted = [c for c in columns if c in present] if columns is not None else None
    first, last = part or (0, pf.metadata.num_rows)
    index = 0
    for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=wanted):
        if index + batch.num_rows <= first:
            index += batch.num_rows
            continue
        for row in batch.to_pylist():
            index += 1
            if index > last:
                return
            if index > first:
                yield row, {"file": path.name, "row": index}


def row_parts(path: Path, rows_per_part: int) -> list[tuple[int, int] | None]:
    """Split a data file into parts of about `rows_per_part` rows, for reading on several cores:
    line ranges of an uncompressed JSON lines file, row ranges of a parquet file; `[None]` (the
    whole file) for anything else or a small file."""
    if path.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            total = pq.ParquetFile(path).metadata.num_rows
        except Exception:  # an unreadable file: the reader reports it with its name
            return [None]
    elif path.name.endswith(".jsonl") or path.name.endswith(".json"):
        with open(path, "rb") as f:
            if path.name.endswith(".json") and f.read(64).lstrip().startswith(b"["):
                return [None]
            f.seek(0)
            total = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b"")) + 1
    else:
        return [None]
    if total <= rows_per_part:
        return [None]
    return [(start, min(start + rows_per_part, total)) for start in range(0, total, rows_per_part)]
