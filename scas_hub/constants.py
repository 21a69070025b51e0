"""Defaults and environment-driven settings, in one place."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
"""Used for every row without its own `system`, so no template injects a default for some rows only."""

DEFAULT_LAMBDA = 0.5
DEFAULT_GROUPS = 5
DEFAULT_GROUP = 1
MAX_GROUPS = 10_000
"""Most `--groups`: far more than any question's candidates (groups beyond them are empty), and
small enough that `k * G` stays exact in 64-bit integers."""
DEFAULT_SEED = 42
DEFAULT_STRATEGY = "scas"
DEFAULT_STUDENT = "smollm2-135m"

SCAS_POOL_REPO = "Student-Centric-Answer-Sampling/scas_verified_teacher_pool"
PAPER_URL = "https://arxiv.org/abs/2605.26872"

DEFAULT_CONFIG = "default"
CANDIDATES_CONFIG = "candidates"
STATS_FILENAME = "selection_stats.json"


def cache_dir() -> Path:
    """Where converted students and score caches live (`SCAS_HUB_CACHE`, else the HF cache home)."""
    explicit = os.environ.get("SCAS_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    hf_home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(hf_home) / "scas_hub"


def score_cache_dir() -> Path:
    """Default score cache / resume folder (`SCAS_HUB_SCORE_CACHE`, else `cache_dir()/scores`)."""
    explicit = os.environ.get("SCAS_HUB_SCORE_CACHE")
    return Path(explicit).expanduser() if explicit else cache_dir() / "scores"


def table_cache_dir() -> Path:
    """Where candidate tables live (`SCAS_HUB_TABLE_CACHE`, else `cache_dir()/tables`): one per
    corpus revision, recipe and verification rule, reused by every rerun and every rank."""
    explicit = os.environ.get("SCAS_HUB_TABLE_CACHE")
    return Path(explicit).expanduser() if explicit else cache_dir() / "tables"


def build_processes() -> int:
    """Processes that build a candidate table (`SCAS_HUB_NUM_PROC`, else every core)."""
    explicit = os.environ.get("SCAS_HUB_NUM_PROC")
    return max(1, int(explicit)) if explicit else max(1, os.cpu_count() or 1)
