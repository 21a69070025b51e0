"""The chat template: every change to it re-scores, its SHA-256 is recorded, and `--chat-template FILE`
renders with a template of the user's choice (e.g. for a checkpoint whose tokenizer has none)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from scas_hub import ScoringConfig, StudentConfig, StudentError, curate
from scas_hub.student.chat import chat_template_sha256
from scas_hub.testing.corpus import synthetic_pool, write_pool
from scas_hub.testing.models import QWEN_CHAT_TEMPLATE

SYSTEM_TURN = "'<|im_start|>system\\n' + messages[0]['content']"
EDITED_SYSTEM_TURN = "'<|im_start|>system\\nKnowledge cutoff: 2024.\\n' + messages[0]['content']"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def scores(out: Path) -> dict[tuple[str, str], float]:
    return {(r["question_id"], r["teacher"]): r["scas_score"] for r in pq.read_table(out / "candidates").to_pylist()}


def stats(out: Path) -> dict:
    return json.loads((out / "selection_stats.json").read_text())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    write_pool(synthetic_pool(4, teachers=3, max_words=30, seed=5), folder)
    return folder


def test_editing_chat_template_jinja_rescores(tmp_path, corpus, tiny_qwen_dir):
    student = Path(shutil.copytree(tiny_qwen_dir, tmp_path / "ckpt"))
    kw = dict(
        source=str(corpus),
        verification="trusted",
        scoring=ScoringConfig(progress=False, score_cache=tmp_path / "cache"),
    )
    first = curate(str(student), out=tmp_path / "a", **kw)
    assert first.stats["scores_from_cache"] == 0
    assert first.stats["student"]["chat_template_sha256"] == sha256((student / "chat_template.jinja").read_text())
    assert first.stats["student"]["chat_template_override"] is False
    # unchanged rerun: every score from the cache
    again = curate(str(student), out=tmp_path / "b", **kw)
    assert again.stats["scores_from_cache"] == again.stats["rows_scored"] == 12

    template = student / "chat_template.jinja"
    text = template.read_text()
    assert SYSTEM_TURN in text
    template.write_text(text.replace(SYSTEM_TURN, EDITED_SYSTEM_TURN))
    edited = curate(str(student), out=tmp_path / "c", **kw)
    assert edited.stats["scores_from_cache"] == 0 and edited.stats["rows_scored"] == 12
    assert edited.stats["student"]["chat_template_sha256"] == sha256(template.read_text())
    assert edited.stats["student"]["chat_template_sha256"] != first.stats["student"]["chat_template_sha256"]
    assert edited.stats["student"]["revision"] != first.stats["student"]["revision"]
    before, after = scores(tmp_path / "a"), scores(tmp_path / "c")
    assert before.keys() == after.keys()
    assert all(abs(after[k] - before[k]) > 1e-6 for k in before)
    card = (tmp_path / "c" / "README.md").read_text()
    short = edited.stats["student"]["chat_template_sha256"][:12]
    assert f"chat template sha256 `{short}` (the tokenizer's own)" in card


def test_sha256_helper_names_the_template_rendered_with(qwen_tokenizer):
    assert chat_template_sha256(qwen_tokenizer) == sha256(qwen_tokenizer.chat_template) == sha256(QWEN_CHAT_TEMPLATE)
    assert chat_template_sha256(qwen_tokenizer, "{{ messages }}") == sha256("{{ messages }}")


@pytest.fixture(scope="module")
def no_template_student(tmp_path_factory, tiny_qwen_dir) -> Path:
    """The tiny Qwen2 checkpoint with its chat template removed."""
    student = Path(shutil.copytree(tiny_qwen_dir, tmp_path_factory.mktemp("no-template") / "ckpt"))
    (student / "chat_template.jinja").unlink()
    config = json.loads((student / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (student / "tokenizer_config.json").write_text(json.dumps(config))
    return student


def cli(student: Path, corpus: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return [
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
        "trusted",
        "--score-cache",
        str(cache),
        "--no-progress",
        *extra,
    ]


@pytest.mark.slow  # ~40 s: CLI runs; the override and its cache key are checked in-process by the other tests here
def test_checkpoint_without_template_needs_chat_template_option(tmp_path, corpus, no_template_student):
    missing = subprocess.run(
        cli(no_template_student, corpus, tmp_path / "x", tmp_path / "cache"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing.returncode == 2
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1 and "no chat template" in lines[0] and "--chat-template FILE" in lines[0], missing.stderr
    assert not (tmp_path / "x").exists()
    with pytest.raises(StudentError, match="chat_template="):
        curate(
            str(no_template_student),
            str(corpus),
            tmp_path / "y",
            verification="trusted",
            scoring=ScoringConfig(progress=False, score_cache=False),
        )

    template = tmp_path / "qwen.jinja"
    template.write_text(QWEN_CHAT_TEMPLATE)
    out = tmp_path / "with-template"
    ok = subprocess.run(
        cli(no_template_student, corpus, out, tmp_path / "cache", "--chat-template", str(template)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr[-3000:]
    record = stats(out)
    assert record["rows_scored"] == 12 and record["questions_selected"] == 4
    assert record["student"]["chat_template_sha256"] == sha256(QWEN_CHAT_TEMPLATE)
    assert record["student"]["chat_template_override"] is True
    assert "(**override** given with `--chat-template`" in (out / "README.md").read_text()

    # the Python API, template as text: the same scoring key, so every score comes from the CLI's cache
    again = curate(
        StudentConfig(str(no_template_student), chat_template=QWEN_CHAT_TEMPLATE),
        str(corpus),
        tmp_path / "api",
        verification="trusted",
        scoring=ScoringConfig(progress=False, score_cache=tmp_path / "cache"),
    )
    assert again.stats["scores_from_cache"] == 12
    assert scores(tmp_path / "api") == scores(out)
    # another override template: scored again, with other scores
    other = curate(
        StudentConfig(
            str(no_template_student), chat_template=template.read_text().replace(SYSTEM_TURN, EDITED_SYSTEM_TURN)
        ),
        str(corpus),
        tmp_path / "other",
        verification="trusted",
        scoring=ScoringConfig(progress=False, score_cache=tmp_path / "cache"),
    )
    assert other.stats["scores_from_cache"] == 0
    assert scores(tmp_path / "other") != scores(out)


@pytest.mark.slow  # two `accelerate launch` ranks; tests/score/test_distributed.py covers the ranks themselves
def test_chat_template_option_on_two_processes(tmp_path, corpus, no_template_student):
    template = tmp_path / "qwen.jinja"
    template.write_text(QWEN_CHAT_TEMPLATE)
    runs = {}
    for n in (1, 2):
        out = tmp_path / f"np{n}"
        proc = subprocess.run(
            cli(
                no_template_student,
                corpus,
                out,
                tmp_path / f"cache{n}",
                "--chat-template",
                str(template),
                "--num-processes",
                str(n),
                "--window-chars",
                "1500",
            ),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[n] = out
    assert pq.read_table(runs[2] / "candidates").equals(pq.read_table(runs[1] / "candidates"))
    assert stats(runs[2])["student"]["processes"] == 2
    assert stats(runs[2])["student"]["chat_template_sha256"] == sha256(QWEN_CHAT_TEMPLATE)
