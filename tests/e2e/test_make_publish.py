"""`make curate REPO=...` as a user runs it, twice, against the fake Hub: versions, faults, secrets."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from datasets import load_dataset

from scas_hub.testing.corpus import synthetic_pool, write_pool

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hf_MakeTestSecret_5f1d0c2b9a8e7d6c"


def make_curate(tmp_path: Path, student: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_TOKEN": SECRET, "HF_HUB_VERBOSITY": "debug", "SCAS_HUB_PUSH_BACKOFF": "0.01"}
    cmd = [
        "make",
        "-s",
        "-C",
        str(ROOT),
        "curate",
        f"STUDENT={student}",
        f"SOURCE={tmp_path / 'corpus'}",
        f"OUT={tmp_path / 'out'}",
        "REPO=org/make-tiny",
        "ARGS=--no-progress",
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_make_curate_twice_publishes_v1_and_v2(fake_hub, tmp_path, tiny_qwen_dir):
    fake_hub.token = SECRET  # writes without this token are refused, so the token must really be used
    write_pool(synthetic_pool(5, teachers=3, max_words=25, seed=2), tmp_path / "corpus")

    first = make_curate(tmp_path, tiny_qwen_dir)
    assert "org/make-tiny as v1" in first.stdout
    fake_hub.fail("/commit/", status=500)  # mid-push faults in the second run
    fake_hub.fail("/tag/", status=503)
    second = make_curate(tmp_path, tiny_qwen_dir, "STRATEGY=argmin")
    assert "org/make-tiny as v2" in second.stdout
    assert "upload failed (HTTP 500); retry 1/" in second.stderr and "tag v2 failed (HTTP 503)" in second.stderr

    repo = fake_hub.repo("org/make-tiny")
    assert set(repo.tags) == {"v1", "v2"} and repo.tags["v2"] == repo.branches["main"]
    for version, strategy in [("v1", "scas"), ("v2", "argmin")]:
        stats = json.loads(fake_hub.files("org/make-tiny", version)["selection_stats.json"])
        assert stats["selection"]["strategy"] == strategy and stats["release"]["version"] == version
        rows = load_dataset("org/make-tiny", split="train", revision=version)
        assert len(rows) == stats["questions_selected"] == 5
    latest = load_dataset("org/make-tiny", split="train")
    v2_ids = load_dataset("org/make-tiny", split="train", revision="v2")["question_id"]
    assert latest["question_id"] == v2_ids

    assert SECRET in fake_hub.tokens_seen
    for proc in (first, second):
        assert "(authenticated: True)" in proc.stderr  # huggingface_hub's debug log of each request was on
        assert SECRET not in proc.stdout + proc.stderr
    assert not any(SECRET.encode() in blob for blob in fake_hub.stored_blobs())
    assert not any(SECRET.encode() in p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file())
