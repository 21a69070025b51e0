"""Scoring on several processes, resuming after a crash, and the score cache."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from scas_hub import SelectionConfig, StudentConfig, curate
from scas_hub.testing.corpus import synthetic_pool, write_pool


def data_hashes(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*/*.parquet"))
    }


def cli(model: Path, corpus: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "scas_hub",
        "curate",
        "--student",
        str(model),
        "--source",
        str(corpus),
        "--out",
        str(out),
        "--verify",
        "trusted",
        "--window-chars",
        "3000",
        "--score-cache",
        str(cache),
        "--no-progress",
        *extra,
    ]


def in_process(model: Path, corpus: Path, out: Path, cache: Path) -> dict:
    """The run `cli(...)` describes, through the Python API in this process; its selection stats."""
    from scas_hub.score.engine import ScoringConfig

    curate(
        str(model),
        str(corpus),
        out,
        verification="trusted",
        scoring=ScoringConfig(window_chars=3000, progress=False, score_cache=cache),
    )
    return json.loads((out / "selection_stats.json").read_text())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    write_pool(synthetic_pool(30, teachers=5, max_words=150, seed=11), folder)
    return folder


def test_two_cpu_ranks_give_the_single_process_dataset(tmp_path, corpus, tiny_qwen_dir):
    s1 = in_process(tiny_qwen_dir, corpus, tmp_path / "one", tmp_path / "c1")
    double = subprocess.run(
        cli(tiny_qwen_dir, corpus, tmp_path / "two", tmp_path / "c2", "--num-processes", "2"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert double.returncode == 0, double.stderr[-3000:]
    assert data_hashes(tmp_path / "one") == data_hashes(tmp_path / "two")
    s2 = json.loads((tmp_path / "two" / "selection_stats.json").read_text())
    for key in [
        "rows_in",
        "rows_scored",
        "skipped",
        "questions_in",
        "questions_selected",
        "questions_dropped",
        "tokens_scored",
    ]:
        assert s1[key] == s2[key], key
    assert s2["student"]["processes"] == 2
    card = (tmp_path / "two" / "README.md").read_text()
    ranks = [line for line in card.splitlines() if line.startswith(("| 0 | cpu", "| 1 | cpu"))]
    assert len(ranks) == 2  # both ranks scored a share
    assert double.stdout.count("Dataset folder:") == 1  # rank 0 alone writes and reports


def test_killed_run_resumes_without_rescoring(tmp_path, corpus, tiny_qwen_dir):
    cache = tmp_path / "cache"
    proc = subprocess.Popen(
        cli(tiny_qwen_dir, corpus, tmp_path / "resumed", cache), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while time.time() < deadline and len(list(cache.glob("*/window-*.arrow"))) < 2:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    shards = list(cache.glob("*/window-*.arrow"))
    finished = sum(pa.ipc.open_file(str(p)).read_all().num_rows for p in shards)
    assert 0 < finished < 150, "the kill must land mid-scoring"

    stats = in_process(tiny_qwen_dir, corpus, tmp_path / "resumed", cache)
    assert stats["scores_from_cache"] == finished
    assert stats["rows_scored"] == 150
    in_process(tiny_qwen_dir, corpus, tmp_path / "fresh", tmp_path / "other-cache")
    assert data_hashes(tmp_path / "resumed") == data_hashes(tmp_path / "fresh")


@pytest.mark.slow  # ~25 s: four CLI runs; the key is checked in-process by test_chat_template
def test_cache_is_keyed_by_student_and_content_not_selection(tmp_path, tiny_qwen_dir, qwen_tokenizer):
    from scas_hub.score.engine import ScoringConfig
    from scas_hub.testing.models import tiny_qwen2

    rows = synthetic_pool(4, teachers=3, max_words=30, seed=5)
    write_pool(rows, tmp_path / "corpus")
    cache = tmp_path / "cache"
    kw = dict(
        source=str(tmp_path / "corpus"),
        verification="trusted",
        scoring=ScoringConfig(progress=False, score_cache=cache),
    )
    first = curate(str(tiny_qwen_dir), out=tmp_path / "a", **kw)
    assert first.stats["scores_from_cache"] == 0
    # new lambda and strategy: every score comes from the cache
    again = curate(str(tiny_qwen_dir), out=tmp_path / "b", **kw, selection=SelectionConfig(strategy="argmin", lam=0.2))
    assert again.stats["scores_from_cache"] == 12 == again.stats["rows_scored"]
    # one answer edited: exactly that candidate is scored again
    rows["teacher-1"][2]["teacher_output"] += " (edited)"
    write_pool(rows, tmp_path / "corpus")
    edited = curate(str(tiny_qwen_dir), out=tmp_path / "c", **kw)
    assert edited.stats["scores_from_cache"] == 11
    # another student (other weights): nothing from the cache
    other = tiny_qwen2(tmp_path / "other-student", tokenizer=qwen_tokenizer, seed=1)
    assert curate(str(other), out=tmp_path / "d", **kw).stats["scores_from_cache"] == 0
    # another dtype: nothing from the cache
    assert (
        curate(StudentConfig(str(tiny_qwen_dir), dtype="bfloat16"), out=tmp_path / "e", **kw).stats["scores_from_cache"]
        == 0
    )
