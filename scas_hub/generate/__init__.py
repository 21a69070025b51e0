"""`scas-hub generate`: teachers' answers from vLLM or OpenAI-compatible endpoints, in the pool's layout.

The names below load on first use (PEP 562), so importing `generate.config` (as the CLI's parser
does) loads no HTTP client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .config import GenerateConfig, RetryPolicy, RoutingConfig

if TYPE_CHECKING:
    from .client import ChatClient, Completion, RequestFailed
    from .run import GenerateResult, Prompt, generate, load_prompts
    from .server import VLLMServer, vllm_python
    from .teachers import Sampling, TeacherSpec, load_teachers_file, parse_teacher

_MODULE_OF = {
    **dict.fromkeys(("ChatClient", "Completion", "RequestFailed"), "client"),
    **dict.fromkeys(("GenerateResult", "Prompt", "generate", "load_prompts"), "run"),
    **dict.fromkeys(("VLLMServer", "vllm_python"), "server"),
    **dict.fromkeys(("Sampling", "TeacherSpec", "load_teachers_file", "parse_teacher"), "teachers"),
}


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)


__all__ = [
    "ChatClient",
    "Completion",
    "GenerateConfig",
    "GenerateResult",
    "Prompt",
    "RequestFailed",
    "RetryPolicy",
    "RoutingConfig",
    "Sampling",
    "TeacherSpec",
    "VLLMServer",
    "generate",
    "load_prompts",
    "load_teachers_file",
    "parse_teacher",
    "vllm_python",
]
