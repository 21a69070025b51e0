"""`evaluate --backend openai --endpoint URL#MODEL`: greedy answers from an OpenAI-compatible server.

The student is served elsewhere (vLLM, SGLang, TGI: `vllm serve <student>`); its chat template
and stop tokens are the server's. Every request carries the same pinned settings, recorded in the
report as `backend_parameters`: temperature 0, top_p 1, a fixed seed, one answer, and
`DecodingConfig.max_new_tokens` as `max_tokens`. `backend_differences` lists, per question, where
two reports (say this backend and transformers) answered differently.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from ..errors import ConfigError
from .generate import DecodingConfig, Generation, Messages

if TYPE_CHECKING:
    from ..generate.client import ChatClient

GREEDY_SEED = 0


def parse_endpoint(endpoint: str) -> tuple[str, str]:
    """`http://host:port/v1#MODEL` -> (base URL, model).

    Raises:
        ConfigError: no `#MODEL`, or not an http(s) URL.
    """
    url, sep, model = endpoint.removeprefix("openai:").rpartition("#")
    if not sep or not model or not url.startswith(("http://", "https://")):
        raise ConfigError(f"--endpoint {endpoint!r}: write URL#MODEL, e.g. http://127.0.0.1:8000/v1#my-student")
    return url.rstrip("/"), model


class OpenAIGenerator:
    """Greedy decoding through `/v1/chat/completions` of an OpenAI-compatible server (see the module docstring)."""

    backend = "openai"

    def __init__(
        self,
        endpoint: str,
        config: DecodingConfig,
        *,
        api_key_env: str | None = None,
        concurrency: int = 8,
        timeout: float = 600.0,
        progress: bool = True,
    ):
        self.url, self.model = parse_endpoint(endpoint)
        self._key = None
        if api_key_env:
            self._key = os.environ.get(api_key_env)
            if not self._key:
                raise ConfigError(f"environment variable {api_key_env} (--api-key-env) is not set")
        self.concurrency = max(1, concurrency)
        self.timeout = timeout
        self.progress = progress
        pinned = config.generation_kwargs()
        self.parameters: dict[str, Any] = {
            "endpoint": self.url,
            "model": self.model,
            "max_tokens": config.max_new_tokens,
            "temperature": pinned.get("temperature", 0.0),
            "top_p": pinned.get("top_p", 1.0),
            "seed": GREEDY_SEED,
            "n": 1,
            "frequency_penalty": pinned["frequency_penalty"],
            "presence_penalty": pinned["presence_penalty"],
            "api_key_env": api_key_env,
            "chat_template": "the server's (the served model's own)",
        }

    def _ask(self, client: ChatClient, messages: Messages) -> Generation:
        from ..generate.client import RequestFailed

        payload = {
            k: self.parameters[k]
            for k in (
                "model",
                "max_tokens",
                "temperature",
                "top_p",
                "seed",
                "n",
                "frequency_penalty",
                "presence_penalty",
            )
        }
        try:
            answer = client.chat({**payload, "messages": messages})
        except RequestFailed as err:
            raise ConfigError(
                f"the endpoint {self.url} did not answer ({err}); is the student served there as {self.model!r}?"
            ) from err
        return Generation(answer.text, answer.completion_tokens, stopped=answer.finish_reason == "stop")

    def __call__(self, conversations: Sequence[Messages]) -> list[Generation]:
        from ..generate.client import ChatClient, RetryPolicy

        bar = tqdm(total=len(conversations), unit="q", desc="generating (openai)", disable=not self.progress)
        try:
            with (
                ChatClient(self.url, self._key, RetryPolicy(timeout=self.timeout), self.concurrency) as client,
                ThreadPoolExecutor(max_workers=self.concurrency) as pool,
            ):
                out = []
                for generation in pool.map(lambda messages: self._ask(client, messages), conversations):
                    out.append(generation)
                    bar.update(1)
                return out
        finally:
            bar.close()


def backend_differences(reports: dict[str, Any], reference: str = "transformers") -> list[dict[str, Any]]:
    """Per question, the backends whose answer differs from `reference`'s (EvalReports by backend name).

    Returns one entry per differing question: its id, the reference answer text, and for each
    differing backend its answer, whether it was graded correct, and the first character where the
    two texts part (small float differences in long greedy answers show as a late split).
    """
    base = {r.question_id: r for r in reports[reference].per_question}
    out = []
    for qid, ref in base.items():
        differing = {}
        for name, report in reports.items():
            if name == reference:
                continue
            other = next((r for r in report.per_question if r.question_id == qid), None)
            if other is None or other.generated == ref.generated:
                continue
            split = next(
                (i for i, (a, b) in enumerate(zip(ref.generated, other.generated, strict=False)) if a != b),
                min(len(ref.generated), len(other.generated)),
            )
            differing[name] = {"generated": other.generated, "correct": other.correct, "first_difference_at": split}
        if differing:
            out.append(
                {
                    "question_id": qid,
                    reference: ref.generated,
                    f"{reference}_correct": ref.correct,
                    "backends": differing,
                }
            )
    return out
