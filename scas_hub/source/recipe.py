"""`CorpusRecipe`: what a builder in builders/ declares about a multi-teacher corpus.

A recipe is data, not code: where the corpus lives (Hub id and revision, or a local folder), its
subsets and their files, where each `Candidate` field comes from (`Columns`), how answers are
verified, and the license/tags to carry into the card. The layout follows from the declaration:

- **long**: one row per (question, teacher); the teacher is a column (or the file name, for
  per-teacher files such as the published pool);
- **wide**: one row per question holding a list of answers; a column path with a `*` marks the
  list axis, e.g. `completions.*.response` (list of structs) or `generations.*` with
  `correctness_math_verify.*` (parallel lists);
- **joined**: one dataset per teacher (`teachers=`), rows joined on the question id, or on a hash
  of the normalised question text when `Columns.question_id` is None.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

VERIFY_RULES = ("auto", "flags", "math", "trusted")
"""How answers are verified:

- `auto`: the corpus's own correctness flag when the row has one, else math-verify against the
  reference answer; a row with neither is excluded as `unverifiable`;
- `flags`: the flag decides; a row without one is excluded as `unverifiable`;
- `math`: math-verify against the reference answer (flags ignored);
- `trusted`: the corpus was verified upstream; only an explicit false flag excludes a row.
"""


def check_verification(rule: str, where: str | None = None) -> str:
    """`rule` if it is one of `VERIFY_RULES`, else a one-line SourceError (`where`: which recipe)."""
    if rule not in VERIFY_RULES:
        from ..errors import SourceError

        prefix = f"{where}: " if where else ""
        raise SourceError(f"{prefix}unknown verification rule {rule!r}; choose one of {', '.join(VERIFY_RULES)}")
    return rule


FILE_TEACHER = "{file}"
"""`CorpusRecipe.teacher` value meaning "the data file's name is the teacher" (per-teacher files)."""


@dataclass(frozen=True)
class Columns:
    """Where each `Candidate` field is read from: a column name or a dotted path.

    Path segments: a key (`info`), a list index (`0`, `-1`), the first list element whose key has a
    value (`[role=user]`), or `*` for the list of answers in wide layouts. `a|b` reads the first of
    several columns that a row has (not with `*`). A `None` field is absent from the corpus. The
    defaults are the published pool's schema.
    """

    question_id: str | None = "id"
    """None: the question is identified by a hash of its normalised text (joins across datasets)."""
    instruction: str = "instruction"
    answer: str = "teacher_output"
    teacher: str | None = "teacher_name"
    system: str | None = "system"
    reference_answer: str | None = "reference_answer"
    reference_solution: str | None = "reference_solution"
    """A worked solution (optional): `scas-hub evaluate` reports its NLL under the student."""
    verified: str | None = "is_correct|is_common_correct"
    """The corpus's own correctness flag (a bool per answer), if it has one. The default reads
    `is_correct`, else the published pool's `is_common_correct`."""
    source_dataset: str | None = "source_dataset"
    finish_reason: str | None = "finish_reason"
    """The generation's finish reason, where the corpus records one (`scas-hub generate` does): an
    answer cut off at the token limit (`length`) is set aside as `truncated_answer`. None keeps them."""

    def paths(self) -> dict[str, str]:
        """Field name -> path, for the fields the corpus has."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @property
    def is_wide(self) -> bool:
        return any("*" in p.split(".") for p in self.paths().values())


@dataclass(frozen=True)
class TeacherDataset:
    """One teacher's dataset in a joined corpus (one dataset per teacher)."""

    teacher: str
    repo_id: str | None = None
    """Hub dataset id; None: `local_path`."""
    revision: str | None = None
    local_path: str | None = None


@dataclass(frozen=True)
class CorpusRecipe:
    """A multi-teacher corpus: where it lives, how its rows map to candidates, what the card says."""

    name: str
    description: str
    repo_id: str | None = None
    """Hub dataset id; None for bundled (`local_path`) or joined (`teachers`) corpora."""
    local_path: str | None = None
    """A folder: relative to the `scas_hub` package for bundled corpora, else absolute or relative
    to the recipe file."""
    revision: str | None = None
    subsets: tuple[str, ...] = ()
    default_subset: str | None = None
    data_files: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Subset -> glob patterns inside the repo/folder (`{subset}` is replaced). Empty: the pool's
    layout, `data/<subset>/*.jsonl`, `<subset>/*.jsonl` or `*.jsonl`."""
    columns: Columns = field(default_factory=Columns)
    teacher: str | None = None
    """The teacher when rows do not name one: a fixed name (several answers in a wide row are that
    teacher's samples, `Candidate.sample` 0, 1, ...), or `{file}` for the data file's name."""
    teachers: tuple[TeacherDataset, ...] = ()
    """Joined layout: one dataset per teacher."""
    verification: str = "auto"
    """One of `VERIFY_RULES`."""
    license: str = "other"
    tags: tuple[str, ...] = ()
    task_categories: tuple[str, ...] = ("text-generation",)
    synthetic: bool = False
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from ..errors import SourceError

        check_verification(self.verification, f"recipe {self.name!r}")
        if self.teachers and self.repo_id:
            raise SourceError(f"recipe {self.name!r}: give either repo_id or teachers (joined datasets), not both")

    @property
    def layout(self) -> str:
        """`joined`, `wide` or `long` (see the module docstring)."""
        if self.teachers:
            return "joined"
        return "wide" if self.columns.is_wide else "long"

    def resolve_subsets(self, subset: str | None) -> tuple[str, ...]:
        """`None` -> the default subset; `all` -> every subset; `a,b` -> both."""
        if subset is None:
            subset = self.default_subset
        if subset is None or subset == "all":
            return self.subsets
        return tuple(s.strip() for s in subset.split(","))

    def patterns(self, subset: str) -> tuple[str, ...]:
        """Glob patterns of a subset's data files (empty: the pool's layout)."""
        pats = self.data_files.get(subset, self.data_files.get("*", ()))
        return tuple(p.format(subset=subset) for p in pats)
