"""Where a built dataset goes on the Hub: `PublishConfig`, the one home of the push options."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PublishConfig:
    """Push settings of a workflow that writes a dataset folder (the folder itself is its `out`)."""

    push: str | None = field(
        default=None,
        metadata={
            "help": "push to this Hub dataset repo (org/name), or to an org: ORG/scas-<student> for the scas "
            "strategy, ORG/scas-<student>-<strategy> for any other (default: no push)",
            "metavar": "REPO_ID",
        },
    )
    """Hub repo id, or an org (the dataset's name is derived from the student and strategy)."""
    version: str | None = field(
        default=None, metadata={"help": "tag of the pushed commit (default: the next vN)", "metavar": "TAG"}
    )
    private: bool = field(default=False, metadata={"help": "create the Hub repo private"})
