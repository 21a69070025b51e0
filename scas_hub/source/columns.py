"""Map one corpus row to `Candidate` records, following a recipe's `Columns`.

Rows that cannot make a usable candidate are not dropped here: they become candidates with a
`skip_reason` (`missing_<field>`, `empty_<field>`, `wrong_type_<field>`, `no_answers`,
`answer_list_length_mismatch`), so the verify stage counts every one of them.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import SourceError
from ..records import Candidate
from .recipe import FILE_TEACHER, Columns

_MISSING = object()
_SELECTOR = re.compile(r"^\[(\w+)=(.*)\]$")

Segment = tuple  # ("key", name) | ("index", i) | ("select", key, value) | ("star",)
STAR: Segment = ("star",)


def parse_path(path: str) -> tuple[Segment, ...]:
    """`messages.[role=user].content` -> key, select and key segments (parsed once per recipe)."""
    parts: list[Segment] = []
    for seg in path.split("."):
        if not seg:
            raise SourceError(f"empty segment in column path {path!r}")
        selector = _SELECTOR.match(seg)
        if seg == "*":
            parts.append(STAR)
        elif re.fullmatch(r"-?\d+", seg):
            parts.append(("index", int(seg)))
        elif selector:
            parts.append(("select", *selector.groups()))
        else:
            parts.append(("key", seg))
    return tuple(parts)


def get_path(value: Any, parts: tuple[Segment, ...]) -> Any:
    """Follow `parts` into nested dicts/lists; `_MISSING` when a step does not exist."""
    for kind, *arg in parts:
        if kind == "key":
            if not isinstance(value, dict):
                return _MISSING
            value = value.get(arg[0], _MISSING)
        elif kind == "index":
            if not isinstance(value, list) or not -len(value) <= arg[0] < len(value):
                return _MISSING
            value = value[arg[0]]
        else:  # select: the first dict in the list whose key has the value
            if not isinstance(value, list):
                return _MISSING
            key, wanted = arg
            value = next((v for v in value if isinstance(v, dict) and str(v.get(key)) == wanted), _MISSING)
        if value is _MISSING:
            return _MISSING
    return value


def file_stem(name: str) -> str:
    """`data/x/Qwen2.5-7B.jsonl.gz` -> `Qwen2.5-7B` (only the data-file suffixes are removed)."""
    name = name.rsplit("/", 1)[-1]
    for suffix in (".gz", ".jsonl", ".json", ".parquet"):
        name = name.removesuffix(suffix)
    return name


def normalise_question(text: str) -> str:
    """The form two copies of a question share: NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def question_hash(text: str) -> str:
    """Question id for corpora joined on the question text."""
    return "q-" + hashlib.sha1(normalise_question(text).encode("utf-8")).hexdigest()[:20]


@dataclass(frozen=True)
class RowContext:
    """Where a row comes from: its data file, subset and (joined layout) teacher."""

    file: str
    subset: str | None = None
    teacher: str | None = None
    """Fixed teacher of the whole file (joined layout or per-teacher files)."""


