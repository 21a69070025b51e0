"""The SCAS learning-cost proxy: tensors in, numbers out (read it beside shared/SCAS.md).

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

from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class RegionSummary:
    """What the proxy needs from one token region: mean NLL and mean unit feature."""

    mean_nll: float
    mean_unit_feature: torch.Tensor  # (d,), float32
    n_tokens: int


@dataclass(frozen=True)
class ProxyComponents:
    """The per-candidate quantities; `scas_score(lam)` combines them."""

    answer_mean_nll: float
    question_mean_nll: float
    sim_aa: float
    sim_aq: float
    n_answer_tokens: int
    n_question_tokens: int

    @property
    def aa_term(self) -> float:
        return aa_term(self.answer_mean_nll, self.sim_aa)

    @property
    def aq_term(self) -> float:
        return aq_term(self.answer_mean_nll, self.question_mean_nll, self.sim_aq)

    def scas_score(self, lam: float = 0.5) -> float:
        return scas_score(self.answer_mean_nll, self.question_mean_nll, self.sim_aa, self.sim_aq, lam)

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


# The three formulas below take floats or numpy arrays alike and give bit-identical results for
# both (`x * x`, not `x**2`: libm's pow is not correctly rounded), so a columnar selection ranks
# exactly as a per-candidate one.


def aa_term(answer_mean_nll, sim_aa):
    """AA = l_A^2 * sim_AA."""
    return answer_mean_nll * answer_mean_nll * sim_aa


def aq_term(answer_mean_nll, question_mean_nll, sim_aq):
    """AQ = l_A * l_Q * sim_AQ."""
    return answer_mean_nll * question_mean_nll * sim_aq


def scas_score(answer_mean_nll, question_mean_nll, sim_aa, sim_aq, lam: float = 0.5):
    """(1 - lambda) * AA + lambda * AQ: lower = cheaper to learn = preferred."""
    return (1.0 - lam) * aa_term(answer_mean_nll, sim_aa) + lam * aq_term(answer_mean_nll, question_mean_nll, sim_aq)


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


def validate_lambda(lam: float) -> float:
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lambda must be in [0, 1], got {lam}")
    return float(lam)
