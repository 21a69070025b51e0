"""Greedy, batched decoding of the student's answers: transformers `generate`, or vLLM when installed.

Prompts are rendered with one chat template (the student's own, or `--chat-template`), as
`[system, user]` with the generation prompt, the same messages training and scoring use. Generation
stops at the end of the student's turn: the template's end-of-turn token (found by rendering a
probe conversation) or an EOS id.

Decoding is pinned: every parameter comes from `DecodingConfig.generation_kwargs()`, never from the
model's `generation_config.json` (whose sampling and penalty fields, e.g. Qwen2.5-Instruct's
`repetition_penalty`, would otherwise change the answers of "greedy" decoding).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from tqdm.auto import tqdm

from ..errors import ConfigError, StudentError
from ..student.chat import resolve_chat_template, special_token_ids
from .config import BACKENDS, DecodingConfig  # noqa: F401 (re-exported: their home was this module)

if TYPE_CHECKING:
    from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Generation:
    """One generated answer."""

    text: str
    n_tokens: int | None = None
    stopped: bool | None = None
    """The student ended its turn (False: cut at `max_new_tokens`)."""


Generator = Callable[[Sequence[Messages]], Sequence["Generation | str"]]
"""Conversations `[system, user]` in, one answer per conversation out (what `evaluate` calls)."""


def resolve_backend(backend: str, device: str) -> str:
    """`auto` -> `vllm` when vLLM is installed and the device is a GPU, else `transformers`."""
    if backend == "auto":
        return "vllm" if importlib.util.find_spec("vllm") and str(device).startswith("cuda") else "transformers"
    if backend == "openai":
        raise ConfigError("--backend openai needs --endpoint URL#MODEL (an OpenAIGenerator)")
    if backend == "vllm" and importlib.util.find_spec("vllm") is None:
        raise ConfigError(
            "--backend vllm needs vLLM: pip install vllm (on a CUDA machine), or use --backend transformers"
        )
    return backend


def stop_token_ids(
    tokenizer: PreTrainedTokenizerBase,
    generation_config: GenerationConfig | None = None,
    chat_template: str | None = None,
) -> list[int]:
    """EOS ids of the model and tokenizer, plus the chat template's end-of-turn token.

    The end-of-turn token is the first special token the template (`chat_template`, else the
    tokenizer's own) writes after an assistant message (`<|im_end|>` for ChatML templates,
    `<|eot_id|>` for Llama 3), found by rendering a probe.
    """
    ids: set[int] = set()
    for source in (getattr(generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if source is not None:
            ids.update([source] if isinstance(source, int) else source)
    probe = "scas-hub-probe"
    rendered = cast(
        str,  # untokenized, one conversation renders as one string
        tokenizer.apply_chat_template(
            [{"role": "user", "content": "?"}, {"role": "assistant", "content": probe}],
            tokenize=False,
            chat_template=chat_template,
        ),
    )
    tail = rendered[rendered.rfind(probe) + len(probe) :]
    special = special_token_ids(tokenizer)
    end_of_turn = next((t for t in tokenizer(tail, add_special_tokens=False)["input_ids"] if t in special), None)
    if end_of_turn is not None:
        ids.add(end_of_turn)
    if not ids:
        raise StudentError(
            "the student's tokenizer has no EOS token and its chat template no end-of-turn token: "
            "generation would never stop; set `eos_token` in its tokenizer config"
        )
    return sorted(ids)


def transformers_generation_config(config: DecodingConfig, stop_ids: list[int], pad_id: int) -> GenerationConfig:
    """A fresh `GenerationConfig` with every parameter that shapes greedy decoding set from `config`.

    Temperature, top-k, top-p and min-p only shape sampling, which is off: they stay unset, and while
    `_pinned` holds, `generate` fills them from transformers' neutral defaults, never from the model.
    """
    from transformers import GenerationConfig

    g = config.generation_kwargs()
    return GenerationConfig(
        max_new_tokens=g["max_new_tokens"],
        min_new_tokens=g["min_new_tokens"],
        do_sample=g["do_sample"],
        num_beams=g["num_beams"],
        temperature=None,
        top_p=None,
        top_k=None,
        min_p=None,
        repetition_penalty=g["repetition_penalty"],
        no_repeat_ngram_size=g["no_repeat_ngram_size"],
        length_penalty=g["length_penalty"],
        encoder_repetition_penalty=1.0,
        typical_p=1.0,
        epsilon_cutoff=0.0,
        eta_cutoff=0.0,
        bad_words_ids=None,
        suppress_tokens=None,
        begin_suppress_tokens=None,
        forced_bos_token_id=None,
        forced_eos_token_id=None,
        sequence_bias=None,
        num_return_sequences=1,
        eos_token_id=list(stop_ids),
        pad_token_id=pad_id,
        use_cache=True,
    )


@contextmanager
def _pinned(model: PreTrainedModel, generation_config: GenerationConfig) -> Iterator[None]:
    """While generating, the model's own generation config is `generation_config`: `generate` fills
    unset fields from `model.generation_config`, so it must hold nothing of the checkpoint's."""
    own = model.generation_config
    model.generation_config = generation_config
    try:
        yield
    finally:
        model.generation_config = own


