"""Reaching the Hub for the user: telling a Hub id from a local path, and saying what to do when the
Hub cannot be reached.

Sources, students and published datasets may each be a local folder or a Hub id (`org/name`).
`out/scas-qwen` looks like both; `is_local_path` decides before anything goes over the network, so
a mistyped folder is reported as a missing folder instead of as a failed download.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def is_local_path(text: str | os.PathLike) -> bool:
    """Whether `text` can only mean a local path, even when nothing exists there.

    It does when it starts with `.`, `/` or `~`, is not a valid Hub repo id (`a/b/c`, `..`, spaces,
    backslashes), or its first part is a folder that exists here (`out/nonexist` beside `out/`).
    """
    text = os.fspath(text)
    if text.startswith((".", "/", "~")) or "\\" in text or text.count("/") != 1:
        return True
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(text)
    except HFValidationError:
        return True
    return Path(text.split("/")[0]).is_dir()


def missing_path_message(text: str | os.PathLike, what: str = "folder") -> str:
    """`no such folder: X (looked for /abs/X)`: the absolute path shows a wrong working directory."""
    return f"no such {what}: {os.fspath(text)} (looked for {Path(os.fspath(text)).expanduser().resolve()})"


def _causes(err: BaseException) -> Iterator[BaseException]:
    """`err` and the errors it was raised from (`raise ... from`); an error raised while handling
    another is not caused by it, so a bug in a handler is not mistaken for a network failure."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__


def hub_error_types() -> tuple[type[BaseException], ...]:
    """Exception types raised when the Hub cannot be reached or answers with an HTTP error: the HTTP
    client's transport errors (connection refused, DNS, timeouts), `requests`' connection errors,
    huggingface_hub's HTTP errors and its offline-mode refusal."""
    import requests
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    from .publish.retry import http_library

    return (http_library().TransportError, requests.ConnectionError, requests.Timeout, HfHubHTTPError,
            OfflineModeIsEnabled)


def is_hub_error(err: BaseException) -> bool:
    """Whether `err`, or an error it was raised from, means the Hub could not be reached or refused."""
    types = hub_error_types()
    return any(isinstance(e, types) for e in _causes(err))


def describe(err: BaseException) -> str:
    """`Type: first line of the message`, short enough for a one-line error."""
    lines = str(err).strip().splitlines()
    text = lines[0] if lines else ""
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def what_to_do() -> str:
    """The advice for a Hub that cannot be reached, given the current settings."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set: unset it to reach the Hub, or pass a local folder"
    return (f"check the id, your network and HF_ENDPOINT={constants.ENDPOINT}; for a private or gated repo, "
            "log in with `hf auth login`")
