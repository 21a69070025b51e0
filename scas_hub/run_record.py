"""The run record: what `selection_stats.json` holds, as dataclasses (`RunRecord` and its sections).

`curate`, `reselect` and `curate_students` write it beside the data files; the card, the push, a
re-selection, training and the rounds loop read it back. `RunRecord.to_dict()` is the JSON that is
written, and `RunRecord.from_dict()` reads it back, from this version or an older one:

- a section or field an older record lacks takes its default (counters 0, sections empty);
- keys this version does not know are kept (`extra`) and written back;
- a record read from a file is written back with its keys in the order they were read, so reading
  and writing a record changes nothing but what was set in between (a push's `release`, ...).

Torch-free, with no import from a higher layer: the terminal report (`scas_hub.report`) reads it too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

_Section = TypeVar("_Section", bound="JsonSection")


def _plain(value: Any) -> Any:
    """A section (or a list of them) as JSON values."""
    if isinstance(value, JsonSection):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _default_of(f: Any) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


@dataclass
class JsonSection:
    """A JSON object with typed fields.

    `to_dict()` writes a section built in code with its fields in declared order (an `optional()`
    field only when set); a section read by `from_dict()` with the keys it was read with, in their
    order, then any field set since (not None, not its default). Keys no field declares stay in
    `extra`.
    """

    SECTIONS: ClassVar[dict[str, Callable[[Any], Any]]] = {}
    """Fields whose JSON value is read into a section type (`{"student": StudentFacts.from_dict}`)."""

    extra: dict[str, Any] = field(default_factory=dict, kw_only=True, repr=False)
    """Keys this version does not know, as read."""
    read_keys: tuple[str, ...] | None = field(default=None, kw_only=True, repr=False, compare=False)
    """The keys of the JSON object this section was read from, in order (None: built in code)."""

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name not in ("extra", "read_keys")]

    @classmethod
    def from_dict(cls: type[_Section], data: Mapping[str, Any]) -> _Section:
        """Read a JSON object; missing fields take their defaults, unknown keys go to `extra`.

        A section value of another JSON type than an object is kept as it is, in `extra`.
        """
        names = set(cls.field_names())
        known: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            if key not in names:
                extra[key] = value
            elif key in cls.SECTIONS and value is not None:
                parsed = _parse_section(cls.SECTIONS[key], value)
                if parsed is None:
                    extra[key] = value
                else:
                    known[key] = parsed
            else:
                known[key] = value
        return cls(**known, extra=extra, read_keys=tuple(data))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (see the class docstring for which keys, in which order)."""
        declared = {f.name: f for f in fields(self) if f.name not in ("extra", "read_keys")}
        out: dict[str, Any] = {}
        for key in self.read_keys or ():  # a declared key is in `extra` when its value was not a section
            if key in self.extra:
                out[key] = self.extra[key]
            elif key in declared:
                out[key] = _plain(getattr(self, key))
        for name, f in declared.items():
            value = getattr(self, name)
            if name in out:
                continue
            if self.read_keys is None:
                if value is not None or not f.metadata.get("optional"):
                    out[name] = _plain(value)
            elif value is not None and value != _default_of(f):
                out[name] = _plain(value)
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out


def optional() -> Any:
    """A field that a section built in code writes only when it is set (not None)."""
    return field(default=None, metadata={"optional": True})


def _parse_section(parse: Callable[[Any], Any], value: Any) -> Any:
    """`parse(value)`, or None when `value` is not the JSON type the section is read from."""
    try:
        return parse(value)
    except (AttributeError, TypeError):
        return None


def _sections(cls: type[_Section]) -> Callable[[Iterable[Mapping[str, Any]]], list[_Section]]:
    def parse(values: Iterable[Mapping[str, Any]]) -> list[_Section]:
        if not isinstance(values, list):
            raise TypeError("not a list")
        return [cls.from_dict(v) for v in values]

    return parse


def _section(cls: type[_Section]) -> Callable[[Mapping[str, Any]], _Section]:
    def parse(value: Mapping[str, Any]) -> _Section:
        if not isinstance(value, Mapping):
            raise TypeError("not an object")
        return cls.from_dict(value)

    return parse


@dataclass
class StudentFacts(JsonSection):
    """The student as scored (`score.runner.ScoreReport.student`)."""

    name: str = "unknown-student"
    repo_id: str | None = None
    revision: str | None = None
    weights: str | None = None
    dtype: str | None = None
    device: str | None = None
    processes: int | None = None
    chat_template_sha256: str | None = None
    """Of the template the candidates were rendered with (None for records written before it was)."""
    chat_template_override: bool | None = None
    max_length: int | None = None
    """The tokens per conversation the candidates were scored at (None: no limit, or not recorded)."""
    truncate: bool | None = None
    context_length: int | None = None
    base_model: dict[str, Any] | None = optional()
    """For a checkpoint trained by scas-hub: the model its weights descend from."""
    trained_round: int | None = optional()


def unknown_student() -> StudentFacts:
    """What a re-selection records as the student when its scores came without a record."""
    return StudentFacts.from_dict(
        {"name": "unknown-student", "repo_id": "unknown", "revision": "unknown", "dtype": "unknown", "device": None}
    )


