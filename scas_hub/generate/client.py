"""A small client of OpenAI-compatible chat completions, with retries.

429, 5xx, timeouts and dropped connections are retried with exponential backoff (a server's
`Retry-After` is honoured up to `max_backoff`); other 4xx answers are final. A request that still
fails raises `RequestFailed` with a short reason (`http_429`, `http_500`, `timeout`, `connection`,
`bad_response`, ...), which the run counts per teacher. The API key goes only into the
`Authorization` header; nothing here logs it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx

from .config import RetryPolicy

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


class RequestFailed(Exception):
    """A request that failed for good; `reason` is what the run counts."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Completion:
    """One answer of a chat completion."""

    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None


class ChatClient:
    """Chat completions against one base URL (`.../v1`); thread-safe (one pooled httpx client)."""

    def __init__(
        self, base_url: str, api_key: str | None = None, policy: RetryPolicy | None = None, max_connections: int = 16
    ):
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(self.policy.timeout, connect=min(30.0, self.policy.timeout)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def chat(self, payload: dict[str, Any]) -> Completion:
        """POST `/chat/completions`, retried per the policy.

        Raises:
            RequestFailed: every try failed, or the server refused the request.
        """
        policy = self.policy
        last = RequestFailed("no_try")
        for attempt in range(policy.retries + 1):
            wait = min(policy.max_backoff, policy.backoff * 2**attempt)
            try:
                response = self._http.post(f"{self.base_url}/chat/completions", json=payload)
            except httpx.TimeoutException as err:
                last = RequestFailed("timeout", type(err).__name__)
            except httpx.TransportError as err:  # refused, reset, dropped mid-response
                last = RequestFailed("connection", type(err).__name__)
            else:
                if response.status_code == 200:
                    try:
                        return _completion(response.json())
                    except (ValueError, KeyError, IndexError, TypeError) as err:
                        last = RequestFailed("bad_response", str(err)[:200])
                else:
                    last = RequestFailed(f"http_{response.status_code}", _error_message(response))
                    if response.status_code not in RETRY_STATUSES:
                        raise last
                    retry_after = response.headers.get("Retry-After")
                    if retry_after and retry_after.replace(".", "", 1).isdigit():
                        wait = min(policy.max_backoff, max(wait, float(retry_after)))
            if attempt < policy.retries:
                time.sleep(wait)
        raise last


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", {}).get("message", ""))[:200]
    except ValueError:
        return response.text[:200]


def _completion(body: dict[str, Any]) -> Completion:
    choice = body["choices"][0]
    text = choice["message"]["content"]
    if not isinstance(text, str):
        raise TypeError("the answer has no text content")
    usage = body.get("usage") or {}
    return Completion(text, choice.get("finish_reason"), usage.get("prompt_tokens"), usage.get("completion_tokens"))
