"""Retry Hub calls on transient failures (429, 5xx, timeouts, dropped connections) with backoff.

huggingface_hub already retries the preupload, LFS batch/upload and tree-listing requests
(`http_backoff`, up to 5 retries), but not repo creation, refs, the commit or the tag. Those are
wrapped here, at the level of one whole call; each is safe to repeat in the push's order (see
`hub.push_folder`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
logger = logging.getLogger("scas_hub.publish")

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all; waits `base_seconds`, doubling up to `max_seconds` (or the server's Retry-After)."""

    attempts: int = 5
    base_seconds: float = 2.0
    max_seconds: float = 60.0

    @classmethod
    def from_env(cls) -> RetryPolicy:
        """`SCAS_HUB_PUSH_ATTEMPTS` and `SCAS_HUB_PUSH_BACKOFF` (seconds) override the defaults."""
        return cls(attempts=int(os.environ.get("SCAS_HUB_PUSH_ATTEMPTS", cls.attempts)),
                   base_seconds=float(os.environ.get("SCAS_HUB_PUSH_BACKOFF", cls.base_seconds)))


def _causes(err: BaseException):
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def http_library():
    """The HTTP client huggingface_hub uses, for its exception types: `httpx2` from hub 2.x, `httpx` before."""
    try:
        import httpx2
    except ImportError:  # huggingface_hub 1.x
        import httpx as httpx2
    return httpx2


def transient(err: BaseException) -> tuple[bool, float | None]:
    """Whether `err` (or an error it was raised from) is worth retrying, and the server's Retry-After."""
    from huggingface_hub.errors import HfHubHTTPError

    httpx2 = http_library()

    for e in _causes(err):
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
            logger.warning("%s failed (%s); retry %d/%d in %.1f s", what, _brief(err), attempt,
                           policy.attempts - 1, delay)
            time.sleep(delay)
            wait = min(policy.max_seconds, wait * 2)
    raise AssertionError("unreachable")


def _brief(err: BaseException) -> str:
    for e in _causes(err):
        response = getattr(e, "response", None)
        if response is not None:
            return f"HTTP {response.status_code}"
    return type(err).__name__