class TransformersGenerator:
    """Greedy decoding with `model.generate`, left-padded batches of similar prompt length."""

    backend = "transformers"

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        config: DecodingConfig,
        *,
        progress: bool = True,
        chat_template: str | None = None,
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = config
        self.progress = progress
        self.chat_template = resolve_chat_template(tokenizer, chat_template)
        self.stop_ids = stop_token_ids(tokenizer, getattr(model, "generation_config", None), self.chat_template)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_ids[0]
        self.pad_id = pad
        self.generation_config = transformers_generation_config(config, self.stop_ids, pad)

    @property
    def parameters(self) -> dict[str, Any]:
        """What `generate` is given (recorded in the report)."""
        keys = (
            "max_new_tokens",
            "min_new_tokens",
            "do_sample",
            "num_beams",
            "temperature",
            "top_p",
            "top_k",
            "repetition_penalty",
            "no_repeat_ngram_size",
            "length_penalty",
            "eos_token_id",
            "pad_token_id",
        )
        return {k: getattr(self.generation_config, k) for k in keys}

    def _encode(self, conversations: Sequence[Messages]) -> list[list[int]]:
        texts = self.tokenizer.apply_chat_template(
            list(conversations), tokenize=False, add_generation_prompt=True, chat_template=self.chat_template
        )
        # the rendered template already holds every special token it wants
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def __call__(self, conversations: Sequence[Messages]) -> list[Generation]:
        import torch

        prompts = self._encode(conversations)
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # long first: memory errors early
        out: list[Generation | None] = [None] * len(prompts)
        device = next(self.model.parameters()).device
        stop = set(self.stop_ids)
        bar = tqdm(total=len(prompts), unit="q", desc="generating", disable=not self.progress)
        try:
            for start in range(0, len(order), self.config.batch_size):
                batch = order[start : start + self.config.batch_size]
                width = max(len(prompts[i]) for i in batch)
                ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):  # left padding: every prompt ends where generation starts
                    ids[row, width - len(prompts[i]) :] = torch.tensor(prompts[i])
                    mask[row, width - len(prompts[i]) :] = 1
                with torch.inference_mode(), _pinned(self.model, self.generation_config):
                    generated = self.model.generate(
                        input_ids=ids.to(device),
                        attention_mask=mask.to(device),
                        generation_config=self.generation_config,
                    )
                for row, i in enumerate(batch):
                    tokens = generated[row, width:].tolist()
                    end = next((k for k, t in enumerate(tokens) if t in stop), None)
                    kept = tokens if end is None else tokens[:end]
                    text = cast(str, self.tokenizer.decode(kept, skip_special_tokens=True))  # one sequence: one str
                    out[i] = Generation(text, len(kept), stopped=end is not None)
                bar.update(len(batch))
        finally:
            bar.close()
        return out  # type: ignore[return-value]


class VLLMGenerator:
    """Greedy decoding with vLLM (temperature 0), same chat template, stop tokens and parameters.

    vLLM is told to ignore the model's `generation_config.json` (`generation_config="vllm"`), and
    every sampling parameter is passed. Not exercised by this project's tests (no GPU and no vLLM on
    the test machines).
    """

    backend = "vllm"

    def __init__(
        self,
        model_path: str,
        tokenizer: PreTrainedTokenizerBase,
        config: DecodingConfig,
        dtype: str,
        *,
        progress: bool = True,
        chat_template: str | None = None,
    ):
        from vllm import LLM, SamplingParams

        self.progress = progress
        self.chat_template = resolve_chat_template(tokenizer, chat_template)
        self.stop_ids = stop_token_ids(tokenizer, chat_template=self.chat_template)
        self.pad_id = tokenizer.pad_token_id
        self.llm = LLM(model=model_path, dtype=dtype, seed=0, generation_config="vllm")
        g = config.generation_kwargs()
        self.sampling = {
            "n": 1,
            "temperature": g["temperature"],
            "top_p": g["top_p"],
            "top_k": -1 if g["top_k"] is None else g["top_k"],
            "min_p": g["min_p"],
            "repetition_penalty": g["repetition_penalty"],
            "presence_penalty": g["presence_penalty"],
            "frequency_penalty": g["frequency_penalty"],
            "max_tokens": g["max_new_tokens"],
            "min_tokens": g["min_new_tokens"],
            "stop_token_ids": list(self.stop_ids),
            "ignore_eos": False,
            "skip_special_tokens": True,
            "seed": 0,
        }
        self.params = SamplingParams(**self.sampling)

    @property
    def parameters(self) -> dict[str, Any]:
        """What `SamplingParams` is given (recorded in the report)."""
        return dict(self.sampling)

    def __call__(self, conversations: Sequence[Messages]) -> list[Generation]:
        outputs = self.llm.chat(
            list(conversations),
            self.params,
            use_tqdm=self.progress,
            add_generation_prompt=True,
            chat_template=self.chat_template,
        )
        return [
            Generation(o.outputs[0].text, len(o.outputs[0].token_ids), o.outputs[0].finish_reason == "stop")
            for o in outputs
        ]
