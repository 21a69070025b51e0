"""What pins a run so it can be repeated: library versions, hardware, the exact command, the time.

The one place these facts are taken, for every record the package writes (dataset stats, training
facts, evaluation and ablation reports).
"""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version

LIBRARIES = (
    "scas-hub",
    "torch",
    "transformers",
    "datasets",
    "huggingface_hub",
    "accelerate",
    "trl",
    "math-verify",
    "vllm",
    "numpy",
    "scipy",
)


def library_versions(names: tuple[str, ...] | list[str] = LIBRARIES) -> dict[str, str]:
    """Installed versions of the libraries a result depends on (absent ones are left out)."""
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def version_lines(names: tuple[str, ...] | list[str]) -> list[str]:
    """`["scas-hub 0.1.0", "torch 2.x", ...]`: the versions of `names`, in order (absent ones left out)."""
    versions = library_versions(names)
    return [f"{name} {versions[name]}" for name in names if name in versions]


def hardware(device: str | None) -> str:
    """`<GPU name> xN` for a CUDA device, else `CPU (<machine>, <n> cores)`."""
    if device and str(device).startswith("cuda"):
        import torch

        return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores)"


def api_call(function: str, **kwargs) -> str:
    """`scas_hub.evaluate(student='x', ...)`: how a Python API call is recorded (None values left out)."""
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if v is not None)
    return f"{function}({args})"


def now() -> str:
    """The current UTC time, as records show it."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
