"""From finished arms to the numbers of `ablation.json`: accuracy with a bootstrap interval over
questions, mean and standard error across seeds, and a paired comparison against the reference arm.

With K seeds, a question's score is the share of the K trained students that answered it
correctly; accuracy is the mean score (= the mean of the per-seed accuracies). The bootstrap
resamples questions (question sampling error); the standard error across seeds measures training
noise. The paired comparison resamples the same questions for both strategies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..evaluate.bootstrap import CONFIDENCE, RESAMPLES, accuracy_interval, paired_difference
from ..evaluate.report import cut_summary
from .arms import ArmResult

REFERENCE = "scas"


def question_scores(arms: Sequence[ArmResult], question_ids: Sequence[str]) -> np.ndarray:
    """Per question (in `question_ids` order), the share of arms that answered it correctly.

    Raises:
        ValueError: an arm was evaluated on other questions (a stale or foreign arm file).
    """
    matrix = []
    for arm in arms:
        correct = {r.question_id: r.correct for r in arm.report.per_question}
        if set(correct) != set(question_ids):
            raise ValueError(f"arm {arm.strategy} seed {arm.seed} was evaluated on other questions")
        matrix.append([float(correct[q]) for q in question_ids])
    return np.mean(np.asarray(matrix), axis=0)


def _stderr(values: Sequence[float]) -> float | None:
    if len(values) < 2:
        return None
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))


def strategy_summary(arms: Sequence[ArmResult], question_ids: Sequence[str], *, seed: int = 0) -> dict[str, Any]:
    """Accuracy, bootstrap interval, per-seed figures and training facts of one strategy's arms."""
    scores = question_scores(arms, question_ids)
    interval = accuracy_interval(scores, seed=seed)
    per_seed = [arm.report.accuracy for arm in arms]
    nll = [arm.report.reference_nll["mean"] for arm in arms if arm.report.reference_nll]
    out: dict[str, Any] = {
        "accuracy": interval.estimate,
        "n_questions": len(question_ids),
        "ci_low": interval.low,
        "ci_high": interval.high,
        "seeds": [arm.seed for arm in arms],
        "accuracy_per_seed": per_seed,
        "seed_mean": float(np.mean(per_seed)),
        "seed_stderr": _stderr(per_seed),
        "reference_nll": float(np.mean(nll)) if nll else None,
    }
    out.update(cut_answers(arms))
    if arms[0].training is not None:
        out["training"] = [arm.training for arm in arms]
    return out


def cut_answers(arms: Sequence[ArmResult]) -> dict[str, Any]:
    """Answers cut at the token limit over all of a strategy's arms, the accuracy on the finished
    ones, and a warning above 10% cut (`evaluate.report.cut_summary`)."""
    results = [r for arm in arms for r in arm.report.per_question]
    cut = sum(r.stopped is False for r in results)
    correct_finished = sum(r.correct for r in results if r.stopped is not False)
    limit = arms[0].report.decoding.get("max_new_tokens")
    summary = cut_summary(len(results), cut, correct_finished, limit)
    return {"answers": len(results), **summary}


def paired_comparison(
    arms: Sequence[ArmResult], reference: Sequence[ArmResult], question_ids: Sequence[str], *, seed: int = 0
) -> dict[str, Any]:
    """`accuracy(arms) - accuracy(reference)` on the same questions, with a paired bootstrap interval,
    and how many questions each side did better on."""
    ours, theirs = question_scores(arms, question_ids), question_scores(reference, question_ids)
    diff = paired_difference(ours, theirs, seed=seed)
    return {
        "difference": diff.estimate,
        "ci_low": diff.low,
        "ci_high": diff.high,
        "questions_better": int(np.sum(ours > theirs)),
        "questions_worse": int(np.sum(ours < theirs)),
        "questions_same": int(np.sum(ours == theirs)),
    }


def summarise(
    arms: dict[str, list[ArmResult]],
    question_ids: Sequence[str],
    *,
    baseline: ArmResult | None = None,
    reference: str = REFERENCE,
    seed: int = 0,
) -> dict[str, Any]:
    """`strategies` (and `baseline`) of `ablation.json`; `vs_<reference>` where the reference ran."""
    strategies = {}
    for name, strategy_arms in arms.items():
        entry = strategy_summary(strategy_arms, question_ids, seed=seed)
        if name != reference and reference in arms:
            entry[f"vs_{reference}"] = paired_comparison(strategy_arms, arms[reference], question_ids, seed=seed)
        strategies[name] = entry
    out: dict[str, Any] = {"strategies": strategies}
    if baseline is not None:
        entry = strategy_summary([baseline], question_ids, seed=seed)
        if reference in arms:
            entry[f"vs_{reference}"] = paired_comparison([baseline], arms[reference], question_ids, seed=seed)
        out["baseline"] = entry
    out["bootstrap"] = {
        "method": "percentile",
        "unit": "questions",
        "confidence": CONFIDENCE,
        "resamples": RESAMPLES,
        "seed": seed,
        "paired": f"against {reference}, same questions",
    }
    return out
