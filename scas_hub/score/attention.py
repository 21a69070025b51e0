"""Packed attention: a transformers attention function for the scorer's prompt/answer packs.

A pack is one row `[prompt, answer_1, ..., answer_k, prompt', ...]`. Every answer attends to its
own prompt and to itself, causally, and to nothing else, so each candidate gets exactly the
numbers of its own forward pass while the prompt runs once. The pack's plan is passed to the
decoder as the `scas_layout` keyword, in one of two forms:

- `"sdpa"`: a list of `Call`s, one SDPA kernel call each (prompts causal, long answers causal over
  prompt + answer, short ones masked and grouped); fastest on CPU, where calls are cheap;
- `"flex"`: a `FlexPlan`, one block-sparse flex-attention call per layer over the whole pack
  (compiled on CUDA), for accelerators where a call per answer per layer would be launch-bound.

The engine switches the model's attention implementation to `ATTENTION` only around its own
forward passes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ..errors import StudentError

if TYPE_CHECKING:
    from torch.nn.attention.flex_attention import BlockMask

ATTENTION = "scas_packed"
KERNEL_GQA_DEVICES = frozenset({"cpu"})
"""Device types whose attention kernels take grouped key/value heads directly, masked or not
(elsewhere, e.g. CUDA's masked memory-efficient kernel, heads are repeated first)."""
COMPILED_FLEX_DEVICES = frozenset({"cuda"})
"""Device types where flex attention and its block masks are compiled (elsewhere the reference
form runs: correct, but it materialises whole score matrices)."""
FLEX_BLOCK = 128
"""Packs run under flex attention are padded to a multiple of this (its sparse block size)."""
SOFTCAP_QUERY_BLOCK = 1024
"""Query rows per block on the explicit (soft-capped) path, which materialises its scores."""


@dataclass(frozen=True)
class Call:
    """One attention call over a pack: `queries` rows attend to `keys` rows (both concatenated in
    order); the outputs after the first `skip` query rows are the pack rows `out`."""

    queries: tuple[slice, ...]
    keys: tuple[slice, ...]
    out: slice
    mask: torch.Tensor | None = None
    """(queries, keys) booleans, True = attend; None = plain causal over the square."""
    skip: int = 0


@dataclass(frozen=True)
class FlexPlan:
    """A pack as one flex-attention call per layer: the block mask, and the most keys any row sees."""

    block_mask: BlockMask
    longest: int


def flex_plan(segments: list[tuple[int, int, int]], rows: int, device: torch.device | str) -> FlexPlan:
    """Plan a pack of `segments` `(length, prompt_start, prompt_end)` in row order, padded to `rows`:
    a row sees its own segment causally and its answer's prompt rows (an empty range for prompts).
    Padding rows see only themselves."""
    from torch.nn.attention.flex_attention import create_block_mask

    lengths = torch.tensor([n for n, _, _ in segments] + [1] * (rows - sum(n for n, _, _ in segments)))
    segment = torch.repeat_interleave(torch.arange(len(lengths)), lengths).to(device)
    start = torch.repeat_interleave(
        torch.tensor([s for _, s, _ in segments] + [0] * (len(lengths) - len(segments))), lengths
    ).to(device)
    stop = torch.repeat_interleave(
        torch.tensor([e for _, _, e in segments] + [0] * (len(lengths) - len(segments))), lengths
    ).to(device)

    def mask_mod(b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        return ((segment[q] == segment[kv]) & (kv <= q)) | ((kv >= start[q]) & (kv < stop[q]))

    longest = max(n + e - s for n, s, e in segments)
    compiled = segment.device.type in COMPILED_FLEX_DEVICES  # the eager form materialises (rows, rows) indices
    mask = create_block_mask(mask_mod, None, None, rows, rows, device=device, _compile=compiled)
    return FlexPlan(mask, longest)


@functools.cache
def _flex_kernel(compiled: bool) -> Callable[..., Any]:
    from torch.nn.attention.flex_attention import flex_attention

    if compiled:
        return torch.compile(flex_attention, dynamic=True)
    return flex_attention


@functools.cache
def _softcap_mod(softcap: float) -> Callable[..., torch.Tensor]:
    def score_mod(
        score: torch.Tensor, b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, kv: torch.Tensor
    ) -> torch.Tensor:
        return softcap * torch.tanh(score / softcap)

    return score_mod


def _flex(
    plan: FlexPlan,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    scale: float | None,
    softcap: float | None,
    window: int | None,
) -> torch.Tensor:
    if window and plan.longest > window:
        raise StudentError(
            f"a candidate is longer than this student's sliding attention window ({window} "
            "tokens), which the packed scorer does not implement; pass --max-length"
        )
    kernel = _flex_kernel(query.device.type in COMPILED_FLEX_DEVICES)
    score_mod = None if softcap is None else _softcap_mod(float(softcap))
    out = kernel(
        query,
        key,
        value,
        score_mod=score_mod,
        block_mask=plan.block_mask,
        scale=scale,
        enable_gqa=key.shape[1] != query.shape[1],
    )
    return out.transpose(1, 2).contiguous()


def sdpa_calls(segments: list[tuple[int, int, int]], causal_ratio: float, device: torch.device | str) -> list[Call]:
    """Plan a pack of `segments` `(length, prompt_start, prompt_stop)` in row order (a prompt has an
    empty prompt range) as SDPA calls: each prompt causal; an answer at least `causal_ratio` times
    its prompt with the causal kernel over prompt + answer (prompt rows recomputed, outputs
    dropped); other answers over prompt + themselves with a mask, consecutive short ones grouped
    (at most half a prompt of answer tokens per call) to save calls."""
    calls: list[Call] = []
    groups: list[tuple[slice, int, list[int]]] = []  # (prompt rows, first row, answer lengths)
    row = 0
    for n, start, stop in segments:
        rows, p = slice(row, row + n), stop - start
        if p == 0:
            calls.append(Call((rows,), (rows,), rows))
        elif n >= causal_ratio * p:
            calls.append(Call((slice(start, stop), rows), (slice(start, stop), rows), rows, skip=p))
        elif (
            groups
            and groups[-1][0].start == start
            and groups[-1][1] + sum(groups[-1][2]) == row
            and sum(groups[-1][2]) + n <= p / 2
        ):
            groups[-1][2].append(n)
        else:
            groups.append((slice(start, stop), row, [n]))
        row += n
    for prompt, first, lengths in groups:
        rows = slice(first, first + sum(lengths))
        calls.append(Call((rows,), (prompt, rows), rows, answers_mask(prompt.stop - prompt.start, lengths, device)))
    return calls


def answers_mask(prompt: int, lengths: list[int], device: torch.device | str) -> torch.Tensor:
    """Mask of answers laid out one after another, attending to `[prompt, answers...]`: each
    answer sees the whole prompt and itself, causally, and no other answer."""
    segment = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    row = torch.arange(segment.numel())
    own = (segment[None, :] == segment[:, None]) & (row[None, :] <= row[:, None])
    return torch.cat([torch.ones(len(row), prompt, dtype=torch.bool), own], dim=1).to(device)


def _rows(x: torch.Tensor, parts: tuple[slice, ...]) -> torch.Tensor:
    if len(parts) == 1:
        return x[:, :, parts[0]]
    return torch.cat([x[:, :, s] for s in parts], dim=2)


def _softcapped(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float | None,
    softcap: float,
) -> torch.Tensor:
    """Eager attention with tanh soft-capped scores (Gemma 2), which SDPA kernels do not do:
    `softmax(softcap * tanh(q k^T * scale / softcap))`, float32 softmax, query rows in blocks."""
    if key.shape[1] != query.shape[1]:
        key = key.repeat_interleave(query.shape[1] // key.shape[1], dim=1)
        value = value.repeat_interleave(query.shape[1] // value.shape[1], dim=1)
    scale = query.shape[-1] ** -0.5 if scale is None else scale
    n, offset = query.shape[2], key.shape[2] - query.shape[2]
    out = torch.empty_like(query)
    for i in range(0, n, SOFTCAP_QUERY_BLOCK):
        q = query[:, :, i : i + SOFTCAP_QUERY_BLOCK]
        scores = (q @ key.transpose(-1, -2)).float().mul_(scale / softcap).tanh_().mul_(softcap)
        if mask is None:  # causal, queries being the last rows of the keys
            rows = torch.arange(i, i + q.shape[2], device=query.device)[:, None] + offset
            allowed = torch.arange(key.shape[2], device=query.device)[None, :] <= rows
        else:
            allowed = mask[i : i + q.shape[2]]
        scores.masked_fill_(~allowed, float("-inf"))
        out[:, :, i : i + q.shape[2]] = scores.softmax(dim=-1).to(value.dtype) @ value
    return out


def packed_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention over a pack of prompt/answer segments (transformers attention interface).

    `query` is (1, heads, T, dim), `key`/`value` (1, kv_heads, T, dim), already rotated with the
    per-segment positions; `scas_layout` is the pack's list of `Call`s or its `FlexPlan`."""
    layout: list[Call] | FlexPlan | None = kwargs.get("scas_layout")
    if layout is None:
        raise StudentError(
            "packed attention was called without a pack layout: this architecture does not pass "
            "attention kwargs through its layers"
        )
    window, softcap = kwargs.get("sliding_window"), kwargs.get("softcap")
    if isinstance(layout, FlexPlan):
        return _flex(layout, query, key, value, scaling, softcap, window), None
    gqa = key.shape[1] != query.shape[1]
    if gqa and softcap is None and query.device.type not in KERNEL_GQA_DEVICES:
        key = key.repeat_interleave(query.shape[1] // key.shape[1], dim=1)
        value = value.repeat_interleave(query.shape[1] // value.shape[1], dim=1)
        gqa = False
    out = torch.empty_like(query)
    for call in layout:
        keys = _rows(key, call.keys)
        if window and keys.shape[2] > window:
            raise StudentError(
                f"a candidate is longer than this student's sliding attention window ({window} "
                "tokens), which the packed scorer does not implement; pass --max-length"
            )
        queries, values = _rows(query, call.queries), _rows(value, call.keys)
        if softcap is not None:
            o = _softcapped(queries, keys, values, call.mask, scaling, softcap)
        else:
            o = F.scaled_dot_product_attention(
                queries, keys, values, attn_mask=call.mask, is_causal=call.mask is None, scale=scaling, enable_gqa=gqa
            )
        out[:, :, call.out] = o[:, :, call.skip :]
    return out.transpose(1, 2).contiguous(), None


def register() -> None:
    """Make `ATTENTION` a transformers attention implementation (idempotent)."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION, packed_attention)
