"""Reaching the Hub for the user: telling a Hub id from a local path, saying what to do when the
Hub cannot be reached, and retrying Hub calls on transient failures.

Sources, students and published datasets may each be a local folder or a Hub id (`org/name`).
`out/scas-qwen` looks like both; `is_local_path` decides before anything goes over the network, so
a mistyped folder is reported as a missing folder instead of as a failed download.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TypeVar

T = TypeVar("T")
logger = logging.getLogger("scas_hub.publish")

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


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


def causes(err: BaseException, *, implicit: bool = False) -> Iterator[BaseException]:
    """`err` and the errors it was raised from (`raise ... from`), each once.

    With `implicit`, also the error being handled when it was raised (`__context__`). Telling a Hub
    failure for the user does not follow those, so a bug in a handler is not mistaken for a network
    failure; deciding whether to retry does, since a client may re-raise without `from`.
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or (current.__context__ if implicit else None)


def hub_error_types() -> tuple[type[BaseException], ...]:
    """Exception types raised when the Hub cannot be reached or answers with an HTTP error: the HTTP
    client's transport errors (connection refused, DNS, timeouts), `requests`' connection errors,
    huggingface_hub's HTTP errors and its offline-mode refusal."""
    import requests
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    return (
        http_library().TransportError,
        requests.ConnectionError,
        requests.Timeout,
        HfHubHTTPError,
        OfflineModeIsEnabled,
    )


def is_hub_error(err: BaseException) -> bool:
    """Whether `err`, or an error it was raised from, means the Hub could not be reached or refused."""
    types = hub_error_types()
    return any(isinstance(e, types) for e in causes(err))


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
    return (
        f"check the id, your network and HF_ENDPOINT={constants.ENDPOINT}; for a private or gated repo, "
        "log in with `hf auth login`"
    )


# Retrying Hub calls on transient failures (429, 5xx, timeouts, dropped connections) with backoff.
# huggingface_hub already retries the preupload, LFS batch/upload and tree-listing requests
# (`http_backoff`, up to 5 retries), but not repo creation, refs, the commit or the tag. Those are
# wrapped here, at the level of one whole call; each is safe to repeat in the push's order (see
# `publish.hub.push_folder`).


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all; waits `base_seconds`, doubling up to `max_seconds` (or the server's Retry-After)."""

    attempts: int = 5
    base_seconds: float = 2.0
    max_seconds: float = 60.0

    @classmethod
    def from_env(cls) -> RetryPolicy:
        """`SCAS_HUB_PUSH_ATTEMPTS` and `SCAS_HUB_PUSH_BACKOFF` (seconds) override the defaults."""
        return cls(
            attempts=int(os.environ.get("SCAS_HUB_PUSH_ATTEMPTS", cls.attempts)),
            base_seconds=float(os.environ.get("SCAS_HUB_PUSH_BACKOFF", cls.base_seconds)),
        )


def http_library() -> ModuleType:
    """The HTTP client huggingface_hub uses, for its exception types: `httpx2` from hub 2.x, `httpx` before."""
    try:
        return importlib.import_module("httpx2")
    except ImportError:  # huggingface_hub 1.x
        return importlib.import_module("httpx")


def transient(err: BaseException) -> tuple[bool, float | None]:
    """Whether `err` (or an error it was raised from) is worth retrying, and the server's Retry-After."""
    from huggingface_hub.errors import HfHubHTTPError

    httpx2 = http_library()

    for e in causes(err, implicit=True):
        if isinstance(e, HfHubHTTPError) and e.response is not None:
            if e.response.status_code in RETRY_STATUS:
                after = e.response.headers.get("Retry-After")
                return True, float(after) if after and after.isdigit() else None
            return False, None
        if isinstance(e, (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError)):
            return True, None
    return False, None


def with_retries(fn: Callable[..., T], *args, what: str, policy: RetryPolicy | None = None, **kwargs) -> T:
    """Call `fn(*args, **kwargs)`, retrying transient Hub failures; the last error propagates."""
    policy = policy or RetryPolicy.from_env()
    wait = policy.base_seconds
    for attempt in range(1, policy.attempts + 1):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            retry, after = transient(err)
            if not retry or attempt == policy.attempts:
                raise
            delay = min(policy.max_seconds, after if after is not None else wait)
            logger.warning(
                "%s failed (%s); retry %d/%d in %.1f s", what, _brief(err), attempt, policy.attempts - 1, delay
            )
            time.sleep(delay)
            wait = min(policy.max_seconds, wait * 2)
    raise AssertionError("unreachable")


def _brief(err: BaseException) -> str:
    for e in causes(err, implicit=True):
        response = getattr(e, "response", None)
        if response is not None:
            return f"HTTP {response.status_code}"
    return type(err).__name__