class RowMapper:
    """Turns rows into candidates for one recipe's `Columns` (long and wide layouts)."""

    def __init__(self, columns: Columns, teacher: str | None = None):
        self.columns = columns
        self.teacher = teacher
        self._row_paths: dict[str, tuple[tuple, ...]] = {}
        """Field -> its alternative paths (`a|b`: the first one the row has)."""
        self._answer_paths: dict[str, tuple[tuple, tuple]] = {}
        top_level = set()
        for name, path in columns.paths().items():
            alternatives = tuple(parse_path(p.strip()) for p in path.split("|"))
            for parts in alternatives:
                if parts[0][0] != "key":
                    raise SourceError(f"column path {path!r} must start with a column name")
                top_level.add(parts[0][1])
            if len(alternatives) > 1:
                if any(STAR in parts for parts in alternatives):
                    raise SourceError(f"column path {path!r}: alternatives ('|') cannot hold the '*' of a wide layout")
                self._row_paths[name] = alternatives
                continue
            parts = alternatives[0]
            if STAR in parts:
                star = parts.index(STAR)
                if STAR in parts[star + 1 :]:
                    raise SourceError(f"column path {path!r} has more than one '*'")
                self._answer_paths[name] = (parts[:star], parts[star + 1 :])
            else:
                self._row_paths[name] = (parts,)
        if "question_id" in self._answer_paths:
            raise SourceError("the question id is one per row: its column path cannot contain '*'")
        if self._answer_paths and "answer" not in self._answer_paths:
            raise SourceError("in a wide layout the answer path needs the '*' (e.g. 'completions.*.response')")
        self.top_level = sorted(top_level)
        """The top-level columns a reader needs (parquet readers load only these)."""

    # ---- one row -> candidates ----------------------------------------------------------------

    def candidates(self, row: dict, ctx: RowContext, location: dict[str, Any]) -> Iterator[Candidate]:
        """Yield the candidates of one row (one for long rows, one per answer for wide rows)."""
        if not self._answer_paths:
            yield self._candidate(row, {}, ctx, location)
            return
        lists = {name: get_path(row, head) for name, (head, _) in self._answer_paths.items()}
        answers = lists["answer"]
        if answers is _MISSING or answers is None or not isinstance(answers, list) or not answers:
            reason = (
                "missing_answer"
                if answers is _MISSING or answers is None
                else "wrong_type_answer"
                if not isinstance(answers, list)
                else "no_answers"
            )
            yield self._placeholder(row, ctx, location, reason)
            return
        lengths = {len(v) for v in lists.values() if isinstance(v, list)}
        mismatch = len(lengths) > 1 or any(
            v is not _MISSING and v is not None and not isinstance(v, list) for v in lists.values()
        )
        for i in range(len(answers)):
            per_answer = {}
            for name, values in lists.items():
                present = isinstance(values, list) and i < len(values)
                per_answer[name] = get_path(values[i], self._answer_paths[name][1]) if present else _MISSING
            cand = self._candidate(row, per_answer, ctx, {**location, "answer_index": i})
            if mismatch and cand.skip_reason is None:
                cand.skip_reason = "answer_list_length_mismatch"
            yield cand

    # ---- internals ----------------------------------------------------------------------------

    def _value(self, name: str, row: dict, per_answer: dict[str, Any]) -> Any:
        if name in per_answer:
            return per_answer[name]
        alternatives = self._row_paths.get(name)
        if alternatives is None:
            return _MISSING
        value = _MISSING
        for parts in alternatives:
            # a plain column is the common case, kept fast
            value = row.get(parts[0][1], _MISSING) if len(parts) == 1 else get_path(row, parts)
            if value is not _MISSING and value is not None:
                return value
        return value

    def _teacher(self, value: Any, ctx: RowContext) -> tuple[str, str | None]:
        """(teacher name, skip reason)."""
        if ctx.teacher:  # joined layout: the dataset is the teacher
            name = ctx.teacher
        elif isinstance(value, str) and value.strip():
            return value.strip(), None
        elif value not in (_MISSING, None, "") and not isinstance(value, str):
            return str(value), "wrong_type_teacher"
        elif self.teacher == FILE_TEACHER:
            name = file_stem(ctx.file)
        elif self.teacher:
            name = self.teacher
        else:
            return "", "missing_teacher"
        # several answers of one row from a fixed teacher are its samples (numbered by the verify stage)
        return name, None

    def _candidate(self, row: dict, per_answer: dict[str, Any], ctx: RowContext, location: dict[str, Any]) -> Candidate:
        reasons: list[str] = []

        def text(name: str, required: bool = False, numbers: bool = False) -> str | None:
            value = self._value(name, row, per_answer)
            if value is _MISSING or value is None:
                if required:
                    reasons.append(f"missing_{name}")
                return None
            if numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str):
                reasons.append(f"wrong_type_{name}")
                return None
            if required and not value.strip():
                reasons.append(f"empty_{name}")
            return value

        instruction = text("instruction", required=True)
        answer = text("answer", required=True)
        system = text("system") or None
        reference = text("reference_answer", numbers=True)
        solution = text("reference_solution") or None
        source_dataset = text("source_dataset") or ctx.subset
        teacher, teacher_reason = self._teacher(self._value("teacher", row, per_answer), ctx)
        if teacher_reason:
            reasons.append(teacher_reason)
        verified = self._value("verified", row, per_answer)
        if verified is _MISSING:
            verified = None
        elif verified is not None and not isinstance(verified, bool):
            reasons.append("wrong_type_verified")
            verified = None
        if text("finish_reason") == "length":
            reasons.append("truncated_answer")
        question_id = self._question_id(row, instruction, source_dataset, reasons)
        return Candidate(
            question_id=question_id,
            teacher=teacher,
            instruction=instruction or "",
            answer=answer or "",
            system=system,
            source_dataset=source_dataset,
            reference_answer=reference,
            reference_solution=solution,
            verified=verified,
            provenance=location,
            skip_reason=reasons[0] if reasons else None,
        )

    def _question_id(self, row: dict, instruction: str | None, source_dataset: str | None, reasons: list[str]) -> str:
        if self.columns.question_id is None:
            return question_hash(instruction) if instruction and instruction.strip() else ""
        raw = self._value("question_id", row, {})
        if raw is _MISSING or raw is None or raw == "":
            return ""
        if isinstance(raw, bool) or not isinstance(raw, (str, int)):
            reasons.append("wrong_type_question_id")
            return ""
        return f"{source_dataset}/{raw}" if source_dataset else str(raw)

    def _placeholder(self, row: dict, ctx: RowContext, location: dict[str, Any], reason: str) -> Candidate:
        """A wide row without a usable answer list still counts: one row, skipped with `reason`."""
        cand = self._candidate(row, {"answer": "-"}, ctx, location)
        cand.answer, cand.skip_reason = "", reason
        return cand
