"""Build the candidate table (`table.py`) once per corpus revision, recipe and verification rule.

1. Every data file (large ones in parts of `PART_ROWS` rows) is mapped to candidates on a pool
   of processes; each part is written as an Arrow file.
2. The parts are grouped by question through an index: question ids are ranked in natural order
   (`grouping.natural_key`) and the rows sorted by (question, source position) with numpy.
3. Every usable row is verified (math-verify) on the pool, in chunks of whole questions.
4. One pass over the small columns, question by question, sets what needs the whole question
   (duplicates, a different question text, the same answer as another teacher) and counts every
   row set aside; then the rows are written in that order as the table's shards.

The table goes to `table_cache_dir()/<key>`, written in a temporary folder and renamed, so a
killed build leaves nothing half-written and concurrent builders never see each other's files.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import aside_folder
from ..constants import build_processes, table_cache_dir
from ..errors import SourceError, cannot_write
from ..source import OpenedSource
from ..source.columns import RowContext, RowMapper, normalise_question
from ..source.files import iter_rows, row_parts
from ..source.layouts import DataFile
from ..source.recipe import Columns, check_verification
from ..stats import PipelineStats
from . import question_skip_reasons, verification_reason
from .grouping import natural_key
from .table import (
    BATCH_ROWS,
    META_FILE,
    SHARD_ROWS,
    TABLE_VERSION,
    CandidateTable,
    MappedFiles,
    RowTaker,
    TableStats,
    row_of,
    schema,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pyarrow as pa

PART_ROWS = 20_000
"""Rows per part of a large file: the unit of work of one process reading rows."""
VERIFY_ROWS = 512
"""Rows (whole questions) per verification task."""


def table_key(opened: OpenedSource) -> str:
    """Folder name of a corpus's table: its files (path, size, modification time), the recipe's
    columns and teacher rule, the verification rule and the table version."""
    recipe = opened.recipe
    files = [
        (str(f.path.resolve()), f.path.stat().st_size, f.path.stat().st_mtime_ns, f.subset, f.teacher)
        for f in opened.files
    ]
    payload = {
        "version": TABLE_VERSION,
        "files": files,
        "rule": opened.verification,
        "columns": asdict(recipe.columns) if recipe else asdict(Columns()),
        "teacher": recipe.teacher if recipe else None,
        "datasets": list(opened.info.datasets),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class _Part:
    index: int
    file: DataFile
    rows: tuple[int, int] | None
    columns: Columns
    teacher: str | None
    rule: str
    out: str


def _key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def _build_part(part: _Part) -> int:
    """Map one part's rows to candidates, verify each on its own, write them as an Arrow file."""
    import pyarrow as pa

    mapper = RowMapper(part.columns, part.teacher)
    ctx = RowContext(file=part.file.path.name, subset=part.file.subset, teacher=part.file.teacher)
    fields = schema()
    extra = [
        pa.field("question_text", pa.binary()),
        pa.field("answer_text", pa.binary()),
        pa.field("has_text", pa.bool_()),
        pa.field("position", pa.int64()),
    ]
    part_schema = pa.schema([*(f for f in fields if f.name != "question_index"), *extra])
    names = part_schema.names
    n = 0
    with pa.OSFile(part.out, "wb") as sink, pa.ipc.new_file(sink, part_schema) as writer:
        columns: dict[str, list] = {name: [] for name in names}
        for row, location in iter_rows(part.file.path, mapper.top_level, part.rows):
            for c in mapper.candidates(row, ctx, location):
                values = {
                    **row_of(c),
                    "question_text": _key(normalise_question(c.instruction)),
                    "answer_text": _key(c.answer.strip()),
                    "has_text": bool(c.instruction.strip()),
                    "position": n,
                }
                for name in names:
                    columns[name].append(values[name])
                n += 1
                if len(columns["position"]) >= BATCH_ROWS:
                    writer.write_batch(pa.record_batch(columns, schema=part_schema))
                    columns = {name: [] for name in names}
        if columns["position"]:
            writer.write_batch(pa.record_batch(columns, schema=part_schema))
    return n


