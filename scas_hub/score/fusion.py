"""Fused elementwise work for the scorer's forward passes (opt-in: `ScoringConfig.compile`).

Between its matmuls a decoder layer makes several memory-bound passes over its activations:
RMSNorm (square, mean, rsqrt, two products) and the gated MLP's `act(gate) * up`. With
`torch.compile` each becomes one fused kernel. Only those pieces are compiled: the linear layers
stay eager, so the feature hook on `up_proj` still fires, and the packed attention is untouched.
The fused forwards are installed on the model's modules for the scorer's own forward passes and
removed afterwards, like the packed attention.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeGuard

import torch

logger = logging.getLogger(__name__)

if TYPE_CHECKING:

    class _GatedMLP(torch.nn.Module):
        """What `_is_gated_mlp` checks a module has (a type only)."""

        gate_proj: torch.nn.Linear
        up_proj: torch.nn.Linear
        down_proj: torch.nn.Linear
        act_fn: Callable[[torch.Tensor], torch.Tensor]


@functools.cache
def _compiled(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    return torch.compile(fn, dynamic=True)


def _act_mul(act: Callable[[torch.Tensor], torch.Tensor], gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return act(gate) * up


def _gated_mlp(mlp: _GatedMLP, x: torch.Tensor) -> torch.Tensor:
    return mlp.down_proj(_compiled(_act_mul)(mlp.act_fn, mlp.gate_proj(x), mlp.up_proj(x)))


def _is_gated_mlp(module: torch.nn.Module) -> TypeGuard[_GatedMLP]:
    return all(
        isinstance(getattr(module, n, None), torch.nn.Linear) for n in ("gate_proj", "up_proj", "down_proj")
    ) and callable(getattr(module, "act_fn", None))


@torch.inference_mode()
def _computes_gated_mlp(mlp: _GatedMLP) -> bool:
    """Whether this MLP class's own forward is `down(act(gate(x)) * up(x))` (checked on a probe)."""
    x = torch.randn(2, 3, mlp.gate_proj.in_features, generator=torch.Generator().manual_seed(0)).to(
        mlp.gate_proj.weight
    )
    want = type(mlp).forward(mlp, x)
    got = mlp.down_proj(_act_mul(mlp.act_fn, mlp.gate_proj(x), mlp.up_proj(x)))
    return want.shape == got.shape and torch.allclose(want.float(), got.float(), rtol=1e-3, atol=1e-5)


def fusible_modules(model: torch.nn.Module) -> list[tuple[torch.nn.Module, Callable[..., Any]]]:
    """(module, fused forward) for every RMSNorm and gated MLP of `model` that has no forward of
    its own already (accelerate's offload hooks, for one, replace `forward` on the instance)."""
    out: list[tuple[torch.nn.Module, Callable[..., Any]]] = []
    checked: dict[type[torch.nn.Module], bool] = {}
    for module in model.modules():
        if "forward" in vars(module):
            continue
        if type(module).__name__.endswith("RMSNorm"):
            out.append((module, functools.partial(_compiled(type(module).forward), module)))
        elif _is_gated_mlp(module):
            if type(module) not in checked:
                checked[type(module)] = _computes_gated_mlp(module)
            if checked[type(module)]:
                out.append((module, functools.partial(_gated_mlp, module)))
    return out


@contextmanager
def fused(modules: list[tuple[torch.nn.Module, Callable[..., Any]]]) -> Iterator[None]:
    """Install the fused forwards for the duration of the block; the modules get their own back."""
    for module, forward in modules:
        module.forward = forward
    try:
        yield
    finally:
        for module, _ in modules:
            del module.forward
