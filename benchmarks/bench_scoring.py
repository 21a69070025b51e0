"""Scoring throughput and memory: the engine vs the naive reference algorithm vs a bare forward.

Measured side by side in one run on the same model and the same tokens:
  (a) engine   - StudentScorer (padding-free packs, each prompt once, blocked LM head)
  (b) naive    - the reference algorithm: one candidate per forward, full float32 logits,
                 pairwise O(n^2) similarities (scas_hub.testing.naive), always float32
  (c) forward  - a bare forward pass of the causal LM over each conversation, batch 1, same dtype
The methods are interleaved per chunk of questions (`--chunks`) over `--repeat` rounds, and each
figure sums every chunk's best round: on a shared machine noise only slows runs down, and a slow
spell then hits all methods alike. Prints tokens/s and peak memory of each, one `ratio ...` line
per ratio and dtype, the number of selections that differ between bfloat16 and float32,
throughput at 1x and Nx corpus size, and the peak memory for one very long answer with a
151k-vocabulary model.

    python benchmarks/bench_scoring.py                 # CPU, embedded SmolLM2-135M
    python benchmarks/bench_scoring.py --quick         # smoke run (seconds)
    python benchmarks/bench_scoring.py --student random:qwen2.5-1.5b --dtypes bfloat16 --device cuda \
        --engines sdpa,flex,flex+compile               # GPU: Qwen2.5-1.5B shape, attention layouts, MFU
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

import torch
from _common import Measurement, gib, measure

from scas_hub import PipelineStats, ScoringConfig, SelectionConfig, StudentScorer, load_questions, select
from scas_hub.score.engine import DTYPES
from scas_hub.student.chat import ChatEncoder
from scas_hub.testing.corpus import POOL_SYSTEM_PROMPT, synthetic_pool, write_pool
from scas_hub.testing.naive import naive_components, naive_score


def build_corpus(
    folder: Path,
    questions: int,
    teachers: int,
    max_words: int,
    copies: int = 1,
    seed: int = 0,
    problem_words: tuple[int, int] = (15, 150),
):
    """Shaped like the published pool: 9 verified answers per question (124,263 / 13,807), the
    pool's kind of system prompt, competition-math-length problems, answers of a few to ~2k tokens."""
    rows = synthetic_pool(
        questions,
        teachers=teachers,
        max_words=max_words,
        seed=seed,
        system=POOL_SYSTEM_PROMPT,
        problem_words=problem_words,
    )
    if copies > 1:  # same length distribution, distinct questions
        rows = {
            t: [
                {**r, "id": f"{k}-{r['id']}", "instruction": f"({k}) {r['instruction']}"}
                for k in range(copies)
                for r in rs
            ]
            for t, rs in rows.items()
        }
    write_pool(rows, folder)
    _, qs = load_questions(str(folder), None, None, PipelineStats())
    return qs


def conversation_tokens(tokenizer, questions) -> list[list[int]]:
    encoder = ChatEncoder(tokenizer)
    return [e.input_ids for q in questions for e in encoder.encode(q.candidates)]


def engine_config(spec: str, budget: int | None) -> ScoringConfig:
    """`sdpa`, `flex`, `sdpa+compile` or `flex+compile`: the attention layout, and fused kernels."""
    attention, _, extra = spec.partition("+")
    if extra not in ("", "compile"):
        raise SystemExit(f"unknown engine {spec!r}: use sdpa, flex, sdpa+compile or flex+compile")
    return ScoringConfig(token_budget=budget, attention=attention, compile=extra == "compile", progress=False)