def _parts(opened: OpenedSource, folder: Path) -> list[_Part]:
    recipe = opened.recipe
    columns = recipe.columns if recipe else Columns()
    teacher = recipe.teacher if recipe else "{file}"
    parts: list[_Part] = []
    for data_file in opened.files:
        for rows in row_parts(data_file.path, PART_ROWS):
            index = len(parts)
            parts.append(
                _Part(
                    index,
                    data_file,
                    rows,
                    columns,
                    teacher,
                    opened.verification,
                    str(folder / f"part-{index:06d}.arrow"),
                )
            )
    return parts


def _pool(processes: int, tasks: int) -> ProcessPoolExecutor:
    # fork: the workers start at once and inherit the recipe, the imported math-verify and the
    # memory-mapped parts
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    return ProcessPoolExecutor(max_workers=min(processes, tasks), mp_context=context)


def _run_parts(parts: list[_Part], processes: int) -> None:
    if processes <= 1 or len(parts) <= 1:
        for part in parts:
            _build_part(part)
        return
    with _pool(processes, len(parts)) as pool:
        for _ in pool.map(_build_part, parts):  # in order: the first failing part raises first
            pass


_VERIFY_INPUT: dict[str, Any] = {}
"""What the verification workers read (set before they fork): the parts table, order and rule."""


def _verify_rows(bounds: tuple[int, int]) -> list[str | None]:
    """Verification reasons of sorted rows `[a, b)` (whole questions, so math-verify's caches of
    references and parsed values are hit as often as when verifying question by question)."""
    from ..records import Candidate

    a, b = bounds
    table, order, rule = _VERIFY_INPUT["table"], _VERIFY_INPUT["order"], _VERIFY_INPUT["rule"]
    rows = table.take(order[a:b]).to_pylist()
    _VERIFY_INPUT["files"].release()
    out: list[str | None] = []
    for r in rows:
        if r["skip_reason"] is not None or not r["question_id"]:
            out.append(None)
            continue
        c = Candidate(
            question_id=r["question_id"],
            teacher=r["teacher"],
            instruction=r["instruction"],
            answer=r["answer"],
            reference_answer=r["reference_answer"],
            verified=r["verified"],
        )
        out.append(verification_reason(c, rule))
    return out


def _verification(
    parts_table: pa.Table,
    files: MappedFiles,
    order: npt.NDArray[np.intp],
    question_index: npt.NDArray[np.intp],
    rule: str,
    processes: int,
) -> list[str | None]:
    """Verification reason of every sorted row (math-verify on every core, whole questions per task)."""
    import numpy as np

    if rule in ("auto", "math"):
        import math_verify  # noqa: F401  (imported once here, not in every worker)
    _VERIFY_INPUT.update(
        table=RowTaker(
            parts_table.select(
                ["question_id", "teacher", "instruction", "answer", "reference_answer", "verified", "skip_reason"]
            )
        ),
        order=order,
        rule=rule,
        files=files,
    )
    n = len(order)
    # chunk boundaries at question starts, about VERIFY_ROWS rows each
    starts = np.flatnonzero(np.concatenate([[True], question_index[1:] != question_index[:-1]]))
    cuts = sorted(
        {
            0,
            n,
            *(
                int(starts[np.searchsorted(starts, k)])
                for k in range(VERIFY_ROWS, n, VERIFY_ROWS)
                if np.searchsorted(starts, k) < len(starts)
            ),
        }
    )
    chunks = list(zip(cuts[:-1], cuts[1:], strict=True))
    try:
        if processes <= 1 or len(chunks) <= 1 or rule in ("flags", "trusted"):
            results = [_verify_rows(c) for c in chunks]
        else:
            with _pool(processes, len(chunks)) as pool:
                results = list(pool.map(_verify_rows, chunks))
    finally:
        _VERIFY_INPUT.clear()
    return [reason for chunk in results for reason in chunk]


