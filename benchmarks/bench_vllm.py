"""vLLM prompt log-probs vs the engine's full SCAS scoring, side by side on the bench corpus.

vLLM is what a user would run instead of scas-hub to get the NLL of every answer token (GRAPE-style
selection needs nothing more). This script serves the student with vLLM (from `.venv-vllm`, see
`make vllm`) and asks for the prompt log-probs of every conversation of the `bench_scoring.py`
corpus (same questions, same rendered tokens), with all requests in flight at once so vLLM batches
them; then stops the server and runs the engine's full scoring (answer and question NLL, hidden
state similarities) over the same conversations in this process. Both in float32; each figure is
the best of `--repeat` rounds. Prints tokens/s of each, their ratio, and the largest difference of
a candidate's mean answer NLL between the two.

    python benchmarks/bench_vllm.py            # CPU, embedded SmolLM2-135M (skips when no vLLM is found)
    python benchmarks/bench_vllm.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from _common import Measurement
from bench_scoring import build_corpus, load_model, run_engine

from scas_hub.errors import ConfigError
from scas_hub.generate import VLLMServer, vllm_python
from scas_hub.student.chat import ChatEncoder, special_token_ids
from scas_hub.student.loading import resolve_student


def vllm_answer_nll(url: str, model: str, encoded, special: set[int], concurrency: int) -> tuple[list[float], float]:
    """Mean answer-token NLL of every conversation from vLLM's prompt log-probs, and the seconds taken."""
    import httpx2

    def one(enc) -> float:
        body = {"model": model, "prompt": enc.input_ids, "max_tokens": 1, "temperature": 0.0, "prompt_logprobs": 0}
        response = http.post(f"{url}/completions", json=body)
        response.raise_for_status()
        logprobs = response.json()["choices"][0]["prompt_logprobs"]
        nll = [
            -logprobs[p][str(enc.input_ids[p])]["logprob"]
            for p in range(enc.n_prompt, len(enc.input_ids))
            if enc.input_ids[p] not in special
        ]
        return sum(nll) / len(nll)

    with httpx2.Client(timeout=600.0) as http, ThreadPoolExecutor(max_workers=concurrency) as pool:
        start = time.perf_counter()
        values = list(pool.map(one, encoded))
        return values, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--student", default="smollm2-135m")
    p.add_argument("--questions", type=int, default=6)
    p.add_argument("--teachers", type=int, default=9)
    p.add_argument("--max-words", type=int, default=1500)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=16, help="vLLM requests in flight")
    p.add_argument("--vllm-python", default=None, help="default: $SCAS_HUB_VLLM_PYTHON, else .venv-vllm")
    p.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    args = p.parse_args()
    if args.quick:
        args.questions, args.teachers, args.max_words, args.repeat = 2, 4, 60, 1
    repo_venv = Path(__file__).resolve().parent.parent / ".venv-vllm" / "bin" / "python"
    try:
        python = vllm_python(args.vllm_python or (repo_venv if repo_venv.exists() else None))
    except ConfigError as err:
        print(f"vllm peer: skipped ({err})")
        return
    folder = str(resolve_student(args.student).path)
    with tempfile.TemporaryDirectory() as tmp:
        questions = build_corpus(Path(tmp) / "c1", args.questions, args.teachers, args.max_words)
    model, tokenizer = load_model(args.student, "float32", "cpu")
    encoder = ChatEncoder(tokenizer)
    candidates = [c for q in questions for c in q.candidates]
    encoded = encoder.encode(candidates)
    tokens = sum(len(e.input_ids) for e in encoded)
    special = set(special_token_ids(tokenizer))
    print(
        f"vllm peer: {len(questions)} questions, {len(encoded)} conversations, {tokens:,} tokens, "
        f"student {args.student}, torch threads {torch.get_num_threads()}"
    )

    with VLLMServer(
        folder,
        served_name="student",
        python=python,
        extra_args=("--dtype", "float32"),
        log_path=Path(tempfile.gettempdir()) / "scas-hub-bench-vllm.log",
    ) as server:
        runs = [vllm_answer_nll(server.url, "student", encoded, special, args.concurrency) for _ in range(args.repeat)]
    vllm_nll = runs[0][0]
    vllm_time = Measurement(min(seconds for _, seconds in runs))
    engine_runs = [run_engine(model, tokenizer, questions, "cpu") for _ in range(args.repeat)]
    scored = engine_runs[0][0]
    engine_time = Measurement(min(m.seconds for _, m in engine_runs))
    pairs = [
        (c.score.answer_mean_nll, v)
        for c, v in zip((c for q in scored for c in q.candidates), vllm_nll, strict=True)
        if c.score is not None
    ]
    engine_nll, vllm_nll = [a for a, _ in pairs], [b for _, b in pairs]
    diffs = [abs(a - b) for a, b in pairs]
    worst = max(range(len(diffs)), key=diffs.__getitem__)
    print(f"{'vLLM prompt logprobs (fp32)':32} {tokens / vllm_time.seconds:10,.0f} tok/s   {vllm_time.seconds:8.2f} s")
    print(
        f"{'engine full SCAS scoring (fp32)':32} {tokens / engine_time.seconds:10,.0f} tok/s   "
        f"{engine_time.seconds:8.2f} s"
    )
    print(f"ratio engine/vllm tokens per second = {vllm_time.seconds / engine_time.seconds:.2f}")
    print(
        f"largest answer mean NLL difference engine vs vLLM: {diffs[worst]:.2e} (candidate {worst}: engine "
        f"{engine_nll[worst]:.5f}, vLLM {vllm_nll[worst]:.5f}); median {sorted(diffs)[len(diffs) // 2]:.2e}"
    )


if __name__ == "__main__":
    main()