def run_engine(model, tokenizer, questions, device, budget=None, spec: str = "sdpa", positions: list | None = None):
    """Score a copy of `questions`; the decoder's row lengths are appended to `positions` if given."""
    qs = copy.deepcopy(questions)
    stats = PipelineStats()
    scorer = StudentScorer(model, tokenizer, engine_config(spec, budget))
    hook = (
        None
        if positions is None
        else scorer.decoder.register_forward_pre_hook(
            lambda module, args, kwargs: positions.append(kwargs["input_ids"].shape[1]), with_kwargs=True
        )
    )
    with measure(device) as m:
        for _ in scorer.score_questions(qs, stats):
            pass
    if hook is not None:
        hook.remove()
    scorer.close()
    return qs, m


@torch.inference_mode()
def run_forward(model, sequences, device):
    with measure(device) as m:
        for ids in sequences:
            model(torch.tensor([ids], device=device)).logits.float()
    return m


def run_naive(model, tokenizer, questions, device):
    scores = {}
    with measure(device) as m:
        for q in questions:
            for c in q.candidates:
                ref = naive_components(model, tokenizer, c.instruction, c.answer, c.system)
                scores[(q.question_id, c.teacher)] = naive_score(ref)
    return scores, m


def scores_of(questions) -> dict:
    return {(q.question_id, c.teacher): c.score.scas_score() for q in questions for c in q.candidates}


def selections(questions) -> dict:
    qs = copy.deepcopy(questions)
    select(qs, SelectionConfig(), PipelineStats())
    return {q.question_id: c.teacher for q in qs for c in q.candidates if c.selected}


def rel_errors(a: dict, b: dict) -> list[float]:
    return [abs(a[k] - b[k]) / max(abs(b[k]), 1e-12) for k in b]


def weight_flops(config) -> tuple[float, float]:
    """Matmul FLOPs with the weights per token position: (decoder layers, LM head row)."""
    h, layers, inter = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    heads, kv = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or h // heads
    per_layer = 2 * h * (heads * head_dim + 2 * kv * head_dim) + 2 * heads * head_dim * h + 3 * 2 * h * inter
    return layers * per_layer, 2 * h * config.vocab_size


def work_ratio(config, sequences, engine_positions: int, questions) -> float:
    """Weight-matmul work of the naive algorithm over the engine's: naive runs every conversation
    position through the layers and the LM head; the engine runs its pack rows (each prompt once
    per pack) through the layers and only NLL targets through the head. At equal matmul rates this
    is the ceiling of engine/naive."""
    body, head = weight_flops(config)
    naive = sum(map(len, sequences)) * (body + head)
    scores = [[c.score for c in q.candidates if c.score is not None] for q in questions]
    targets = sum(s.n_answer_tokens for ss in scores for s in ss) + sum(ss[0].n_question_tokens for ss in scores if ss)
    return naive / (engine_positions * body + targets * head)


def forward_flops_per_token(config, context: float) -> float:
    """2 x parameters (LM head included) + attention scores and mixing at the mean causal context."""
    body, head = weight_flops(config)
    attention = (
        2
        * 2
        * config.num_hidden_layers
        * config.num_attention_heads
        * (getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)
        * context
    )
    return body + head + attention


PEAK_FLOPS = {"cuda": 989e12}


def best(runs: list) -> Measurement:
    """The fastest of interleaved repeats (noise on a shared machine only ever slows a run down)."""
    return Measurement(min(m.seconds for m in runs), max(m.peak_bytes for m in runs))


def line(name: str, tokens: int, m: Measurement, flops_per_token: float | None = None, rounds=None) -> None:
    rate = tokens / m.seconds
    mfu = f"   MFU {100 * flops_per_token * rate / PEAK_FLOPS['cuda']:.1f}%" if flops_per_token else ""
    each = f"   (rounds: {', '.join(f'{r.seconds:.2f}' for r in rounds)} s)" if rounds and len(rounds) > 1 else ""
    print(f"{name:28} {rate:10,.0f} tok/s   {m.seconds:8.2f} s   peak {gib(m.peak_bytes)}{mfu}{each}")


_RANDOM_QWEN = {}


