"""The benchmark script keeps working and prints the figures the engine issue asks for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_scoring.py"


@pytest.mark.slow
def test_bench_quick_prints_ratios():
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=900, cwd=BENCH.parent
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for needle in [
        "ratio engine/naive =",
        "ratio engine/forward =",
        "selections differing bfloat16 vs float32",
        "ratio 2x/1x =",
        "long-answer peak memory",
        "matmul work naive/engine =",
    ]:
        assert needle in out, needle
    # speed never buys a different answer
    lines = [x for x in out.splitlines() if "score error vs naive float32 [float32" in x]
    assert len(lines) == 2  # the default engines: sdpa, sdpa+compile
    for line in lines:
        assert float(line.split("max rel ")[1].split(",")[0]) <= 1e-4, line
