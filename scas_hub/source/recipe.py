"""`CorpusRecipe`: what a builder in builders/ declares about a corpus."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CorpusRecipe:
    """A multi-teacher corpus: where it lives, its subsets, and what to carry into the card."""

    name: str
    description: str
    repo_id: str | None = None
    """Hub dataset id; None for corpora bundled with the package (`local_path`)."""
    local_path: str | None = None
    """For bundled corpora: a folder inside the `scas_hub` package."""
    revision: str | None = None
    subsets: tuple[str, ...] = ()
    default_subset: str | None = None
    layout: str = "per_teacher_jsonl"
    license: str = "other"
    tags: tuple[str, ...] = ()
    task_categories: tuple[str, ...] = ("text-generation",)
    synthetic: bool = False
    extra: dict = field(default_factory=dict)

    def resolve_subsets(self, subset: str | None) -> tuple[str, ...]:
        """`None` -> the default subset; `all` -> every subset."""
        if subset is None:
            subset = self.default_subset
        if subset is None or subset == "all":
            return self.subsets
        return tuple(s.strip() for s in subset.split(","))