def load_model(student: str, dtype: str, device: str):
    """`student` is an alias/folder, or `random:qwen2.5-1.5b` (that shape, random weights, real tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from scas_hub.student.loading import resolve_student

    if student == "random:qwen2.5-1.5b":
        if student not in _RANDOM_QWEN:
            from scas_hub.testing.models import QWEN25_1P5B_SHAPE, qwen_tokenizer, tiny_qwen2

            folder = Path(tempfile.mkdtemp(prefix="bench-qwen-"))
            _RANDOM_QWEN[student] = tiny_qwen2(folder, tokenizer=qwen_tokenizer(), **QWEN25_1P5B_SHAPE)
        path = _RANDOM_QWEN[student]
    else:
        path = resolve_student(student).path
    model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype]).to(device).eval()
    return model, AutoTokenizer.from_pretrained(path)


def _long_answer_child(method: str, device: str, answer_tokens: int, spec: str) -> tuple:
    """In a fresh process: one ~`answer_tokens` answer through a random Qwen2 with the real
    151,936-token vocabulary; returns (tokens, seconds, peak above the loaded model, process peak)."""
    import resource

    from scas_hub import Candidate, Question
    from scas_hub.testing.models import qwen_tokenizer, tiny_qwen2

    tokenizer = qwen_tokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(tiny_qwen2(tmp, tokenizer=tokenizer)).to(device).eval()
    ids = tokenizer(" ".join(f"step {i} adds {i % 7}." for i in range(answer_tokens)))["input_ids"]
    q = Question("long", [Candidate("long", "t", "Write a long answer.", tokenizer.decode(ids[:answer_tokens]))])
    n = len(conversation_tokens(tokenizer, [q])[0])
    if method == "engine":
        _, m = run_engine(model, tokenizer, [q], device, spec=spec)
    else:
        _, m = run_naive(model, tokenizer, [q], device)
    process_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    if device.startswith("cuda"):
        process_peak = torch.cuda.max_memory_allocated()
    return n, m.seconds, m.peak_bytes, process_peak


def long_answer_memory(device: str, answer_tokens: int, with_naive: bool, spec: str = "sdpa") -> None:
    """Peak memory for one very long answer, each method in a fresh process (so memory an earlier
    phase left in this process's allocator cannot hide it)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    peaks = {}
    for method in ["engine"] + (["naive"] if with_naive else []):
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            n, seconds, peak, process = pool.submit(_long_answer_child, method, device, answer_tokens, spec).result()
        line(f"{method} long answer ({n} tok)", n, Measurement(seconds, peak))
        print(f"{'':28} whole process peak {gib(process)} (model, tokenizer and interpreter included)")
        peaks[method] = peak
    print(f"long-answer peak memory: engine {gib(peaks['engine'])} above the loaded model (target < 1.50 GiB)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--student", default="smollm2-135m")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--questions", type=int, default=6)
    p.add_argument("--teachers", type=int, default=9)
    p.add_argument("--max-words", type=int, default=1500, help="longest answers (~1.3 tokens/word)")
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--budget", type=int, default=None, help="engine token budget (default: the engine's, by device)")
    p.add_argument(
        "--engines",
        default="sdpa,sdpa+compile",
        help="engine variants timed side by side, comma-separated: the attention layout (sdpa, flex), "
        "+compile for fused norms and MLP activations (compiled once, before timing)",
    )
    p.add_argument("--scale", type=int, default=8, help="corpus multiple for the flatness check (0: skip)")
    p.add_argument("--long-answer", type=int, default=6300, help="tokens of the long answer (0: skip)")
    p.add_argument("--no-naive", action="store_true", help="skip the (slow) naive algorithm")
    p.add_argument("--repeat", type=int, default=2, help="rounds; each chunk's figure is its best round")
    p.add_argument("--chunks", type=int, default=3, help="interleave the methods per chunk of questions")
    p.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    args = p.parse_args()
    if args.quick:
        args.questions, args.teachers, args.max_words, args.scale, args.long_answer, args.repeat = 2, 6, 60, 2, 300, 1
    torch.manual_seed(0)
    dtypes, specs = args.dtypes.split(","), args.engines.split(",")
    for spec in specs:
        engine_config(spec, None)  # a typo fails here, not after the first timed round
    print(f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, student {args.student}")

    with tempfile.TemporaryDirectory() as tmp:
        questions = build_corpus(Path(tmp) / "c1", args.questions, args.teachers, args.max_words)
        big = (
            build_corpus(Path(tmp) / "c8", args.questions, args.teachers, args.max_words, args.scale)
            if args.scale
            else None
        )

    models = {d: load_model(args.student, d, args.device) for d in dtypes}
    tokenizer = models[dtypes[0]][1]
    sequences = conversation_tokens(tokenizer, questions)
    tokens = sum(map(len, sequences))
    lengths = sorted(map(len, sequences))
    print(
        f"corpus: {len(questions)} questions, {len(sequences)} candidates, {tokens:,} tokens "
        f"(conversation length min {lengths[0]}, median {lengths[len(lengths) // 2]}, max {lengths[-1]})"
    )

    mean_context = statistics.fmean(n / 2 for n in map(len, sequences))
    fpt = forward_flops_per_token(models[dtypes[0]][0].config, mean_context) if args.device.startswith("cuda") else None
    # Interleaved at a fine grain: the corpus is cut into chunks of whole questions and every
    # method runs on a chunk before the next chunk starts, so a slow spell of the machine hits all
    # methods alike; each method's figure sums, over chunks, its best time across rounds.
    k = max(1, min(args.chunks, len(questions)))
    chunks = [questions[i * len(questions) // k : (i + 1) * len(questions) // k] for i in range(k)]
    chunk_sequences = [conversation_tokens(tokenizer, chunk) for chunk in chunks]  # tokenised once
    fp32 = None if args.no_naive else (models.get("float32") or load_model(args.student, "float32", args.device))
    times: dict[str, list[list]] = defaultdict(lambda: [[] for _ in chunks])  # method -> chunk -> runs
    naive_scores: dict | None = None if fp32 is None else {}
    engines = [(d, a, f"{d}" if len(specs) == 1 else f"{d}, {a}") for d in dtypes for a in specs]
    results: dict[str, list] = {}  # by engine label
    positions: list[int] = []  # the engine's pack rows, counted in the first round
    for d, a, _ in engines:  # compile warm-up, untimed (dynamic shapes: once per graph, not per pack length)
        if "compile" in a:
            run_engine(models[d][0], tokenizer, chunks[0], args.device, args.budget, a)
    for r in range(args.repeat):
        for *_, label in engines:
            results[label] = []
        for c, chunk in enumerate(chunks):
            if fp32 is not None:
                scores, m = run_naive(fp32[0], tokenizer, chunk, args.device)
                naive_scores.update(scores)
                times["naive"][c].append(m)
            for d in dtypes:
                times[f"forward {d}"][c].append(run_forward(models[d][0], chunk_sequences[c], args.device))
            for d, a, label in engines:
                counted = positions if r == 0 and label == engines[0][2] else None
                scored, m = run_engine(models[d][0], tokenizer, chunk, args.device, args.budget, a, counted)
                results[label] += scored
                times[f"engine {label}"][c].append(m)
    runs = {
        name: [
            Measurement(
                sum(per_chunk[r].seconds for per_chunk in per_method),
                max(per_chunk[r].peak_bytes for per_chunk in per_method),
            )
            for r in range(args.repeat)
        ]
        for name, per_method in times.items()
    }
    fastest = {
        name: Measurement(
            sum(min(m.seconds for m in per_chunk) for per_chunk in per_method),
            max(m.peak_bytes for per_chunk in per_method for m in per_chunk),
        )
        for name, per_method in times.items()
    }
    print(f"{args.repeat} rounds over {k} chunks of questions, interleaved; figures sum each chunk's best time:")
    if naive_scores is not None:
        line("naive (float32)", tokens, fastest["naive"], fpt, runs["naive"])
    for d in dtypes:
        line(f"forward ({d})", tokens, fastest[f"forward {d}"], fpt, runs[f"forward {d}"])
    for d, _, label in engines:
        mf, me = fastest[f"forward {d}"], fastest[f"engine {label}"]
        line(f"engine ({label})", tokens, me, fpt, runs[f"engine {label}"])
        if naive_scores is not None:
            print(f"ratio engine/naive = {fastest['naive'].seconds / me.seconds:.2f}   [{label}]")
            errs = rel_errors(scores_of(results[label]), naive_scores)
            print(
                f"score error vs naive float32 [{label}]: max rel {max(errs):.2e}, median rel "
                f"{statistics.median(errs):.2e}"
            )
        print(f"ratio engine/forward = {mf.seconds / me.seconds:.2f}   [{label}]")
    ratio = work_ratio(models[dtypes[0]][0].config, sequences, sum(positions), results[engines[0][2]])
    print(
        f"matmul work naive/engine = {ratio:.2f}   (weight FLOPs: {sum(positions):,} engine rows vs {tokens:,} "
        "conversation tokens, LM head on targets only; the ceiling of engine/naive at equal matmul rates)"
    )
    label = {d: next(lbl for dd, _, lbl in engines if dd == d) for d in dtypes}  # first attention mode
    if "float32" in dtypes and "bfloat16" in dtypes:
        a, b = selections(results[label["float32"]]), selections(results[label["bfloat16"]])
        flips = sum(a[k] != b.get(k) for k in a)
        errs = rel_errors(scores_of(results[label["bfloat16"]]), scores_of(results[label["float32"]]))
        print(
            f"selections differing bfloat16 vs float32: {flips} of {len(a)} "
            f"(score rel error max {max(errs):.2e}, median {statistics.median(errs):.2e})"
        )
    if big is not None:
        d = dtypes[-1]
        big_tokens = sum(map(len, conversation_tokens(tokenizer, big)))
        small_runs, big_runs = [], []
        a = specs[0]
        for _ in range(args.repeat):  # 1x before and after each Nx run, to sample the same spells
            small_runs.append(run_engine(models[d][0], tokenizer, questions, args.device, args.budget, a)[1])
            big_runs.append(run_engine(models[d][0], tokenizer, big, args.device, args.budget, a)[1])
            small_runs.append(run_engine(models[d][0], tokenizer, questions, args.device, args.budget, a)[1])
        m1, m8 = best(small_runs), best(big_runs)
        line(f"engine 1x ({d})", tokens, m1, None, small_runs)
        line(f"engine {args.scale}x ({d})", big_tokens, m8, None, big_runs)
        # paired: each Nx run against the mean of the two 1x runs around it (same spell of the machine)
        pairs = [
            (big_tokens / big_runs[i].seconds)
            / (tokens / statistics.fmean(m.seconds for m in small_runs[2 * i : 2 * i + 2]))
            for i in range(len(big_runs))
        ]
        print(
            f"throughput 1x {tokens / m1.seconds:,.0f} tok/s, {args.scale}x {big_tokens / m8.seconds:,.0f} tok/s "
            f"(best runs) [{d}]: ratio {args.scale}x/1x = {statistics.median(pairs):.2f} (median of "
            f"{', '.join(f'{x:.2f}' for x in pairs)}: each {args.scale}x run over the mean of the 1x runs around it; "
            f"peak {gib(m1.peak_bytes)} vs {gib(m8.peak_bytes)})"
        )
    if args.long_answer:
        long_answer_memory(args.device, args.long_answer, with_naive=not args.no_naive, spec=specs[0])


if __name__ == "__main__":
    main()