def _order(parts_table: pa.Table, n_parts_rows: list[int]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Row order of the table: by question (natural order of ids), then source position;
    rows without a question id last. Returns (order, question index per sorted row)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = parts_table.column("question_id")
    encoded = pc.dictionary_encode(ids).combine_chunks()
    dictionary = encoded.dictionary.to_pylist()
    ranked = sorted(range(len(dictionary)), key=lambda i: (natural_key(dictionary[i]), dictionary[i]))
    rank_of = np.empty(len(dictionary), dtype=np.int64)
    rank_of[ranked] = np.arange(len(dictionary))
    indices = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    rank = rank_of[indices] if len(indices) else indices
    empty = [i for i, text in enumerate(dictionary) if not text]
    if empty:  # rows without a question id belong to no question: they go last
        missing = indices == empty[0]
        rank = np.where(missing, len(dictionary), rank)
    offsets = np.repeat(np.cumsum([0, *n_parts_rows[:-1]]), n_parts_rows)
    position = parts_table.column("position").to_numpy() + offsets
    order = np.lexsort((position, rank))
    sorted_rank = rank[order]
    # dense question index over the ranks present, -1 for rows without a question id
    starts = np.concatenate([[True], sorted_rank[1:] != sorted_rank[:-1]]) if len(order) else np.array([], bool)
    question_index = np.cumsum(starts) - 1
    if empty:
        question_index = np.where(sorted_rank == len(dictionary), -1, question_index)
    del pa
    return order, question_index


def _shifted(verification: list[str | None], first: int, j: int) -> str | None:
    """The verification reason of a question's candidate `j`, its first row being `first`."""
    return verification[first + j]


def _verify_questions(
    parts_table: pa.Table,
    order: npt.NDArray[np.intp],
    question_index: npt.NDArray[np.intp],
    verification: list[str | None],
    stats: PipelineStats,
) -> tuple[list[str | None], list[int]]:
    """Set what needs the whole question (skip reasons, sample numbers) and count every row set
    aside, in table order."""
    import numpy as np

    small = RowTaker(parts_table.select(["teacher", "skip_reason", "question_text", "answer_text", "has_text"]))
    reasons: list[str | None] = [None] * len(order)
    samples: list[int] = [0] * len(order)
    assigned = int(np.count_nonzero(question_index >= 0))  # rows without a question id are sorted last
    # those rows first, as the verify stage always counted them
    for i, r in enumerate(small.take(order[assigned:]).to_pylist(), assigned):
        reason = r["skip_reason"] or "missing_question_id"
        reasons[i] = reason
        stats.skip(reason, r["teacher"] or None)
    index = question_index[:assigned]
    starts = np.flatnonzero(np.concatenate([[True], index[1:] != index[:-1]])).tolist() if assigned else []
    ends = [*starts[1:], assigned]
    first = 0  # questions first..k are read as one block of about VERIFY_ROWS rows
    for k in range(len(starts)):
        if k + 1 < len(starts) and ends[k] - starts[first] < VERIFY_ROWS:
            continue
        base = starts[first]
        rows = small.take(order[base : ends[k]]).to_pylist()
        for a, b in zip(starts[first : k + 1], ends[first : k + 1], strict=True):
            mine = rows[a - base : b - base]
            keyed = [
                (r["skip_reason"], r["teacher"], r["has_text"], r["question_text"], r["answer_text"]) for r in mine
            ]
            found, samples[a:b] = question_skip_reasons(keyed, partial(_shifted, verification, a))
            for r, found_reason in zip(mine, found, strict=True):
                if found_reason is not None:
                    stats.skip(found_reason, r["teacher"] or None)
            reasons[a:b] = found
        first = k + 1
    return reasons, samples


def _write_table(
    parts_table: pa.Table,
    files: MappedFiles,
    order: npt.NDArray[np.intp],
    question_index: npt.NDArray[np.intp],
    reasons: list[str | None],
    samples: list[int],
    folder: Path,
) -> None:
    import pyarrow as pa

    target = schema()
    body = RowTaker(
        parts_table.select([f.name for f in target if f.name not in ("skip_reason", "sample", "question_index")])
    )
    for shard, start in enumerate(range(0, max(len(order), 1), SHARD_ROWS)):
        stop = min(start + SHARD_ROWS, len(order))
        with (
            pa.OSFile(str(folder / f"candidates-{shard:05d}.arrow"), "wb") as sink,
            pa.ipc.new_file(sink, target) as writer,
        ):
            for a in range(start, stop, BATCH_ROWS):
                b = min(a + BATCH_ROWS, stop)
                rows = body.take(order[a:b])
                batch = {name: rows.column(name) for name in rows.column_names}
                batch["skip_reason"] = pa.array(reasons[a:b], pa.string())
                batch["sample"] = pa.array(samples[a:b], pa.int64())
                batch["question_index"] = pa.array(question_index[a:b], pa.int64())
                writer.write_table(pa.table({f.name: batch[f.name] for f in target}, schema=target))
                files.release()


def build_table(opened: OpenedSource, folder: Path, processes: int) -> None:
    """Write the candidate table of `opened` into `folder` (which must not exist yet)."""
    import numpy as np
    import pyarrow as pa

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = aside_folder(folder)  # a build killed midway leaves one; the next build removes it
    try:
        parts = _parts(opened, tmp)
        _run_parts(parts, processes)
        files = MappedFiles()
        tables = [files.read(p.out) for p in parts]
        parts_table = pa.concat_tables(tables) if tables else None
        stats = PipelineStats()
        reasons: list[str | None]
        samples: list[int]
        if parts_table is None or parts_table.num_rows == 0:
            question_index, n_questions = np.empty(0, np.intp), 0
            order, reasons, samples = np.empty(0, np.intp), [], []
        else:
            stats.rows_in = parts_table.num_rows
            order, question_index = _order(parts_table, [t.num_rows for t in tables])
            verification = _verification(parts_table, files, order, question_index, opened.verification, processes)
            reasons, samples = _verify_questions(parts_table, order, question_index, verification, stats)
            n_questions = int(question_index.max()) + 1 if (question_index >= 0).any() else 0
        if parts_table is not None:
            _write_table(parts_table, files, order, question_index, reasons, samples, tmp)
        table_stats = TableStats.of(stats)
        (tmp / META_FILE).write_text(
            json.dumps(
                {
                    "version": TABLE_VERSION,
                    "rows_in": table_stats.rows_in,
                    "questions": n_questions,
                    "usable": sum(r is None for r in reasons),
                    "skipped": table_stats.skipped,
                    "files": [str(f.path) for f in opened.files],
                    "verification": opened.verification,
                }
            )
        )
        del parts_table, tables, files
        pa.default_memory_pool().release_unused()
        for p in parts:
            os.remove(p.out)
        try:
            os.rename(tmp, folder)
        except OSError:  # another process built the same table meanwhile: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def open_table(opened: OpenedSource, processes: int | None = None) -> CandidateTable:
    """The candidate table of a corpus: built on first use (on every core), then reused.

    Under `accelerate launch` the first process of each node builds it while the others wait,
    then they all memory-map the same files.

    Raises:
        SourceError: unknown verification rule, or (rule `auto`) no row carries a correctness flag
            or a reference answer, so nothing could be verified.
        CorpusFormatError: a broken line or row (named by file and line).
    """
    check_verification(opened.verification)
    folder = table_cache_dir() / table_key(opened)

    def build() -> None:
        if not (folder / META_FILE).is_file():
            try:
                build_table(opened, folder, processes or build_processes())
            except OSError as err:  # the corpus is read through SourceError: this is the cache's disk
                raise cannot_write(
                    "the candidate table cache",
                    folder.parent,
                    err,
                    "or set SCAS_HUB_TABLE_CACHE to a folder on another disk",
                ) from err

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from ..distributed import distributed_state

        with distributed_state().local_main_process_first():
            build()
    else:
        build()
    table = CandidateTable(folder)
    unverifiable = sum(n for reason, _, n in table.stats.skipped if reason == "no_flag_or_reference")
    if unverifiable and not table.usable:
        raise SourceError(
            f"none of the rows could be verified: {unverifiable} have neither a correctness flag nor a "
            "reference answer. Map those columns in the recipe, or, if the corpus was verified upstream, "
            "use verification 'trusted' (--verify trusted)."
        )
    return table
