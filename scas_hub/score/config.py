"""How the student runs while scoring: `ScoringConfig`, importable without torch (the CLI builds flags from it)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

ATTENTION_MODES = ("sdpa", "flex")
"""How packs attend (`score.attention`): one kernel call per answer, or one block-sparse call per layer."""


@dataclass
class ScoringConfig:
    """How to run the student; none of these change the proxy's definition."""

    token_budget: int | None = field(
        default=None, metadata={"help": "tokens per (packed) forward pass (default: 4096 on CPU, 16384 on GPU)"}
    )
    """Tokens per forward pass (packed, no padding; a single longer candidate still runs, alone).
    Default: 4096 on CPU (activations stay in cache), 16384 on accelerators."""
    window_chars: int = field(
        default=262_144,
        metadata={"help": "characters of candidate text per scheduling window (the unit of sharding and resume)"},
    )
    """Characters of candidate text per scheduling window (about 64k tokens). Windows depend on
    the corpus alone, so a window is scored the same way whatever the number of processes or the
    cache state."""
    max_length: int | None = field(
        default=None, metadata={"help": "skip candidates longer than this many tokens (default: no limit)"}
    )
    """Skip (and count) candidates whose rendered conversation has more tokens than this."""
    truncate: bool = field(default=False, metadata={"help": "score the first --max-length tokens instead of skipping"})
    """With `max_length`: score a longer candidate's first `max_length` tokens instead (counted)."""
    feature_module: str | None = field(
        default=None,
        metadata={
            "help": "dotted path of the module whose output is the token feature; {layer} is replaced "
            "(default: model.layers.{layer}.mlp.up_proj)",
            "metavar": "PATH",
        },
    )
    """Dotted path of the feature module; `{layer}` is replaced by `feature_layer`."""
    feature_layer: int | None = field(
        default=None,
        metadata={"help": "decoder layer of the feature module, 0-based (default: the last)", "metavar": "L"},
    )
    """Decoder layer whose MLP up-projection gives the features (default: the last)."""
    causal_ratio: float = 3.0
    """Answers at least this many times longer than their prompt attend with the fused causal
    kernel over prompt + answer (recomputing the prompt's attention rows, cheaper than a masked
    kernel at that length); shorter ones attend through a mask over prompt + answer."""
    compile: bool = field(
        default=False,
        metadata={"help": "fuse the student's norms and MLP activations with torch.compile (seconds of warm-up)"},
    )
    """Fuse the student's RMSNorms and gated-MLP activations with `torch.compile` (a warm-up of
    seconds; needs a C++ compiler on CPU, Triton on GPU; scoring goes on unfused if compiling fails)."""
    attention: str = field(
        default="sdpa",
        metadata={
            "help": "packed attention: a kernel call per answer (sdpa, best on CPU) or one block-sparse "
            "flex-attention call per layer (flex, compiled on CUDA); same scores",
            "choices": list(ATTENTION_MODES),
        },
    )
    """How packs attend: "sdpa" (a kernel call per prompt and answer or group of short answers;
    best on CPU) or "flex" (one block-sparse flex-attention call per layer, compiled on CUDA; for
    accelerators, where per-answer calls would be launch-bound). Same numbers either way."""
    lm_head_block_bytes: int | None = None
    """Float32 logits held at once by the blocked LM head (default: 4 MiB on CPU, to stay in
    cache; 512 MiB on accelerators, for few large kernels)."""
    progress: bool = True
    chat_template: str | os.PathLike | None = None
    """A Jinja chat template overriding the student's own (`--chat-template FILE`): its text, or a
    path to a file (read here). Changes the scores: the score cache key covers it."""
    score_cache: str | Path | bool | None = field(
        default=True,
        metadata={
            "help": "score cache / resume folder (default: under $SCAS_HUB_CACHE or $HF_HOME/scas_hub)",
            "metavar": "DIR",
        },
    )
    """Where scores are cached: `True` the default folder under the scas-hub cache, a folder, or
    `False`/`None` for no cache (and no resume). Reruns and resumed runs score only the candidates
    missing from it."""

    @property
    def chat_template_text(self) -> str | None:
        """The overriding template's text (a path given is read when the config is made), or None."""
        assert self.chat_template is None or isinstance(self.chat_template, str), "read in __post_init__"
        return self.chat_template

    def __post_init__(self) -> None:
        if self.chat_template is not None:
            from ..student.chat import read_chat_template

            self.chat_template = read_chat_template(self.chat_template)
        if self.truncate and self.max_length is None:
            raise ConfigError("--truncate needs --max-length N: the number of tokens to keep")
        if (self.token_budget is not None and self.token_budget < 1) or self.window_chars < 1:
            raise ConfigError("--token-budget and --window-chars must be positive")
        if self.causal_ratio < 0:
            raise ConfigError("causal_ratio must be >= 0")
        if self.attention not in ATTENTION_MODES:
            raise ConfigError(f"--attention must be one of {', '.join(ATTENTION_MODES)}, not {self.attention!r}")
