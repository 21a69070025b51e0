"""The proxy module's closed forms equal the pairwise definitions of shared/SCAS.md."""

from __future__ import annotations

import pytest
import torch

from scas_hub.score.proxy import ProxyComponents, combine, summarize_region, validate_lambda


def test_closed_forms_equal_pairwise_means():
    g = torch.Generator().manual_seed(0)
    a_feat, q_feat = torch.randn(37, 16, generator=g), torch.randn(11, 16, generator=g)
    a_nll, q_nll = torch.rand(37, generator=g) * 3, torch.rand(11, generator=g) * 3
    comps = combine(summarize_region(a_nll, a_feat), summarize_region(q_nll, q_feat))
    cos = torch.nn.functional.cosine_similarity
    sim_aa = torch.stack([cos(a_feat[i], a_feat[j], dim=0) for i in range(37) for j in range(37)]).mean()
    sim_aq = torch.stack([cos(a_feat[i], q_feat[j], dim=0) for i in range(37) for j in range(11)]).mean()
    assert comps.sim_aa == pytest.approx(float(sim_aa), rel=1e-5)
    assert comps.sim_aq == pytest.approx(float(sim_aq), rel=1e-5)
    assert comps.answer_mean_nll == pytest.approx(float(a_nll.mean()))
    l_a, l_q = float(a_nll.mean()), float(q_nll.mean())
    expected = 0.7 * l_a**2 * float(sim_aa) + 0.3 * l_a * l_q * float(sim_aq)
    assert comps.scas_score(0.3) == pytest.approx(expected, rel=1e-5)
    assert (comps.n_answer_tokens, comps.n_question_tokens) == (37, 11)


def test_score_terms_and_lambda_extremes():
    c = ProxyComponents(
        answer_mean_nll=2.0, question_mean_nll=3.0, sim_aa=0.5, sim_aq=0.25, n_answer_tokens=4, n_question_tokens=5
    )
    assert c.aa_term == 2.0 and c.aq_term == 1.5
    assert c.scas_score(0.0) == 2.0 and c.scas_score(1.0) == 1.5 and c.scas_score(0.5) == 1.75


def test_identical_features_give_unit_similarity():
    feats = torch.ones(5, 8) * 3.0
    s = summarize_region(torch.ones(5), feats)
    assert combine(s, s).sim_aa == pytest.approx(1.0)


def test_lambda_validated():
    assert validate_lambda(0.5) == 0.5
    with pytest.raises(ValueError):
        validate_lambda(1.5)
