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


class StorageError(ScasHubError):
    """A file or cache cannot be written (disk full, read-only folder); the message names the folder."""


def cannot_write(what: str, where: object, err: OSError, elsewhere: str = "") -> StorageError:
    """One line for a failed write: what, where, why, and what to do (free space, or make the folder
    writable; `elsewhere` names another place to write to, e.g. "or pass another --out")."""
    import errno
    import re

    reason = err.strerror or str(err) or type(err).__name__
    code = err.errno
    if code is None:  # Arrow's IO errors carry the errno in their text only
        found = re.search(r"\[Errno (\d+)\]", str(err))
        code = int(found.group(1)) if found else None
    if code in (errno.ENOSPC, errno.EDQUOT):
        fix = "free space on that disk"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "make that folder writable"
    else:
        fix = "check that folder"
    return StorageError(
        f"cannot write {what} in {where} ({reason}); {fix}{', ' + elsewhere if elsewhere else ''}, "
        "then run the same command again"
    )
