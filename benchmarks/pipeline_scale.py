"""Does a run's memory stay flat and its speed constant as the corpus grows? The whole pipeline, end to end.

Generates pool-layout corpora (8 teachers, answers of about 4 KB, `is_common_correct` flags and
reference answers) at 1x and 8x (8x: 65,536 candidates by default), builds a tiny random student
(a byte-level BPE tokenizer of 1,024 tokens trained here, one Qwen2 layer) so that the pipeline's
own cost shows, then runs `scas-hub curate --verify math` with 1 and 2 processes, each with cold
caches. While a run goes, the RSS of every process of its tree is sampled; the run's
`selection_stats.json` says when each stage started and how long it took, so each stage gets its
seconds, candidates/s and the peak RSS of the largest process.

A side-by-side run of the source + verify stage alone (math-verify) on 1 and on 2 worker
processes gives its parallel speed-up. The last lines project 1M and 10M candidates from the
slope between 1x and 8x: disk for the candidate table, RAM per rank, and hours of scoring per GPU
count at a stated tokens/s per GPU.

    python benchmarks/pipeline_scale.py                   # 1x and 8x, 1 and 2 processes
    python benchmarks/pipeline_scale.py --base-questions 256 --scales 1 2   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TEACHERS = 8
STAGES = ("source_verify", "score", "select_write")
VOCAB = str.split(
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an they "
    "you were her she there been one all we their has would when if so no will more can said who out about up "
    "into them then some could time two may first like these sum product total left each step number answer"
)


# ---- inputs -------------------------------------------------------------------------------------------


def write_corpus(folder: Path, n_questions: int, answer_bytes: int, seed: int = 0) -> int:
    """`TEACHERS` JSONL files in the published pool's layout; returns the bytes written.

    Answers are about `answer_bytes` long and end in a boxed integer; about 5% are wrong and carry
    `is_common_correct: false`, so verification has something to set aside.
    """
    rng = random.Random(seed)
    paragraphs = [" ".join(rng.choice(VOCAB) for _ in range(answer_bytes // 5)) for _ in range(256)]
    folder.mkdir(parents=True, exist_ok=True)
    files = [open(folder / f"teacher-{t}.jsonl", "w", encoding="utf-8") for t in range(TEACHERS)]  # noqa: SIM115
    try:
        for i in range(n_questions):
            a, b = rng.randint(10, 999), rng.randint(10, 999)
            question = f"Question {i}: a shop has {a} boxes and buys {b} more. How many boxes does it have now?"
            for t, f in enumerate(files):
                wrong = rng.random() < 0.05
                body = paragraphs[rng.randrange(len(paragraphs))][: answer_bytes - 60]
                answer = f"Teacher {t} on question {i}: {body} So {a} + {b} = \\boxed{{{a + b + wrong}}}."
                f.write(
                    json.dumps(
                        {
                            "id": i,
                            "source_dataset": "bench",
                            "teacher_name": f"teacher-{t}",
                            "system": None,
                            "instruction": question,
                            "teacher_output": answer,
                            "reference_answer": str(a + b),
                            "reference_solution": "",
                            "is_common_correct": not wrong,
                        }
                    )
                    + "\n"
                )
    finally:
        for f in files:
            f.close()
    return sum(p.stat().st_size for p in folder.glob("*.jsonl"))


def first_rows(corpus: Path, n: int) -> list[dict]:
    with open(next(corpus.glob("*.jsonl")), encoding="utf-8") as f:
        return [json.loads(line) for line, _ in zip(f, range(n), strict=False)]


def build_student(folder: Path, corpus: Path) -> Path:
    """A one-layer random Qwen2 with a 1,024-token byte-level BPE tokenizer trained on the corpus."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    from scas_hub.testing.models import QWEN_CHAT_TEMPLATE

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    sample = [t for row in first_rows(corpus, 200) for t in (row["instruction"], row["teacher_output"])]
    backend.train_from_iterator(
        sample,
        trainers.BpeTrainer(
            vocab_size=1024, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=specials[1:],
    )
    tok.chat_template = QWEN_CHAT_TEMPLATE
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32_768,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


# ---- measuring a run ----------------------------------------------------------------------------------


def _tree_rss(root: int) -> dict[int, int]:
    """RSS in bytes of `root` and all its descendants (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = {}, [root]
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm") as f:
                out[pid] = int(f.read().split()[1]) * page
        except OSError:
            continue
        todo.extend(children.get(pid, []))
    return out


def run_measured(cmd: list[str], env: dict[str, str], interval: float = 0.25) -> tuple[int, list, str]:
    """Run `cmd`; return its exit code, `(epoch, largest RSS, total RSS)` samples and its stderr tail."""
    samples: list[tuple[float, int, int]] = []
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                rss = _tree_rss(proc.pid)
                if rss:
                    samples.append((time.time(), max(rss.values()), sum(rss.values())))
                stop.wait(interval)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        code = proc.wait()
        stop.set()
        thread.join()
        err.seek(0)
        tail = err.read()[-3000:]
    return code, samples, tail


def curate_run(student: Path, corpus: Path, work: Path, processes: int, max_length: int | None) -> dict:
    """One cold `scas-hub curate` run: per-stage seconds, candidates/s and peak RSS."""
    out = work / "out"
    env = {
        **os.environ,
        "SCAS_HUB_CACHE": str(work / "cache"),
        "SCAS_HUB_SCORE_CACHE": str(work / "scores"),
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // processes)),
    }
    cmd = [
        sys.executable,
        "-m",
        "scas_hub",
        "curate",
        "--student",
        str(student),
        "--source",
        str(corpus),
        "--out",
        str(out),
        "--verify",
        "math",
        "--no-progress",
        "--num-processes",
        str(processes),
    ]
    if max_length:
        cmd += ["--max-length", str(max_length), "--truncate"]
    started = time.time()
    code, samples, tail = run_measured(cmd, env)
    wall = time.time() - started
    if code != 0:
        raise SystemExit(f"curate failed ({code}):\n{tail}")
    record = json.loads((out / "selection_stats.json").read_text())
    stages = record["run"]["stages"]
    rows = record["rows_in"]
    result = {
        "processes": processes,
        "candidates": rows,
        "wall_s": wall,
        "peak_rss": max((s[1] for s in samples), default=0),
        "tokens_scored": record["tokens_scored"],
        "rows_scored": record["rows_scored"],
        "table_bytes": _folder_bytes(work / "cache" / "tables"),
        "stages": {},
    }
    bounds = [
        (name, stages[name]["started"], stages[name]["started"] + stages[name]["seconds"])
        for name in STAGES
        if name in stages
    ]
    for i, (name, start, end) in enumerate(bounds):
        # a stage runs until the next one starts (ranks finish at different times)
        end = max(end, bounds[i + 1][1]) if i + 1 < len(bounds) else end
        inside = [s[1] for s in samples if start - 0.3 <= s[0] <= end + 0.3]
        seconds = stages[name]["seconds"]
        result["stages"][name] = {
            "seconds": seconds,
            "per_s": rows / seconds if seconds else float("inf"),
            "peak_rss": max(inside, default=0),
        }
    return result


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def source_verify_run(corpus: Path, work: Path, workers: int) -> dict:
    """The source + verify stage alone (math-verify), with `workers` processes, cold cache."""
    env = {**os.environ, "SCAS_HUB_CACHE": str(work / f"cache-w{workers}"), "SCAS_HUB_NUM_PROC": str(workers)}
    code = (
        "import json, sys, time\n"
        "from scas_hub.pipeline import load_table\nfrom scas_hub.stats import PipelineStats\n"
        "s = PipelineStats(); t = time.perf_counter()\n"
        "load_table(sys.argv[1], None, None, s, 'math')\n"
        "print(json.dumps({'seconds': time.perf_counter() - t, 'rows': s.rows_in}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(corpus)], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"source+verify failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- report -------------------------------------------------------------------------------------------


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def tokens_per_candidate(student: Path, corpus: Path, n: int = 256) -> float:
    """Mean whole-candidate length (system + question + answer) in the bench tokenizer's tokens."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(student)
    rows = first_rows(corpus, n)
    return sum(len(tok(r["instruction"] + r["teacher_output"])["input_ids"]) + 20 for r in rows) / len(rows)


def projection(
    runs: dict, scales: list[int], tokens_per_second: float, gpus: list[int], tokens_per_candidate: float
) -> list[str]:
    """Lines projecting 1M and 10M candidates from the slope between the smallest and largest scale."""
    lo, hi = min(scales), max(scales)
    lines = []
    for procs in sorted({p for (_, p) in runs}):
        a, b = runs.get((lo, procs)), runs.get((hi, procs))
        if not a or not b or a["candidates"] == b["candidates"]:
            continue
        dn = b["candidates"] - a["candidates"]
        rss_slope = (b["peak_rss"] - a["peak_rss"]) / dn
        disk_slope = (b["table_bytes"] - a["table_bytes"]) / dn
        for n in (1_000_000, 10_000_000):
            rss = b["peak_rss"] + rss_slope * (n - b["candidates"])
            disk = b["table_bytes"] + disk_slope * (n - b["candidates"])
            hours = ", ".join(
                f"{g} GPU {n * tokens_per_candidate / (tokens_per_second * g) / 3600:,.1f} h" for g in gpus
            )
            lines.append(
                f"projection {n:>10,} candidates ({procs} proc slope): table on disk "
                f"{disk / 2**30:,.2f} GiB, RAM per rank {rss / 2**30:,.2f} GiB, scoring at "
                f"{tokens_per_second:,.0f} tok/s per GPU x {tokens_per_candidate:,.0f} tok/candidate: {hours}"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-questions", type=int, default=1024, help="questions at 1x (x8 teachers)")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--answer-bytes", type=int, default=4000)
    parser.add_argument(
        "--max-length",
        type=int,
        default=160,
        help="score each candidate's first N tokens (--truncate), so that the pipeline's own cost "
        "shows on a CPU; 0: whole answers",
    )
    parser.add_argument(
        "--tokens-per-second",
        type=float,
        default=50_000,
        help="scoring throughput per GPU for the projection (stated, not measured here)",
    )
    parser.add_argument("--gpus", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--no-source-verify", action="store_true", help="skip the 1-vs-2-worker source+verify run")
    parser.add_argument("--json", default=None, help="also write every figure to this file")
    parser.add_argument("--work", default=None, help="work folder (default: a temporary one, removed)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="scas-bench-scale-") as tmp:
        work = Path(args.work or tmp)
        corpora = {}
        for scale in args.scales:
            folder = work / f"corpus-{scale}x"
            size = write_corpus(folder, args.base_questions * scale, args.answer_bytes)
            corpora[scale] = folder
            print(
                f"corpus {scale}x: {args.base_questions * scale * TEACHERS:,} candidates, {mib(size)} of JSONL",
                flush=True,
            )
        student = build_student(work / "student", corpora[min(args.scales)])
        runs: dict[tuple[int, int], dict] = {}
        print(f"\n{'scale':>5} {'procs':>5} {'stage':>14} {'seconds':>9} {'cand/s':>9} {'peak RSS':>10}")
        for scale in args.scales:
            for procs in args.processes:
                r = curate_run(student, corpora[scale], work / f"run-{scale}x-{procs}p", procs, args.max_length)
                runs[(scale, procs)] = r
                for name, s in r["stages"].items():
                    print(
                        f"{scale:>4}x {procs:>5} {name:>14} {s['seconds']:>9.1f} {s['per_s']:>9,.0f} "
                        f"{mib(s['peak_rss']):>10}",
                        flush=True,
                    )
                print(
                    f"{scale:>4}x {procs:>5} {'whole run':>14} {r['wall_s']:>9.1f} "
                    f"{r['candidates'] / r['wall_s']:>9,.0f} {mib(r['peak_rss']):>10}  "
                    f"(table {mib(r['table_bytes'])})",
                    flush=True,
                )

        lo, hi = min(args.scales), max(args.scales)
        print()
        for procs in args.processes:
            a, b = runs[(lo, procs)], runs[(hi, procs)]
            ratio = b["peak_rss"] / a["peak_rss"]
            speed = (b["candidates"] / b["wall_s"]) / (a["candidates"] / a["wall_s"])
            print(
                f"{procs} proc: peak RSS {hi}x/{lo}x = {ratio:.2f} (target <= 1.25, and {mib(b['peak_rss'])} "
                f"<= 1 GiB: {'yes' if b['peak_rss'] <= 2**30 else 'no'}); candidates/s {hi}x/{lo}x = {speed:.2f} "
                "(target >= 0.90)"
            )
        sv = {}
        if not args.no_source_verify:
            for workers in (1, 2):
                sv[workers] = source_verify_run(corpora[hi], work, workers)
            print(
                f"source+verify (math-verify) at {hi}x: 1 worker {sv[1]['seconds']:.1f} s, 2 workers "
                f"{sv[2]['seconds']:.1f} s, speed-up {sv[1]['seconds'] / sv[2]['seconds']:.2f}x (target >= 1.8)"
            )
        per_candidate = tokens_per_candidate(student, corpora[hi])
        for line in projection(runs, args.scales, args.tokens_per_second, args.gpus, per_candidate):
            print(line)
        if args.json:
            Path(args.json).write_text(
                json.dumps({"runs": {f"{s}x-{p}p": r for (s, p), r in runs.items()}, "source_verify": sv}, indent=1)
            )


if __name__ == "__main__":
    main()
