"""Per-teacher JSONL files, the published pool's layout: `data/<source>/<teacher_name>.jsonl`.

Row fields: `id` (aligned across a source's teacher files), `source_dataset`, `teacher_name`,
`system`, `instruction`, `teacher_output`, `reference_answer`, `reference_solution`,
`is_common_correct`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import jsonlines

from ..errors import CorpusFormatError, SourceError
from ..records import Candidate


def find_teacher_files(root: Path, subsets: tuple[str, ...] = ()) -> list[tuple[str | None, Path]]:
    """Find `(subset, file)` pairs under `root`: `data/<subset>/*.jsonl`, `<subset>/*.jsonl` or `*.jsonl`."""
    if root.is_file():
        return [(None, root)]
    for base in (root / "data", root):
        if subsets:
            pairs = [(s, f) for s in subsets for f in sorted((base / s).glob("*.jsonl"))]
            missing = [s for s in subsets if not (base / s).is_dir()]
            if pairs and not missing:
                return pairs
        else:
            nested = sorted(base.glob("*/*.jsonl"))
            if nested:
                return [(f.parent.name, f) for f in nested]
    flat = sorted(root.glob("*.jsonl"))
    if flat and not subsets:
        return [(None, f) for f in flat]
    available = sorted({p.parent.name for p in root.glob("**/*.jsonl")})
    if subsets:
        raise SourceError(
            f"no JSONL files for subset(s) {', '.join(subsets)} under {root}; available: {available or 'none'}"
        )
    raise SourceError(f"no *.jsonl teacher files under {root}")


def _text(row: dict, key: str) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def read_teacher_file(path: Path, subset: str | None = None) -> Iterator[Candidate]:
    """Yield one `Candidate` per line; a broken line stops with the file and line number."""
    teacher_default = path.stem
    try:
        with jsonlines.open(path) as reader:
            for lineno, row in enumerate(reader.iter(skip_empty=True), start=1):
                if not isinstance(row, dict):
                    raise CorpusFormatError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
                source_dataset = _text(row, "source_dataset") or subset or path.parent.name
                raw_id = row.get("id")
                yield Candidate(
                    question_id=f"{source_dataset}/{raw_id}" if raw_id not in (None, "") else "",
                    teacher=_text(row, "teacher_name") or teacher_default,
                    instruction=_text(row, "instruction") or "",
                    answer=_text(row, "teacher_output") or "",
                    system=_text(row, "system"),
                    source_dataset=source_dataset,
                    reference_answer=_text(row, "reference_answer"),
                    verified=row.get("is_correct", row.get("verified")),
                    provenance={"file": path.name, "line": lineno},
                )
    except jsonlines.InvalidLineError as err:
        raise CorpusFormatError(f"{path}:{err.lineno}: broken JSON line ({err})") from err
    except OSError as err:
        raise SourceError(f"cannot read {path}: {err}") from err


def iter_candidates(files: list[tuple[str | None, Path]]) -> Iterator[Candidate]:
    for subset, path in files:
        yield from read_teacher_file(path, subset)
