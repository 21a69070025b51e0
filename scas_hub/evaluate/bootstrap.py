"""Bootstrap intervals over questions (scipy's percentile bootstrap), for one accuracy and for a paired difference.

Inputs are per-question scores in [0, 1]: 0/1 correctness, or the share of seeds that answered a
question correctly. Resampling whole questions keeps each question's seeds together, and pairing
two strategies on the same resampled questions is what makes their difference's interval narrow
when they succeed and fail on the same questions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 10_000


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float | None
    high: float | None
    """None when there are too few questions (fewer than 2) for an interval."""


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def _bootstrap(
    data: tuple[np.ndarray, ...],
    statistic: Callable[..., np.ndarray],
    paired: bool,
    confidence: float,
    resamples: int,
    seed: int,
) -> tuple[float | None, float | None]:
    from scipy.stats import bootstrap

    if len(data[0]) < 2:
        return None, None
    result = bootstrap(
        data,
        statistic,
        paired=paired,
        vectorized=True,
        confidence_level=confidence,
        n_resamples=resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def accuracy_interval(
    scores: Sequence[float] | np.ndarray, *, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = 0
) -> Interval:
    """Accuracy (mean score) with a percentile bootstrap interval over questions."""
    x = np.asarray(scores, dtype=float)
    if x.size == 0:
        raise ValueError("no questions to bootstrap over")
    low, high = _bootstrap((x,), _mean, False, confidence, resamples, seed)
    return Interval(float(x.mean()), low, high)


def paired_difference(
    scores: Sequence[float] | np.ndarray,
    baseline: Sequence[float] | np.ndarray,
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Interval:
    """`mean(scores) - mean(baseline)` on the same questions, with a paired bootstrap interval."""
    x, y = np.asarray(scores, dtype=float), np.asarray(baseline, dtype=float)
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"paired scores need the same questions: {x.shape} against {y.shape}")
    low, high = _bootstrap((x, y), _mean_difference, True, confidence, resamples, seed)
    return Interval(float(x.mean() - y.mean()), low, high)
