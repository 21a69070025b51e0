"""The SCAS proxy's torch reductions: tensors in, numbers out (the formula itself: `scas_hub.proxy`).

For a candidate answer A to a question Q, with per-token NLL `l_t` and unit features
`u_t = h_t / ||h_t||` (output of the last decoder layer's MLP up-projection):

    l_A = mean NLL over A,  l_Q = mean NLL over Q (position 0 excluded)
    sim_AA = mean cosine over all A x A pairs (diagonal included) = ||mean_A u||^2
    sim_AQ = mean cosine over all A x Q pairs                     = <mean_A u, mean_Q u>
    AA = l_A^2 * sim_AA,  AQ = l_A * l_Q * sim_AQ
    scas_score = (1 - lambda) * AA + lambda * AQ        (lower = cheaper to learn = preferred)

Everything here is float32 and batch-free; the engine reduces token tensors to `RegionSummary`s.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..proxy import ProxyComponents, aa_term, aq_term, scas_score, validate_lambda

__all__ = [
    "ProxyComponents",
    "RegionSummary",
    "aa_term",
    "aq_term",
    "combine",
    "scas_score",
    "summarize_region",
    "unit_features",
    "validate_lambda",
]


@dataclass(frozen=True)
class RegionSummary:
    """What the proxy needs from one token region: mean NLL and mean unit feature."""

    mean_nll: float
    mean_unit_feature: torch.Tensor  # (d,), float32
    n_tokens: int


def unit_features(hidden: torch.Tensor) -> torch.Tensor:
    """L2-normalise features row-wise in float32."""
    hidden = hidden.float()
    return hidden / hidden.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)


def summarize_region(nll: torch.Tensor, features: torch.Tensor) -> RegionSummary:
    """Reduce a region's per-token NLL `(n,)` and raw features `(n, d)` to a `RegionSummary`."""
    return RegionSummary(
        mean_nll=float(nll.float().mean()),
        mean_unit_feature=unit_features(features).mean(dim=0),
        n_tokens=int(nll.numel()),
    )


def combine(answer: RegionSummary, question: RegionSummary) -> ProxyComponents:
    """Closed-form similarities from mean unit features (O(n*d) rather than O(n^2*d))."""
    a, q = answer.mean_unit_feature.float(), question.mean_unit_feature.float()
    return ProxyComponents(
        answer_mean_nll=answer.mean_nll,
        question_mean_nll=question.mean_nll,
        sim_aa=float(a @ a),
        sim_aq=float(a @ q),
        n_answer_tokens=answer.n_tokens,
        n_question_tokens=question.n_tokens,
    )
