"""Render candidates with the student's chat template and find the Q and A token regions.

Q = positions [0, n_prompt), A = [n_prompt, n_full); special tokens belong to neither.
`n_prompt` is the length of the generation prompt's tokens, or of the longest common prefix with
the full conversation when the prompt is not a prefix (some templates rewrite earlier turns).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from ..errors import StudentError
from ..records import Candidate


@dataclass(frozen=True)
class EncodedCandidate:
    """Token ids of one rendered conversation and where its answer starts."""

    input_ids: list[int]
    n_prompt: int
    answer_content_ids: tuple[int, ...] = ()
    """The answer text tokenized alone, to tell empty or control-token-only answers apart."""

    @property
    def prefix(self) -> tuple[int, ...]:
        return tuple(self.input_ids[: self.n_prompt])

    @property
    def answer_ids(self) -> list[int]:
        return self.input_ids[self.n_prompt :]


def chat_template_sha256(tokenizer, chat_template: str | None = None) -> str | None:
    """SHA-256 of the chat template that renders conversations (`chat_template`, else the tokenizer's).

    Scoring and training must render with the same template; datasets and checkpoints record this hash.
    """
    template = chat_template if chat_template is not None else getattr(tokenizer, "chat_template", None)
    if not template:
        return None
    return hashlib.sha256(template.encode("utf-8")).hexdigest()


def special_token_ids(tokenizer) -> set[int]:
    """All ids the tokenizer treats as special (declared specials and special added tokens)."""
    ids = set(tokenizer.all_special_ids)
    for token_id, added in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(added, "special", False):
            ids.add(int(token_id))
    return ids


def special_mask(input_ids: torch.Tensor, special_ids: torch.Tensor) -> torch.Tensor:
    """Boolean mask of positions holding a special token."""
    return torch.isin(input_ids, special_ids)


def common_prefix_length(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class ChatEncoder:
    """Turns candidates into `EncodedCandidate`s with one tokenizer's chat template."""

    def __init__(self, tokenizer, chat_template: str | None = None):
        if chat_template is None and not getattr(tokenizer, "chat_template", None):
            raise StudentError(
                "The student's tokenizer has no chat template; pass --chat-template FILE "
                "or use a student that ships one (e.g. an -Instruct model)."
            )
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self._prompt_cache: dict[tuple[str, str], list[int]] = {}

    def _render(self, conversations: list[list[dict[str, str]]], add_generation_prompt: bool) -> list[str]:
        return self.tokenizer.apply_chat_template(
            conversations,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            chat_template=self.chat_template,
        )

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        # the rendered template already holds every special token it wants
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def encode(self, candidates: list[Candidate]) -> list[EncodedCandidate]:
        """Encode a batch of candidates (batched rendering and tokenization)."""
        if not candidates:
            return []
        full = self._tokenize(self._render([c.messages() for c in candidates], False))
        missing = {}
        for c in candidates:
            key = (c.system_prompt, c.instruction)
            if key not in self._prompt_cache and key not in missing:
                missing[key] = c
        if missing:
            keys = list(missing)
            prompts = self._tokenize(self._render([missing[k].prompt_messages() for k in keys], True))
            self._prompt_cache.update(zip(keys, prompts, strict=True))
        contents = self._tokenize([c.answer for c in candidates])
        out = []
        for c, ids, content in zip(candidates, full, contents, strict=True):
            prompt = self._prompt_cache[(c.system_prompt, c.instruction)]
            n_prompt = len(prompt) if ids[: len(prompt)] == prompt else common_prefix_length(prompt, ids)
            out.append(EncodedCandidate(input_ids=list(ids), n_prompt=n_prompt, answer_content_ids=tuple(content)))
        return out

    def clear_cache(self) -> None:
        self._prompt_cache.clear()
