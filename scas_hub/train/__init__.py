"""Train stage: SFT of the student on a curated dataset with TRL, beside the curation pipeline.

from scas_hub.train import TrainConfig, train
result = train("out/scas-smollm2-135m", student="smollm2-135m", out="ckpt", config=TrainConfig(max_steps=10))
result.checkpoint  # a folder transformers loads, and `curate(student=...)` scores with
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import TrainConfig
    from .data import DatasetRef, encode_for_training, open_training_data, to_prompt_completion
    from .run import TrainResult, train

_EXPORTS = {
    name: module
    for module, names in {
        "config": ("TrainConfig",),
        "data": (
            "DatasetRef",
            "encode_for_training",
            "open_training_data",
            "to_prompt_completion",
        ),
        "run": (
            "TrainResult",
            "train",
        ),
    }.items()
    for name in names
}
"""Public name -> submodule; imported on first use (PEP 562), so `scas_hub.train.config` stays light."""

__all__ = [
    "DatasetRef",
    "TrainConfig",
    "TrainResult",
    "encode_for_training",
    "open_training_data",
    "to_prompt_completion",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
