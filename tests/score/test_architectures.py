"""Students whose forward does more than Llama's: scaled or soft-capped logits, soft-capped attention.

The engine applies the LM head itself, so it must reproduce what each architecture's forward
does to the head's output, or refuse the model; the naive algorithm reads `model(...).logits`.
"""

from __future__ import annotations

import pytest
import torch

from scas_hub import Candidate, PipelineStats, Question, ScoringConfig, StudentError, StudentScorer
from scas_hub.score.head import LogitTransform, measure_transform
from scas_hub.testing.naive import naive_components, naive_score

SHAPE = dict(
    vocab_size=151_936,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    initializer_range=0.2,
)
ARCHITECTURES = {
    # logits and attention scores both soft-capped, hard enough to matter at this weight scale
    "gemma2": (
        dict(final_logit_softcapping=2.0, attn_logit_softcapping=1.0, query_pre_attn_scalar=16, sliding_window=4096),
        LogitTransform(1.0, 2.0),
    ),
    "cohere": (dict(logit_scale=0.25), LogitTransform(0.25)),
    "granite": (
        dict(logits_scaling=4.0, attention_multiplier=0.2, embedding_multiplier=2.0, residual_multiplier=0.5),
        LogitTransform(0.25),
    ),
}


def _model(model_type: str, **extra):
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    config = AutoConfig.for_model(model_type, **SHAPE, **extra)
    # eager: the reference form of soft-capped attention (some transformers releases default
    # Gemma 2 to SDPA, which drops the cap)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager").eval()


def _questions() -> list[Question]:
    answers = [
        ("terse", "391"),
        ("steps", "17 * 23 = 340 + 51 = 391, so the answer is 391."),
        ("long", " ".join(f"step {i}: {i} + {i} = {2 * i}." for i in range(60))),
    ]
    return [
        Question("q", [Candidate("q", t, "What is 17 * 23?", a) for t, a in answers]),
        Question("single", [Candidate("single", "terse", "Name a prime.", "7")]),
    ]


@pytest.mark.parametrize(
    "model_type, attention, compile",
    [(m, "sdpa", False) for m in sorted(ARCHITECTURES)]
    + [("gemma2", "flex", False), pytest.param("gemma2", "sdpa", True, marks=pytest.mark.slow)],
)
def test_engine_matches_naive_on_other_architectures(qwen_tokenizer, model_type, attention, compile):
    """Gemma 2 fused (`compile`): its own RMSNorm (1 + weight) and GELU-tanh MLP compiled."""
    extra, transform = ARCHITECTURES[model_type]
    model = _model(model_type, **extra)
    config = ScoringConfig(token_budget=120, causal_ratio=2.0, attention=attention, compile=compile, progress=False)
    scorer = StudentScorer(model, qwen_tokenizer, config)
    assert scorer.head.transform == transform
    questions = _questions()
    list(scorer.score_questions(questions, PipelineStats()))
    scorer.close()
    for c in (c for q in questions for c in q.candidates):
        ref = naive_components(model, qwen_tokenizer, c.instruction, c.answer, c.system)
        for field in ("answer_mean_nll", "question_mean_nll", "sim_aa", "sim_aq"):
            assert getattr(c.score, field) == pytest.approx(ref[field], rel=1e-4), (c.teacher, field)
        assert c.score.scas_score() == pytest.approx(naive_score(ref), rel=1e-4)


def test_soft_capping_is_not_optional_in_this_test():
    """The soft-capped model's logits really differ from its raw head (else the test above could
    not catch a missing cap)."""
    model = _model("gemma2", **ARCHITECTURES["gemma2"][0])
    with torch.inference_mode():
        ids = torch.arange(1, 17)[None] * 101
        logits = model(input_ids=ids).logits
        raw = model.lm_head(model.get_decoder()(input_ids=ids).last_hidden_state)
    assert (logits - raw).abs().max() > 0.1


def test_unknown_logit_post_processing_is_refused(tiny_qwen_dir):
    """A model whose forward changes the logits in a way the config does not describe is refused
    with a clear error, instead of being scored with the wrong NLL."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_qwen_dir, dtype=torch.float32).eval()
    forward = model.forward

    def scaled(*args, **kwargs):
        out = forward(*args, **kwargs)
        out.logits = out.logits * 3
        return out

    model.forward = scaled
    with pytest.raises(StudentError, match="logits are not lm_head"):
        StudentScorer(model, AutoTokenizer.from_pretrained(tiny_qwen_dir), ScoringConfig(progress=False))
    with pytest.raises(StudentError):
        measure_transform(model, model.get_decoder(), model.get_output_embeddings())
