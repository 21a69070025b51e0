"""Packed attention: a transformers attention function for the scorer's prompt/answer packs.

A pack is one row `[prompt, answer_1, ..., answer_k, prompt', ...]`. Every answer attends to its
own prompt and to itself, causally, and to nothing else, so each candidate gets exactly the
numbers of its own forward pass while the prompt runs once. The pack's plan is a list of `Call`s,
passed to the decoder as the `scas_layout` keyword; the engine switches the model's attention
implementation to `ATTENTION` only around its own forward passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import StudentError

ATTENTION = "scas_packed"
KERNEL_GQA_DEVICES = frozenset({"cpu"})
"""Device types whose attention kernels take grouped key/value heads directly, masked or not
(elsewhere, e.g. CUDA's masked memory-efficient kernel, heads are repeated first)."""
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


def answers_mask(prompt: int, lengths: list[int], device) -> torch.Tensor:
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


def _softcapped(query, key, value, mask, scale: float | None, softcap: float) -> torch.Tensor:
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


def packed_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention over a pack of prompt/answer segments (transformers attention interface).

    `query` is (1, heads, T, dim), `key`/`value` (1, kv_heads, T, dim), already rotated with the
    per-segment positions; `scas_layout` is the pack's list of `Call`s."""
    layout: list[Call] | None = kwargs.get("scas_layout")
    if layout is None:
        raise StudentError("packed attention was called without a pack layout: this architecture does not pass "
                           "attention kwargs through its layers")
    window, softcap = kwargs.get("sliding_window"), kwargs.get("softcap")
    gqa = key.shape[1] != query.shape[1]
    if gqa and softcap is None and query.device.type not in KERNEL_GQA_DEVICES:
        key = key.repeat_interleave(query.shape[1] // key.shape[1], dim=1)
        value = value.repeat_interleave(query.shape[1] // value.shape[1], dim=1)
        gqa = False
    out = torch.empty_like(query)
    for call in layout:
        keys = _rows(key, call.keys)
        if window and keys.shape[2] > window:
            raise StudentError(f"a candidate is longer than this student's sliding attention window ({window} "
                               "tokens), which the packed scorer does not implement; pass --max-length")
        queries, values = _rows(query, call.queries), _rows(value, call.keys)
        if softcap is not None:
            o = _softcapped(queries, keys, values, call.mask, scaling, softcap)
        else:
            o = F.scaled_dot_product_attention(queries, keys, values, attn_mask=call.mask,
                                               is_causal=call.mask is None, scale=scaling, enable_gqa=gqa)
        out[:, :, call.out] = o[:, :, call.skip :]
    return out.transpose(1, 2).contiguous(), None


def register() -> None:
    """Make `ATTENTION` a transformers attention implementation (idempotent)."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION, packed_attention)
