"""`scas-hub generate`: teachers' answers from vLLM or OpenAI-compatible endpoints, in the pool's layout."""

from .client import ChatClient, Completion, RequestFailed, RetryPolicy
from .routing import RoutingConfig
from .run import GenerateConfig, GenerateResult, Prompt, generate, load_prompts
from .server import VLLMServer, vllm_python
from .teachers import Sampling, TeacherSpec, load_teachers_file, parse_teacher

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
