"""How answers are decoded: `DecodingConfig`, importable without torch (the CLI builds flags from it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError

BACKENDS = ("auto", "transformers", "vllm", "openai")
DTYPE_NAMES = ("float32", "bfloat16", "float16")
"""The dtypes a student runs in (`score.engine.DTYPES` maps them to torch's), besides `auto`."""


@dataclass(frozen=True)
class DecodingConfig:
    """How answers are generated; recorded in every report so a run can be repeated exactly."""

    max_new_tokens: int = field(default=1024, metadata={"help": "most tokens generated per answer"})
    batch_size: int = field(default=16, metadata={"help": "prompts per generate call (transformers backend)"})
    """Prompts per `generate` call (transformers; vLLM schedules its own batches)."""
    backend: str = field(
        default="auto",
        metadata={"help": "auto: vLLM when installed and on a GPU, else transformers", "choices": list(BACKENDS)},
    )
    """`auto`: vLLM when it is installed and a GPU is there, else transformers."""
    dtype: str = field(
        default="auto",
        metadata={
            "help": "weights and activations while decoding; auto = bfloat16 on CUDA, float32 otherwise",
            "choices": ["auto", *DTYPE_NAMES],
        },
    )
    """`auto`: bfloat16 on CUDA, float32 elsewhere."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ConfigError("--max-new-tokens and --batch-size must be at least 1")

    def generation_kwargs(self) -> dict[str, Any]:
        """Every decoding parameter, explicit and backend-neutral: greedy, no penalty, no length floor.

        Each backend maps these onto its own parameters (transformers `GenerationConfig`, vLLM
        `SamplingParams`, ...) and takes nothing from the model's `generation_config.json`.
        """
        return {
            "max_new_tokens": self.max_new_tokens,
            "min_new_tokens": 0,
            "do_sample": False,
            "num_beams": 1,
            "temperature": 0.0,
            "top_p": 1.0,
            "top_k": None,
            "min_p": 0.0,
            "repetition_penalty": 1.0,
            "presence_penalty": 0.0,
            "frequency_penalty": 0.0,
            "no_repeat_ngram_size": 0,
            "length_penalty": 1.0,
        }

    def to_dict(self) -> dict:
        return {
            "strategy": "greedy",
            "do_sample": False,
            "num_beams": 1,
            **asdict(self),
            "padding_side": "left",
            "generation": self.generation_kwargs(),
        }
