"""Greedy, batched decoding of the student's answers: transformers `generate`, or vLLM when installed.

Prompts are rendered with the student's own chat template, as `[system, user]` with the generation
prompt, the same messages training and scoring use. Generation stops at the end of the student's
turn: the template's end-of-turn token (found by rendering a probe conversation) or an EOS id.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from tqdm.auto import tqdm

from ..errors import ConfigError, StudentError
from ..score.regions import special_token_ids

BACKENDS = ("auto", "transformers", "vllm", "openai")

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class DecodingConfig:
    """How answers are generated; recorded in every report so a run can be repeated exactly."""

    max_new_tokens: int = 1024
    batch_size: int = 16
    """Prompts per `generate` call (transformers; vLLM schedules its own batches)."""
    backend: str = "auto"
    """`auto`: vLLM when it is installed and a GPU is there, else transformers."""
    dtype: str = "auto"
    """`auto`: bfloat16 on CUDA, float32 elsewhere."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ConfigError("--max-new-tokens and --batch-size must be at least 1")

    def to_dict(self) -> dict:
        return {"strategy": "greedy", "do_sample": False, "num_beams": 1, **asdict(self), "padding_side": "left"}


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
        raise ConfigError("--backend vllm needs vLLM: pip install vllm (on a CUDA machine), "
                          "or use --backend transformers")
    return backend


def stop_token_ids(tokenizer, generation_config=None) -> list[int]:
    """EOS ids of the model and tokenizer, plus the chat template's end-of-turn token.

    The end-of-turn token is the first special token the template writes after an assistant
    message (`<|im_end|>` for ChatML templates, `<|eot_id|>` for Llama 3), found by rendering a probe.
    """
    ids: set[int] = set()
    for source in (getattr(generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if source is not None:
            ids.update([source] if isinstance(source, int) else source)
    probe = "scas-hub-probe"
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "?"}, {"role": "assistant", "content": probe}], tokenize=False)
    tail = rendered[rendered.rfind(probe) + len(probe):]
    special = special_token_ids(tokenizer)
    end_of_turn = next((t for t in tokenizer(tail, add_special_tokens=False)["input_ids"] if t in special), None)
    if end_of_turn is not None:
        ids.add(end_of_turn)
    if not ids:
        raise StudentError("the student's tokenizer has no EOS token and its chat template no end-of-turn token: "
                           "generation would never stop; set `eos_token` in its tokenizer config")
    return sorted(ids)


class TransformersGenerator:
    """Greedy decoding with `model.generate`, left-padded batches of similar prompt length."""

    def __init__(self, model, tokenizer, config: DecodingConfig, *, progress: bool = True):
        from transformers import GenerationConfig

        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = config
        self.progress = progress
        self.stop_ids = stop_token_ids(tokenizer, getattr(model, "generation_config", None))
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_ids[0]
        self.pad_id = pad
        self.generation_config = GenerationConfig(max_new_tokens=config.max_new_tokens, do_sample=False, num_beams=1,
                                                   eos_token_id=self.stop_ids, pad_token_id=pad)

    def _encode(self, conversations: Sequence[Messages]) -> list[list[int]]:
        texts = self.tokenizer.apply_chat_template(list(conversations), tokenize=False, add_generation_prompt=True)
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
                batch = order[start:start + self.config.batch_size]
                width = max(len(prompts[i]) for i in batch)
                ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):  # left padding: every prompt ends where generation starts
                    ids[row, width - len(prompts[i]):] = torch.tensor(prompts[i])
                    mask[row, width - len(prompts[i]):] = 1
                with torch.inference_mode():
                    generated = self.model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                                    generation_config=self.generation_config)
                for row, i in enumerate(batch):
                    tokens = generated[row, width:].tolist()
                    end = next((k for k, t in enumerate(tokens) if t in stop), None)
                    kept = tokens if end is None else tokens[:end]
                    text = self.tokenizer.decode(kept, skip_special_tokens=True)
                    out[i] = Generation(text, len(kept), stopped=end is not None)
                bar.update(len(batch))
        finally:
            bar.close()
        return out  # type: ignore[return-value]


class VLLMGenerator:
    """Greedy decoding with vLLM (temperature 0), same chat template and stop tokens.

    Not exercised by this project's tests (no GPU and no vLLM on the test machines).
    """

    def __init__(self, model_path: str, tokenizer, config: DecodingConfig, dtype: str, *, progress: bool = True):
        from vllm import LLM, SamplingParams

        self.progress = progress
        self.stop_ids = stop_token_ids(tokenizer)
        self.llm = LLM(model=model_path, dtype=dtype, seed=0)
        self.params = SamplingParams(temperature=0.0, max_tokens=config.max_new_tokens, stop_token_ids=self.stop_ids)

    def __call__(self, conversations: Sequence[Messages]) -> list[Generation]:
        outputs = self.llm.chat(list(conversations), self.params, use_tqdm=self.progress, add_generation_prompt=True)
        return [Generation(o.outputs[0].text, len(o.outputs[0].token_ids), o.outputs[0].finish_reason == "stop")
                for o in outputs]
