"""Peak memory and speed of the source + verify stages on a large corpus of short rows.

Writes a pool-layout corpus (one JSONL file per teacher, ids aligned, flags for verification) into
a temporary folder, then, in a fresh interpreter per size, streams it through `open_source` ->
`iter_verified` and prints peak RSS and rows/s. Two sizes side by side show whether memory grows
with the corpus; `--materialize` also keeps every question (what `load_questions` returns today).

    python benchmarks/source_memory.py                       # 100k and 1M candidates
    python benchmarks/source_memory.py --sizes 1000000 --materialize
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_corpus(folder: Path, n_candidates: int, teachers: int, seed: int = 0) -> None:
    """`teachers` files of `n_candidates / teachers` short rows; ~3% flagged incorrect."""
    rng = random.Random(seed)
    n_questions = n_candidates // teachers
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(teachers):
        with open(folder / f"teacher-{t}.jsonl", "w", encoding="utf-8") as f:
            for i in range(n_questions):
                a, b = (i * 7919) % 1000, (i * 104729) % 1000
                row = {
                    "id": i,
                    "source_dataset": "bench",
                    "teacher_name": f"teacher-{t}",
                    "system": None,
                    "instruction": f"Question {i}: what is {a} + {b}?",
                    "teacher_output": f"Teacher {t} says {a} + {b} = \\boxed{{{a + b}}}.",
                    "reference_answer": str(a + b),
                    "is_correct": rng.random() > 0.03,
                }
                f.write(json.dumps(row) + "\n")


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(folder: str, materialize: bool) -> dict:
    """Run in a fresh interpreter: stream the corpus through the source + verify stages."""
    import resource

    from scas_hub.source import open_source
    from scas_hub.stats import PipelineStats
    from scas_hub.verify import QuestionGrouper, iter_verified

    baseline = _rss_mb()
    stats, grouper = PipelineStats(), QuestionGrouper()
    start = time.perf_counter()
    kept_questions, n_questions = [], 0
    for question in iter_verified(open_source(folder).candidates(), stats, rule="flags", grouper=grouper):
        n_questions += 1
        if materialize:
            kept_questions.append(question)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "rows": stats.rows_in,
        "questions": n_questions,
        "skipped": dict(stats.skipped),
        "seconds": seconds,
        "rows_per_s": stats.rows_in / seconds,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": peak,
        "runs_spilled": grouper.runs_spilled,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--teachers", type=int, default=8)
    parser.add_argument("--materialize", action="store_true", help="also keep all questions, as load_questions does")
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.materialize)))
        return

    modes = [False, True] if args.materialize else [False]
    print(
        f"{'candidates':>10} {'mode':>11} {'rows/s':>9} {'seconds':>8} {'base RSS':>9} {'peak RSS':>9} "
        f"{'growth':>8} {'runs':>5}"
    )
    with tempfile.TemporaryDirectory(prefix="scas-hub-bench-") as tmp:
        for size in args.sizes:
            folder = Path(tmp) / f"corpus-{size}"
            write_corpus(folder, size, args.teachers)
            disk = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
            for materialize in modes:
                cmd = [sys.executable, __file__, "--measure", str(folder)] + (["--materialize"] if materialize else [])
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                r = json.loads(out.strip().splitlines()[-1])
                mode = "materialize" if materialize else "stream"
                print(
                    f"{r['rows']:>10,} {mode:>11} {r['rows_per_s']:>9,.0f} {r['seconds']:>8.1f} "
                    f"{r['baseline_rss_mb']:>7.0f}MB {r['peak_rss_mb']:>7.0f}MB "
                    f"{r['peak_rss_mb'] - r['baseline_rss_mb']:>6.0f}MB {r['runs_spilled']:>5}"
                    f"   ({r['questions']:,} questions, {disk:.0f} MB on disk, skipped {r['skipped']})"
                )


if __name__ == "__main__":
    main()
