"""The engine must give the naive per-sample algorithm's numbers (1e-4 relative, float32)."""

from __future__ import annotations

import pytest

from scas_hub import Candidate, PipelineStats, Question, ScoringConfig, StudentScorer
from scas_hub.testing.naive import naive_components, naive_score

FIELDS = ["answer_mean_nll", "question_mean_nll", "sim_aa", "sim_aq"]
_NAIVE: dict = {}


def _naive(model, tokenizer, c: Candidate) -> dict:
    key = (id(model), c.instruction, c.answer, c.system)
    if key not in _NAIVE:
        _NAIVE[key] = naive_components(model, tokenizer, c.instruction, c.answer, c.system)
    return _NAIVE[key]


def _questions(long_words: int = 1600) -> list[Question]:
    long_answer = " ".join(f"step {i}: add {i} and {i + 1} to get {2 * i + 1}." for i in range(long_words // 8))
    specs = {
        "q-many": (
            "What is 17 * 23? Show your work.",
            [
                ("t-terse", "391"),
                ("t-steps", "17 * 23 = 17 * 20 + 17 * 3 = 340 + 51 = 391. The answer is \\boxed{391}."),
                (
                    "t-verbose",
                    "Let us multiply carefully. Twenty times seventeen is three hundred forty; "
                    "three times seventeen is fifty-one; together, three hundred ninety-one.",
                ),
                ("t-latex", "$17 \\times 23 = 391$"),
                ("t-long", long_answer),
                ("t-unicode", "Résultat : 391 ✓ — vérifié deux fois."),
            ],
        ),
        "q-single": ("Name a prime number larger than 10.", [("t-steps", "11 is prime.")]),
        "q-system": ("Translate 'cat' to French.", [("t-terse", "chat"), ("t-steps", "The French word is « chat ».")]),
    }
    out = []
    for qid, (instruction, answers) in specs.items():
        system = "You are a terse math tutor." if qid == "q-system" else None
        out.append(Question(qid, [Candidate(qid, t, instruction, a, system=system) for t, a in answers]))
    return out


def _check(model, tokenizer, questions, budget, causal_ratio=4.0, attention="sdpa", compile=False):
    stats = PipelineStats()
    config = ScoringConfig(
        token_budget=budget, causal_ratio=causal_ratio, attention=attention, compile=compile, progress=False
    )
    scorer = StudentScorer(model, tokenizer, config)
    list(scorer.score_questions(questions, stats))
    scorer.close()
    n = 0
    for q in questions:
        for c in q.candidates:
            ref = _naive(model, tokenizer, c)
            got = c.score
            assert got is not None, c.teacher
            assert got.n_answer_tokens == ref["n_answer_tokens"]
            assert got.n_question_tokens == ref["n_question_tokens"]
            for f in FIELDS:
                assert getattr(got, f) == pytest.approx(ref[f], rel=1e-4, abs=1e-7), (c.teacher, f)
            for lam in (0.0, 0.5, 1.0):
                assert got.scas_score(lam) == pytest.approx(naive_score(ref, lam), rel=1e-4, abs=1e-7)
            n += 1
    assert stats.rows_scored == n
    return n


@pytest.mark.parametrize(
    "budget, causal_ratio", [(64, 4.0), (100_000, 4.0), (100_000, 1e9), (100_000, 0.0), (700, 0.5)]
)
def test_engine_matches_naive_tiny_qwen(tiny_qwen, budget, causal_ratio):
    """Qwen tokenizer (151k vocab), random weights. A small budget splits questions across packs
    (the prompt runs again, its Q statistics come from its first pack); the ratio sends every
    answer through the masked kernel (1e9, short answers grouped), the causal kernel over prompt +
    answer (0), or a mix (4, 0.5)."""
    model, tokenizer = tiny_qwen
    assert _check(model, tokenizer, _questions(), budget, causal_ratio) == 9


@pytest.mark.parametrize("budget", [64, 700])
def test_flex_attention_matches_naive(tiny_qwen, budget):
    """The accelerator layout (one block-sparse flex-attention call per layer, packs padded to
    whole blocks) gives the naive numbers too; here flex runs in its reference form, on CUDA the
    same block mask goes to the compiled kernel."""
    model, tokenizer = tiny_qwen
    assert _check(model, tokenizer, _questions(long_words=400), budget, attention="flex") == 9


@pytest.mark.slow
def test_compiled_flex_attention_matches_naive(tiny_qwen, monkeypatch):
    """The CUDA form of the flex layout (compiled kernel, compiled block masks), compiled here for
    CPU: our mask closures trace, packs of other lengths reuse the compiled code, numbers hold."""
    import torch

    from scas_hub.score import attention

    monkeypatch.setattr(attention, "COMPILED_FLEX_DEVICES", frozenset({"cpu"}))
    model, tokenizer = tiny_qwen
    assert _check(model, tokenizer, _questions(long_words=400), 700, attention="flex") == 9
    compiled = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    assert _check(model, tokenizer, _questions(long_words=400), 300, attention="flex") == 9
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == compiled  # no recompiles


def test_fused_kernels_match_naive_and_are_removed_after(tiny_qwen):
    """`compile=True`: RMSNorms and the gated MLP's activation run as compiled kernels during the
    scorer's forwards (the feature hook on up_proj still fires), numbers as naive, and afterwards
    every module has its own forward back."""
    model, tokenizer = tiny_qwen
    scorer = StudentScorer(model, tokenizer, ScoringConfig(compile=True, progress=False))
    kinds = {type(m).__name__ for m, _ in scorer._fusion}
    scorer.close()
    assert kinds == {"Qwen2RMSNorm", "Qwen2MLP"}
    assert _check(model, tokenizer, _questions(long_words=400), 700, compile=True) == 9
    assert not [m for m in model.modules() if "forward" in vars(m)]


def test_scoring_goes_on_unfused_when_compiling_fails(tiny_qwen, monkeypatch, caplog):
    import torch

    from scas_hub.score import fusion

    def broken(fn):
        def fail(*args, **kwargs):
            raise torch._dynamo.exc.TorchDynamoException("no C++ compiler")

        return fail

    monkeypatch.setattr(fusion, "_compiled", broken)
    model, tokenizer = tiny_qwen
    assert _check(model, tokenizer, _questions(long_words=100), 700, compile=True) == 9
    assert "scoring goes on without fused kernels: no C++ compiler" in caplog.text
    assert not [m for m in model.modules() if "forward" in vars(m)]


def test_engine_matches_naive_embedded_student(smollm2):
    model, tokenizer = smollm2
    assert _check(model, tokenizer, _questions(long_words=160), 512) == 9


def test_answers_without_ordinary_tokens_are_skipped_not_zero(tiny_qwen):
    model, tokenizer = tiny_qwen
    texts = {"control": "<|im_end|>", "inside": "4<|im_end|><|im_start|>user\nmore", "empty": "", "ok": "ok"}
    q = Question("q", [Candidate("q", t, "Say something.", a) for t, a in texts.items()])
    stats = PipelineStats()
    scorer = StudentScorer(model, tokenizer, ScoringConfig(progress=False))
    list(scorer.score_questions([q], stats))
    reasons = {c.teacher: c.skip_reason for c in q.candidates}
    assert reasons == {
        "control": "control_tokens_in_answer",
        "inside": "control_tokens_in_answer",
        "empty": "no_answer_tokens",
        "ok": None,
    }
    assert [c.score is None for c in q.candidates] == [True, True, True, False]
    assert stats.skipped == {"control_tokens_in_answer": 2, "no_answer_tokens": 1}
    assert q.candidates[3].score.scas_score() != 0


def test_max_length_skips_and_counts(tiny_qwen):
    model, tokenizer = tiny_qwen
    q = Question("q", [Candidate("q", "short", "Hi", "ok"), Candidate("q", "long", "Hi", "word " * 200)])
    stats = PipelineStats()
    scorer = StudentScorer(model, tokenizer, ScoringConfig(max_length=60, progress=False))
    list(scorer.score_questions([q], stats))
    assert [c.skip_reason for c in q.candidates] == [None, "too_long"]
    assert stats.skipped_by_teacher == {"long": {"too_long": 1}}


def test_packs_are_padding_free_and_within_budget(tiny_qwen):
    """Every forward pass is one packed row of at most `token_budget` tokens (a longer candidate
    runs alone); the only tokens beyond the candidates' own are prompts repeated when a question's
    answers spill into the next pack. The model gets its attention implementation back."""
    model, tokenizer = tiny_qwen
    budget = 300
    lengths = []
    scorer = StudentScorer(model, tokenizer, ScoringConfig(token_budget=budget, progress=False))
    hook = scorer.decoder.register_forward_pre_hook(
        lambda module, args, kwargs: lengths.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    questions = _questions()
    stats = PipelineStats()
    list(scorer.score_questions(questions, stats))
    hook.remove()
    scorer.close()
    assert model.config._attn_implementation != "scas_packed"

    encoded = [e for q in questions for e in scorer.encoder.encode(q.candidates)]
    answers = sum(len(e.answer_ids) for e in encoded)
    prompts = {e.prefix for e in encoded}
    over = [len(e.input_ids) for e in encoded if len(e.input_ids) > budget]
    assert sorted(n for n in lengths if n > budget) == sorted(over)
    assert len(lengths) > 2
    assert answers + sum(map(len, prompts)) <= sum(lengths)
    assert sum(lengths) <= answers + sum(map(len, prompts)) + len(lengths) * max(map(len, prompts))
    assert stats.rows_scored == len(encoded)


@pytest.mark.parametrize("kernel_gqa", [True, False])
def test_packed_attention_matches_dense_masked_attention(monkeypatch, kernel_gqa):
    """Two units `[prompt, answers...]` in one pack, every kind of call (prompt, grouped short
    answers, a masked answer, a long answer on the causal kernel), grouped heads passed to the
    kernel or repeated first: the same as eager attention under the full tree mask."""
    import torch

    from scas_hub.score import attention, engine

    if not kernel_gqa:
        monkeypatch.setattr(attention, "KERNEL_GQA_DEVICES", frozenset())
    units, segments, start = [], [], 0
    for prompt, answers in [(6, [1, 2, 5, 13]), (4, [3, 9])]:
        p = engine._Prompt(tuple(range(prompt)))
        items = [(Candidate("q", f"t{n}", "i", "a"), _encoded(prompt, n)) for n in answers]
        units.append(engine._Unit(p, items, with_question=True))
        segments.append((start, prompt, answers))
        start += prompt + sum(answers)
    pack = engine._layout(units)
    calls = attention.sdpa_calls(pack.segments, 2.0, "cpu")
    assert {c.mask is None for c in calls[1:]} == {True, False}  # both kernels are used
    assert any(c.mask is not None and c.out.stop - c.out.start > 1 for c in calls)  # short answers grouped
    total = len(pack.ids)
    allowed = torch.zeros(total, total, dtype=torch.bool)
    for s, prompt, answers in segments:
        allowed[s : s + prompt, s : s + prompt] = torch.ones(prompt, prompt).tril().bool()
        b = s + prompt
        for n in answers:
            allowed[b : b + n, s : s + prompt] = True
            allowed[b : b + n, b : b + n] = torch.ones(n, n).tril().bool()
            b += n
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 4, total, 8), torch.randn(1, 2, total, 8), torch.randn(1, 2, total, 8)
    got, _ = attention.packed_attention(None, q, k, v, None, scaling=0.3, scas_layout=calls)
    scores = (q @ k.repeat_interleave(2, dim=1).transpose(-1, -2) * 0.3).masked_fill(~allowed, float("-inf"))
    want = (scores.softmax(dim=-1) @ v.repeat_interleave(2, dim=1)).transpose(1, 2)
    assert torch.allclose(got, want, atol=1e-5)

    # the same pack as one flex-attention call, padded to whole blocks
    rows = attention.FLEX_BLOCK
    plan = attention.flex_plan(pack.segments, rows, "cpu")
    padded = [torch.cat([x, torch.randn(1, x.shape[1], rows - total, 8)], dim=2) for x in (q, k, v)]
    flex, _ = attention.packed_attention(None, *padded, None, scaling=0.3, scas_layout=plan)
    assert flex.shape == (1, rows, 4, 8)
    assert torch.allclose(flex[:, :total], want, atol=1e-5)


def _encoded(prompt: int, answer: int):
    from scas_hub.student.chat import EncodedCandidate

    return EncodedCandidate(input_ids=list(range(prompt + answer)), n_prompt=prompt, answer_content_ids=(1,))


@pytest.mark.parametrize("rows, block_bytes", [(1024, 4 * 2**20), (16384, 512 * 2**20), (7, 3000)])
def test_blocked_lm_head_matches_full_log_softmax(tiny_qwen, rows, block_bytes):
    """CPU tiles, accelerator tiles and tiny tiles (many blocks, a ragged last block) give the
    NLL of full-vocabulary float32 log-softmax."""
    import torch

    model, tokenizer = tiny_qwen
    scorer = StudentScorer(model, tokenizer, ScoringConfig(progress=False))
    scorer.head.rows, scorer.head.block_bytes = rows, block_bytes
    torch.manual_seed(0)
    hidden = torch.randn(50, model.config.hidden_size)
    targets = torch.randint(0, model.config.vocab_size, (50,))
    targets[:2] = torch.tensor([0, model.config.vocab_size - 1])
    with torch.inference_mode():
        got = scorer.head.nll(hidden, targets)
        want = -torch.log_softmax(scorer.lm_head(hidden).float(), dim=-1)[torch.arange(50), targets]
    scorer.close()
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)
