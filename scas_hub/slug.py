"""The one `strategy_slug`: a selection strategy as part of a folder or repo name."""

from __future__ import annotations

import re


def strategy_slug(strategy: str) -> str:
    """`teacher:gpt-4o` -> `teacher-gpt-4o`: a strategy as part of a folder or repo name (datasets,
    ablation arms and checkpoints alike); never `..` or `--` (invalid in a repo id), never empty."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", strategy)
    return re.sub(r"[-.]{2,}", "-", slug).strip("-.") or "strategy"
