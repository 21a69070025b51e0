"""The distributed state of this process: one process, or a rank of `accelerate launch` (as `trl/distributed.py`)."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from accelerate import PartialState


def distributed_state() -> PartialState:
    """accelerate's `PartialState` for this process, CPU ranks included: `accelerate launch` tells CPU
    ranks apart only through ACCELERATE_USE_CPU (Accelerator reads it too). Scoring, building the
    candidate table, training and the rounds loop all use this one state."""
    from accelerate import PartialState

    on_cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in {"1", "true", "yes"}
    return PartialState(cpu=on_cpu, timeout=timedelta(hours=48))
