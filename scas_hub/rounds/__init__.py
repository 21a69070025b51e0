"""The rounds loop: score -> select -> train -> score again with the new checkpoint.

`context` carries what a round's dataset records of the rounds so far (`RoundContext`, used by
`pipeline.curate`); `loop` runs the whole loop (`run_rounds`); `eval` evaluates each round's
checkpoint (`rounds --eval`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .context import RoundContext, card_rows

if TYPE_CHECKING:
    from .loop import RoundsResult, run_rounds

__all__ = ["RoundContext", "RoundsResult", "card_rows", "run_rounds"]


def __getattr__(name: str) -> Any:
    # the loop imports the pipeline, which imports `context`: loaded on first use, not with the package
    if name in ("RoundsResult", "run_rounds"):
        from . import loop

        return getattr(loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