@dataclass
class SourceFacts(JsonSection):
    """The corpus (`source.source_record`)."""

    name: str = ""
    repo_id: str | None = None
    revision: str | None = None
    subsets: list[str] = field(default_factory=list)
    license: str | None = None
    tags: list[str] | None = None
    synthetic: bool | None = None
    layout: str | None = None
    verification: str | None = None
    datasets: list[str] | None = None


@dataclass
class SelectionFacts(JsonSection):
    """The selection settings (`SelectionConfig.to_dict`), and for `strongest` the teacher order used."""

    strategy: str = "scas"
    lam: float | None = None
    groups: int | None = None
    group: int | None = None
    seed: int | None = None
    small_policy: str | None = None
    teacher_ranking: list[str] | None = optional()
    teacher_order: list[str] | None = optional()


@dataclass
class RunFacts(JsonSection):
    """How the run went: when, how long, on what, with which versions; scoring speed when a model ran."""

    created: str | None = None
    wall_seconds: float | None = None
    model_ran: bool | None = None
    hardware: str | None = None
    versions: list[str] | None = None
    stages: dict[str, dict[str, float]] | None = None
    tokens_per_second: float | None = optional()
    processes: int | None = optional()
    ranks: list[dict[str, Any]] | None = optional()


@dataclass
class ScoringRun(JsonSection):
    """The run that computed the scores a re-selection selected from (`PublishedDataset.scoring_run`)."""

    created: str | None = None
    student: str | None = None
    student_revision: str | None = None
    weights: str | None = None
    dtype: str | None = None
    hardware: str | None = None
    tokens_scored: int | None = None
    scoring_seconds: float | None = None
    version: str | None = None


@dataclass
class ScoresFrom(JsonSection):
    """Where a re-selection's scores came from."""

    SECTIONS: ClassVar[dict[str, Callable[[Any], Any]]] = {"scoring_run": _section(ScoringRun)}

    location: str = ""
    repo_id: str | None = None
    revision: str | None = None
    stats_carried_forward: bool = False
    scoring_run: ScoringRun | None = None


@dataclass
class RoundEntry(JsonSection):
    """One round of a series of versions (`rounds.context.RoundContext`)."""

    round: int = 1
    student: dict[str, Any] = field(default_factory=dict)
    """`name`, `repo_id`, `revision` of the checkpoint that scored the round."""
    teacher_shares: dict[str, float] = field(default_factory=dict)
    changed: dict[str, Any] | None = None
    """Questions whose selected answer changed since the previous round (None for the first)."""
    training: dict[str, Any] | None = optional()
    """How the round's selection trained the next checkpoint, once known."""

    @property
    def student_revision(self) -> str | None:
        return self.student.get("revision")


@dataclass
class Release(JsonSection):
    """The Hub version a pushed folder is (`publish.hub.push_folder`)."""

    repo_id: str | None = None
    version: str | None = None
    date: str | None = None


@dataclass
class RunRecord(JsonSection):
    """`selection_stats.json`: the counters (`PipelineStats.to_dict`), the facts of the student,
    corpus, selection and run, the card numbers (`publish.card_stats.CardNumbers.numbers`), the
    figures and files written, and once pushed the release and the version history."""

    SECTIONS: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "student": _section(StudentFacts),
        "source": _section(SourceFacts),
        "selection": _section(SelectionFacts),
        "run": _section(RunFacts),
        "scores_from": _section(ScoresFrom),
        "rounds": _sections(RoundEntry),
        "release": _section(Release),
    }

    rows_in: int = 0
    rows_scored: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    questions_in: int = 0
    questions_selected: int = 0
    questions_dropped: dict[str, int] = field(default_factory=dict)
    policy_applied: dict[str, int] = field(default_factory=dict)
    skipped_by_teacher: dict[str, dict[str, int]] = field(default_factory=dict)
    rows_truncated: int = 0
    tokens_scored: int = 0
    scoring_seconds: float = 0.0
    scores_from_cache: int = 0
    student: StudentFacts = field(default_factory=StudentFacts)
    source: SourceFacts = field(default_factory=SourceFacts)
    selection: SelectionFacts = field(default_factory=SelectionFacts)
    run: RunFacts = field(default_factory=RunFacts)
    teachers: list[dict[str, Any]] = field(default_factory=list)
    """Per teacher: candidates, selected, shares, mean and median score (`CardNumbers.teacher_table`)."""
    agreement: dict[str, Any] = field(default_factory=dict)
    answer_tokens: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)
    scores_from: ScoresFrom | None = optional()
    """Only for a re-selection: where its scores came from."""
    rounds: list[RoundEntry] | None = optional()
    """Only for a round of a series (`curate(..., round_number=N)`): every round so far."""
    rounds_table: list[dict[str, str]] | None = optional()
    files: list[str] = field(default_factory=list)
    """Every file the run wrote, relative to the folder (`publish.output`)."""
    release: Release | None = optional()
    """Once pushed: the repo and version."""
    versions: list[dict[str, Any]] | None = optional()
    """Once pushed: the version history, oldest first (`publish.hub.version_entry`)."""

    @property
    def version(self) -> str | None:
        """The version this record was published as (None for a folder never pushed)."""
        return self.release.version if self.release is not None else None

    @property
    def last_round(self) -> RoundEntry | None:
        return self.rounds[-1] if self.rounds else None

    def rows_set_aside(self) -> int:
        return sum(self.skipped.values())

    def questions_set_aside(self) -> int:
        return sum(self.questions_dropped.values())
