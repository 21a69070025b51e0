"""Rounds: score -> select -> train -> score again with the new checkpoint.

Round N of a dataset is scored with the student checkpoint of round N and published as a new
version of the same dataset. Each version's `selection_stats.json` carries the list of rounds so
far (`rounds`): per round the student revision, the teacher shares, how many questions changed
their selected answer since the previous round and, once known, how the round's selection trained
the next checkpoint (`training`). Round N > 1 reads round N-1 from the Hub repo it is pushed to,
else from a given folder or its output folder, before anything is overwritten.
`scas_hub.loop.run_rounds` runs the whole loop, training included.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..compare import Pick, agreement, format_shares, teacher_shares
from ..constants import STATS_FILENAME
from ..errors import SelectionError, SourceError
from ..publish.published import PublishedDataset, open_published
from ..run_record import RoundEntry, StudentFacts


def _hub_has_dataset(repo_id: str) -> bool:
    from huggingface_hub import HfApi

    from ..hub_access import with_retries

    api = HfApi()
    what = f"read {repo_id} on the Hub"
    try:  # reads are retried like pushes: one 500 does not end a round
        return with_retries(api.repo_exists, repo_id, repo_type="dataset", what=what) and with_retries(
            api.file_exists, repo_id, STATS_FILENAME, repo_type="dataset", what=what
        )
    except Exception as err:  # HTTP, connection and auth errors all mean the same to the user
        raise SourceError(
            f"cannot read {repo_id!r} on the Hub to find the previous round "
            f"({type(err).__name__}: {err}); check your network and `hf auth login`, then run the "
            "same command again: it resumes (finished rounds and cached scores are kept)"
        ) from err


def previous_round(out: Path, repo_id: str | None, previous: Path | None = None) -> PublishedDataset | None:
    """The latest published version: the Hub repo's main branch when pushing there, else
    `previous` (round N-1's own folder) when given, else `out`."""
    if repo_id and _hub_has_dataset(repo_id):
        from ..hub_access import with_retries

        return with_retries(open_published, repo_id, what=f"read {repo_id} on the Hub")
    folder = previous if previous is not None else out
    if (folder / STATS_FILENAME).exists() and (folder / "candidates").is_dir():
        return open_published(folder)
    return None


def _student_facts(student: StudentFacts) -> dict[str, Any]:
    return {"name": student.name, "repo_id": student.repo_id, "revision": student.revision}


@dataclass
class RoundContext:
    """Round N, the rounds before it, and round N-1's selection to compare against."""

    number: int
    history: list[RoundEntry] = field(default_factory=list)
    previous: dict[str, Pick] | None = None
    previous_location: str | None = None

    @classmethod
    def load(
        cls,
        number: int,
        out: Path,
        repo_id: str | None,
        *,
        previous: Path | None = None,
        training: dict[str, Any] | None = None,
    ) -> RoundContext:
        """Read round `number - 1` from the Hub repo (when pushing), `previous` or the output folder.

        Args:
            training: how round `number - 1`'s selection trained this round's checkpoint (steps,
                final loss, checkpoint and its revision); recorded in that round's entry.

        Raises:
            SelectionError: `number` < 1, no previous round found for `number` > 1, or the dataset
                already holds round `number` or a later one.
        """
        if number < 1:
            raise SelectionError(f"--round must be >= 1, got {number}")
        if number == 1:
            return cls(1)
        prev = previous_round(out, repo_id, previous)
        if prev is None:
            where = f"the Hub repo {repo_id} or " if repo_id else ""
            out = previous if previous is not None else out
            raise SelectionError(
                f"round {number} compares with round {number - 1}, but {where}the output folder {out} holds no "
                "scas-hub dataset; pass the --out (or --push) of the previous round, or --round 1"
            )
        selection = prev.selection()
        history = list(prev.record.rounds or []) if prev.record is not None else []
        if not history:  # a dataset built without --round counts as the round before this one
            student = prev.record.student if prev.record is not None else StudentFacts()
            history = [
                RoundEntry.from_dict(
                    {
                        "round": number - 1,
                        "student": _student_facts(student),
                        "teacher_shares": teacher_shares(selection),
                        "changed": None,
                    }
                )
            ]
        last = history[-1].round
        if last >= number:
            raise SelectionError(
                f"{prev.location} already holds round {last}; pass --round {last + 1}, "
                "or a fresh --out / --push for a new series"
            )
        if training is not None:
            history[-1] = replace(history[-1], training=training)
        return cls(number, history, selection, prev.location)

    def entry(self, student: StudentFacts, selection: dict[str, Pick]) -> RoundEntry:
        """This round's record: student revision, teacher shares, answers changed since the previous."""
        changed = None
        if self.previous is not None:
            a = agreement(self.previous, selection)
            changed = {
                "questions_compared": a.compared,
                "questions_changed": a.compared - a.same,
                "share": a.changed_share,
            }
        return RoundEntry.from_dict(
            {
                "round": self.number,
                "student": _student_facts(student),
                "teacher_shares": teacher_shares(selection),
                "changed": changed,
            }
        )

    def rounds(self, student: StudentFacts, selection: dict[str, Pick]) -> list[RoundEntry]:
        return [*self.history, self.entry(student, selection)]


def card_rows(rounds: Sequence[RoundEntry | Mapping[str, Any]]) -> list[dict[str, str]]:
    """The rounds table of the card, one row of display strings per round."""
    rows = []
    for r in rounds:
        entry = r if isinstance(r, RoundEntry) else RoundEntry.from_dict(r)
        changed, training = entry.changed, entry.training
        if changed and changed.get("share") is not None:
            shown = f"{100 * changed['share']:.1f}% ({changed['questions_changed']} of {changed['questions_compared']})"
        else:
            shown = "n/a"
        rows.append(
            {
                "round": str(entry.round),
                "student": str(entry.student.get("repo_id") or entry.student.get("name")),
                "revision": str(entry.student_revision),
                "shares": format_shares(entry.teacher_shares),
                "changed": shown,
                "steps": str(training["steps"]) if training else "n/a",
                "final_loss": f"{training['final_loss']:.4f}" if training else "n/a",
                "checkpoint": f"`{training['checkpoint']}` @ `{training['checkpoint_revision']}`"
                if training
                else "not yet",
            }
        )
    return rows
