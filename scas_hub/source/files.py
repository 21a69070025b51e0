"""Find a corpus's data files and read their rows in bounded chunks.

Formats: JSON lines (`.jsonl`, `.jsonl.gz`, and `.json` holding lines), JSON arrays (`.json`,
parsed incrementally by `ijson`), and parquet (read batch by batch, only the columns the recipe
needs). Memory does not grow with the file: at most one parquet batch, one line or one array
element is held, and a row larger than `MAX_ROW_BYTES` or nested deeper than `MAX_NESTING` stops
the run with its file and line (or array row) before it is held whole. A broken JSON line, a line
that is not UTF-8 or a gzip stream cut short stops the run the same way.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import CorpusFormatError, SourceError

DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".parquet")
PARQUET_BATCH_ROWS = 1024
JSON_BUFFER = 1 << 16
"""Bytes `ijson` reads at a time from a JSON array file."""
MAX_ROW_BYTES = 16 << 20
"""Largest row read from a JSON file (one line, or one element of an array): 16 MiB, far above the
largest rows of reasoning corpora (a few MB for several long generations). A larger row stops the
run with its file and line; only this much of it is ever read into memory."""
MAX_NESTING = 64
"""Deepest nesting of lists and objects within a JSON row (chat rows need fewer than ten levels).
A deeper row stops the run with its file and line."""


TOP_LEVEL = "."
"""`--subset .`: the data files at the top of a folder whose subfolders hold data files too."""

NOT_DATA = (
    "dataset_info.json",
    "dataset_infos.json",
    "dataset_dict.json",
    "state.json",
    "generate.json",
    "routing.json",
)
"""Metadata files that `datasets` and the Hub keep next to data files, and the run records that
`scas-hub generate` writes at the top of the corpus it builds."""


def is_data_file(path: Path) -> bool:
    return path.is_file() and path.name.endswith(DATA_SUFFIXES) and path.name not in NOT_DATA


def _data_files(folder: Path, recursive: bool = False) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if is_data_file(p))


def find_pool_files(root: Path, subsets: tuple[str, ...] = ()) -> list[tuple[str | None, Path]]:
    """`(subset, file)` pairs in the published pool's layout: `data/<subset>/*`, `<subset>/*` or `*`.

    A folder with data files both at its top and in subfolders is ambiguous: it is read only with
    `subsets` (a subfolder's name, or `TOP_LEVEL` for the top-level files).

    Raises:
        SourceError: no data files, none for a requested subset (the message lists those present),
            or an ambiguous folder without `subsets` (the message lists the choices).
    """
    if root.is_file():
        return [(None, root)]
    top = _data_files(root)
    if subsets:
        pairs: list[tuple[str | None, Path]] = [(None, f) for f in top] if TOP_LEVEL in subsets else []
        named = tuple(s for s in subsets if s != TOP_LEVEL)
        if TOP_LEVEL in subsets and not top:
            raise SourceError(
                f"--subset {TOP_LEVEL} asks for the data files at the top of {root}, but it has none; "
                f"subsets: {', '.join(_subfolder_subsets(root)) or 'none'}"
            )
        if not named:
            return pairs
        for base in (root / "data", root):
            found = [(s, f) for s in named for f in _data_files(base / s)]
            missing = [s for s in named if not (base / s).is_dir()]
            if found and not missing:
                return pairs + found
        available = _subfolder_subsets(root)
        raise SourceError(
            f"no data files for subset(s) {', '.join(named)} under {root}; available: {available or 'none'}"
            + (f" (and --subset {TOP_LEVEL} for the files at its top)" if top else "")
        )
    for base in (root / "data", root):
        nested = [f for sub in sorted(p for p in base.glob("*") if p.is_dir()) for f in _data_files(sub)]
        if nested and top:
            choices = sorted({f.parent.name for f in nested})
            shown = ", ".join(f.name for f in top[:3]) + (", ..." if len(top) > 3 else "")
            raise SourceError(
                f"{root} holds data files both at its top ({shown}) and in subfolders ({', '.join(choices)}), "
                f"so either could be the corpus; pick one with --subset {choices[0]} (subsets: {', '.join(choices)}; "
                f"a,b for several) or --subset {TOP_LEVEL} for the files at its top"
            )
        if nested:
            return [(f.parent.name, f) for f in nested]
    if top:
        return [(None, f) for f in top]
    raise SourceError(f"no data files ({', '.join(DATA_SUFFIXES)}) under {root}")


def _subfolder_subsets(root: Path) -> list[str]:
    """Names of the folders (below `root`) that hold data files."""
    return sorted({p.parent.name for p in _data_files(root, recursive=True) if p.parent != root})


def find_pattern_files(
    root: Path, subsets: tuple[str, ...], patterns_of: Callable[[str], Iterable[str]]
) -> list[tuple[str, Path]]:
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


def iter_rows(
    path: Path, columns: list[str] | None = None, part: tuple[int, int] | None = None
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Yield `(row, location)` for every row of a data file; location is `{"file", "line"|"row"}`.

    Args:
        columns: top-level columns to read (parquet only; JSON rows are read whole).
        part: `(first, last)`: only lines `first..last-1` (0-based) of a JSON lines file, or rows
            of a parquet file (see `row_parts`); other files are read whole.

    Raises:
        CorpusFormatError: a broken JSON line or value, a line that is not UTF-8, a row over
            `MAX_ROW_BYTES` or nested deeper than `MAX_NESTING` (each names file and line), a row
            that is not an object, a gzip stream cut short, or an unreadable parquet file.
        SourceError: the file cannot be opened.
    """
    try:
        if path.name.endswith(".parquet"):
            yield from _parquet_rows(path, columns, part)
        else:
            with _open_binary(path) as f:
                array = _starts_array(f)
                if not array:
                    yield from _json_lines_rows(path, f, part)
            if array:
                yield from _json_array_rows(path)
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise CorpusFormatError(
            f"{path}: the gzip stream is cut short or damaged ({err}); download or compress the file again"
        ) from err
    except OSError as err:
        raise SourceError(f"cannot read {path}: {err}") from err


def _open_binary(path: Path) -> io.BufferedIOBase:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def _starts_array(f: io.BufferedIOBase) -> bool:
    """Whether the first character after a UTF-8 byte order mark and whitespace is `[` (the
    stream is rewound to the start)."""
    head = f.read(4096).removeprefix(codecs.BOM_UTF8)
    while head and head.isspace():
        head = f.read(4096)
    f.seek(0)
    return head.lstrip()[:1] == b"["


def _check_object(path: Path, where: str, row: Any) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise CorpusFormatError(f"{path}:{where}: expected a JSON object per row, got {type(row).__name__}")
    return row


def _too_large(where: str) -> CorpusFormatError:
    return CorpusFormatError(
        f"{where}: the row is larger than {MAX_ROW_BYTES >> 20} MiB (scas-hub's limit, "
        "MAX_ROW_BYTES); split or remove that row"
    )


def _too_deep(where: str) -> CorpusFormatError:
    return CorpusFormatError(
        f"{where}: the row is nested deeper than {MAX_NESTING} levels of lists and objects "
        "(scas-hub's limit, MAX_NESTING); fix or remove that row"
    )


def _lines(f: io.BufferedIOBase) -> Iterator[tuple[int, bytes | None]]:
    """`(line number, line)` of a binary stream, holding at most `MAX_ROW_BYTES` of a line; a longer
    line comes as `None` (and is skipped in bounded reads if the caller goes on)."""
    lineno = 0
    while line := f.readline(MAX_ROW_BYTES + 1):
        lineno += 1
        if len(line) <= MAX_ROW_BYTES:
            yield lineno, line
            continue
        yield lineno, None
        while line and not line.endswith(b"\n"):
            line = f.readline(JSON_BUFFER)


def _nesting(value: Any) -> int:
    """Levels of lists and objects in a parsed JSON value, counted without recursion (stops
    counting past `MAX_NESTING`)."""
    deepest, stack = 0, [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack and deepest <= MAX_NESTING:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        children = value.values() if isinstance(value, dict) else value
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return deepest


def _json_lines_rows(
    path: Path, f: io.BufferedIOBase, part: tuple[int, int] | None = None
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    first, last = part or (0, None)
    for lineno, line in _lines(f):
        if lineno <= first:
            continue
        if last is not None and lineno > last:
            return
        where = f"{path}:{lineno}"
        if line is None:
            raise _too_large(where)
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            raise CorpusFormatError(
                f"{where}: not valid UTF-8 (byte {line[err.start]:#04x} at byte {err.start + 1} of the line); "
                "save the file as UTF-8, or fix or remove that line"
            ) from err
        if lineno == 1:
            text = text.removeprefix("\ufeff")  # a byte order mark, as some editors write
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as err:
            raise CorpusFormatError(
                f"{where}: broken JSON line ({err.msg} at column {err.colno}); fix or remove that line"
            ) from err
        except RecursionError as err:  # the C parser's guard, at about a thousand levels
            raise _too_deep(where) from err
        # only a row with many brackets can be deep; counting them is cheap next to the parsing
        if text.count("[") + text.count("{") > MAX_NESTING and _nesting(row) > MAX_NESTING:
            raise _too_deep(where)
        yield _check_object(path, str(lineno), row), {"file": path.name, "line": lineno}


class _RowTooLarge(Exception):
    pass


class _BoundedReader:
    """A binary stream that stops reading once the row being parsed passes `MAX_ROW_BYTES`, so
    the parser never holds more of one row than that (whatever the bytes)."""

    def __init__(self, f: io.BufferedIOBase):
        self.f = f
        self.offset = 0
        self.row_start = 0
        """Offset read when the last row ended (to the buffer: the parser reads a buffer ahead)."""

    def read(self, size: int = JSON_BUFFER) -> bytes:
        if self.offset - self.row_start > MAX_ROW_BYTES + JSON_BUFFER:
            raise _RowTooLarge
        data = self.f.read(size)
        self.offset += len(data)
        return data


_OPEN = frozenset({"start_map", "start_array"})
_CLOSE = frozenset({"end_map", "end_array"})


def _json_array_rows(path: Path) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """The elements of a top-level `[{...}, {...}]`, one at a time, each built from `ijson`'s
    parse events (no prefixes, so memory does not grow with the nesting) within the limits."""
    import ijson
    from ijson.common import ObjectBuilder

    index, depth, builder = 0, 0, None
    with _open_binary(path) as raw:
        if raw.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:
            raw.seek(0)
        reader = _BoundedReader(raw)
        try:
            for event, value in ijson.basic_parse(reader, use_float=True, buf_size=JSON_BUFFER):
                if depth == 0 or (depth == 1 and event in _CLOSE):  # the top-level array itself
                    depth = 1 - depth
                    continue
                if builder is None:
                    builder = ObjectBuilder()
                builder.event(event, value)
                depth += (event in _OPEN) - (event in _CLOSE)
                if depth > MAX_NESTING + 1:
                    raise _too_deep(f"{path}: row {index + 1}")
                if depth == 1:  # a row is complete
                    index += 1
                    reader.row_start = reader.offset
                    row, builder = builder.value, None
                    yield _check_object(path, f" row {index}", row), {"file": path.name, "row": index}
        except _RowTooLarge:
            raise _too_large(f"{path}: row {index + 1}") from None
        except ijson.JSONError as err:
            message = err.args[0] if err.args else err  # yajl's message comes as bytes
            message = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
            detail = " ".join(message.split())  # ijson's message points at the spot across lines
            if "invalid bytes in UTF8" in detail:
                raise CorpusFormatError(
                    f"{path}: row {index + 1}: not valid UTF-8 ({detail}); save the file as "
                    "UTF-8, or fix or remove that row"
                ) from err
            raise CorpusFormatError(
                f"{path}: row {index + 1}: broken JSON value in array ({detail}); fix that row, "
                "or close the array with ']' if the file was cut short"
            ) from err


def _parquet_rows(
    path: Path, columns: list[str] | None, part: tuple[int, int] | None = None
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
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
        try:
            with open(path, "rb") as f:
                if _starts_array(f):  # an array is read whole, whatever the file is called
                    return [None]
                total = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b"")) + 1
        except OSError:  # an unreadable file: the reader reports it with its name (not as the cache's disk)
            return [None]
    else:
        return [None]
    if total <= rows_per_part:
        return [None]
    return [(start, min(start + rows_per_part, total)) for start in range(0, total, rows_per_part)]
