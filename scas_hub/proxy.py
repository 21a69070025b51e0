"""The SCAS formula on floats and numpy arrays (no torch): read it beside shared/SCAS.md.

For a candidate answer A to a question Q, with per-token NLL `l_t` and unit features `u_t`:

    l_A = mean NLL over A,  l_Q = mean NLL over Q (position 0 excluded)
    sim_AA = mean cosine over all A x A pairs (diagonal included) = ||mean_A u||^2
    sim_AQ = mean cosine over all A x Q pairs                     = <mean_A u, mean_Q u>
    AA = l_A^2 * sim_AA,  AQ = l_A * l_Q * sim_AQ
    scas_score = (1 - lambda) * AA + lambda * AQ        (lower = cheaper to learn = preferred)

The torch reductions from token tensors to these numbers live in `scas_hub.score.proxy`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import numpy as np

    Number = TypeVar("Number", float, np.ndarray)
else:
    Number = TypeVar("Number")


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


def aa_term(answer_mean_nll: Number, sim_aa: Number) -> Number:
    """AA = l_A^2 * sim_AA."""
    return answer_mean_nll * answer_mean_nll * sim_aa


def aq_term(answer_mean_nll: Number, question_mean_nll: Number, sim_aq: Number) -> Number:
    """AQ = l_A * l_Q * sim_AQ."""
    return answer_mean_nll * question_mean_nll * sim_aq


def scas_score(
    answer_mean_nll: Number, question_mean_nll: Number, sim_aa: Number, sim_aq: Number, lam: float = 0.5
) -> Number:
    """(1 - lambda) * AA + lambda * AQ: lower = cheaper to learn = preferred."""
    return (1.0 - lam) * aa_term(answer_mean_nll, sim_aa) + lam * aq_term(answer_mean_nll, question_mean_nll, sim_aq)


def validate_lambda(lam: float) -> float:
    """`lam` as a float, or ValueError when it is outside [0, 1]."""
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lambda must be in [0, 1], got {lam}")
    return float(lam)
