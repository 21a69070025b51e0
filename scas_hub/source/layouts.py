"""Source adapters: every corpus layout read into the one `Candidate` record.

- long rows (`Columns` without `*`): one candidate per row. The published pool is this layout
  spread over per-teacher files (`teacher="{file}"` names the teacher when a row does not);
- wide rows (a `*` in the answer path): one candidate per list element, e.g. UltraFeedback's
  `completions.*.response` or OpenR1's `generations.*` with `correctness_math_verify.*`;
- joined datasets: each `DataFile` carries its teacher; rows of different teachers meet on the
  question id (or the hash of the normalised question text) in the verify stage's grouping.

All of them stream: rows are read file by file in bounded chunks (see `files.iter_rows`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..records import Candidate
from .columns import RowContext, RowMapper
from .files import iter_rows
from .recipe import Columns


@dataclass(frozen=True)
class DataFile:
    """One data file of a corpus, with the subset it belongs to and (joined layout) its teacher."""

    path: Path
    subset: str | None = None
    teacher: str | None = None


def iter_candidates(files: Iterable[DataFile], columns: Columns, teacher: str | None = None) -> Iterator[Candidate]:
    """Candidates of every row of `files`, in file order (any layout; see the module docstring)."""
    mapper = RowMapper(columns, teacher)
    for data_file in files:
        ctx = RowContext(file=data_file.path.name, subset=data_file.subset, teacher=data_file.teacher)
        for row, location in iter_rows(data_file.path, mapper.top_level):
            yield from mapper.candidates(row, ctx, location)
