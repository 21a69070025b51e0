"""Named exceptions for every failure a user can hit; each message says what to do."""

from __future__ import annotations


class ScasHubError(Exception):
    """Base class of every scas-hub error."""

    exit_code = 2
    """The command line's exit status for this error."""


class ConfigError(ScasHubError, ValueError):
    """Settings that contradict each other (e.g. `--truncate` without `--max-length`)."""


class SourceError(ScasHubError):
    """The corpus cannot be found or read (bad path, unknown builder, missing subset)."""


class CorpusFormatError(SourceError):
    """A corpus file is malformed; the message names the file and line."""


class StudentError(ScasHubError):
    """The student model cannot be resolved or loaded, or lacks what scoring needs."""


class SelectionError(ScasHubError):
    """Selection settings are invalid (unknown strategy, bad group, unknown teacher)."""


class PublishError(ScasHubError):
    """Writing or pushing the dataset failed."""


class NoUsableCandidatesError(SelectionError):
    """No candidate survived verification or scoring, so there is nothing to select; nothing was written."""

    exit_code = 1


class TrainError(ScasHubError):
    """Training the student cannot start or finish (missing `trl`, bad settings, unreadable dataset)."""


class ChatTemplateMismatchError(TrainError):
    """The student's chat template differs from the one the dataset was scored with."""
