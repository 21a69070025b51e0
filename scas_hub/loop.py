"""`from scas_hub.loop import run_rounds` (as the README shows): the loop lives in `scas_hub.rounds.loop`."""

from .rounds.loop import RoundsResult, run_rounds

__all__ = ["RoundsResult", "run_rounds"]
