"""`scas-hub ablate` end to end on a tiny Qwen2 (1 training step, 2 questions: machinery, not accuracy),
resuming, hold-out hygiene, the report and its push; the statistics on known per-question outcomes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from scas_hub.ablate import paired_comparison, question_scores, strategy_summary
from scas_hub.ablate.arms import ArmResult
from scas_hub.errors import ConfigError
from scas_hub.evaluate import (
    EvalReport,
    QuestionResult,
    QuestionsConfig,
    accuracy_interval,
    find_overlap,
    paired_difference,
)
from scas_hub.evaluate.questions import EvalQuestion
from scas_hub.records import Candidate
from scas_hub.testing.corpus import synthetic_pool, write_pool

ARGS = [
    "--strategies",
    "scas,random",
    "--limit",
    "2",
    "--max-new-tokens",
    "2",
    "--max-steps",
    "2",
    "--effective-batch",
    "1",
    "--no-progress",
    "--exclude-overlap",
]


def _report(correct: list[bool], ids=None) -> EvalReport:
    ids = ids or [f"q{i}" for i in range(len(correct))]
    return EvalReport(
        [QuestionResult(q, "x", c, "correct" if c else "not_verified", "1") for q, c in zip(ids, correct, strict=True)]
    )


def _arm(strategy, seed, correct):
    return ArmResult(strategy, seed, {"final_loss": 1.0}, _report(correct))


# ---- statistics --------------------------------------------------------------------------------


def test_bootstrap_interval_contains_the_estimate_is_seeded_and_shrinks_with_n():
    rng = np.random.default_rng(3)
    small, large = rng.random(40) < 0.6, rng.random(1600) < 0.6
    a = accuracy_interval(small, seed=1)
    assert a.low <= a.estimate <= a.high and a.estimate == pytest.approx(small.mean())
    assert accuracy_interval(small, seed=1) == a
    b = accuracy_interval(large, seed=1)
    assert (b.high - b.low) < (a.high - a.low) / 3  # ~ 1/sqrt(n): 40x the questions, ~6x narrower
    assert accuracy_interval([1.0], seed=1).low is None  # one question: no interval


def test_paired_difference_is_narrower_than_the_questions_alone_suggest():
    rng = np.random.default_rng(0)
    base = (rng.random(300) < 0.5).astype(float)
    better = base.copy()
    better[np.flatnonzero(base == 0)[:15]] = 1.0  # the same questions, 15 more right
    diff = paired_difference(better, base, seed=0)
    assert diff.estimate == pytest.approx(15 / 300)
    assert 0 < diff.low <= diff.estimate <= diff.high  # a paired test resolves a 5-point gain on 300 questions
    alone = accuracy_interval(better, seed=0)
    assert diff.high - diff.low < (alone.high - alone.low) / 2


def test_seed_means_standard_errors_and_the_paired_comparison():
    ids = ["q0", "q1", "q2", "q3"]
    scas = [_arm("scas", 42, [True, True, False, False]), _arm("scas", 43, [True, False, False, False])]
    other = [_arm("random", 42, [True, False, False, True]), _arm("random", 43, [True, False, False, True])]
    assert question_scores(scas, ids).tolist() == [1.0, 0.5, 0.0, 0.0]
    summary = strategy_summary(scas, ids, seed=0)
    assert summary["accuracy"] == pytest.approx(0.375) and summary["n_questions"] == 4
    assert summary["accuracy_per_seed"] == [0.5, 0.25] and summary["seed_mean"] == pytest.approx(0.375)
    assert summary["seed_stderr"] == pytest.approx(np.std([0.5, 0.25], ddof=1) / np.sqrt(2))
    assert summary["ci_low"] <= 0.375 <= summary["ci_high"]
    vs = paired_comparison(other, scas, ids, seed=0)
    assert vs["difference"] == pytest.approx(0.5 - 0.375)
    assert (vs["questions_better"], vs["questions_worse"], vs["questions_same"]) == (1, 1, 2)
    with pytest.raises(ValueError, match="other questions"):
        question_scores([_arm("scas", 42, [True, False])], ids)


# ---- hold-out hygiene --------------------------------------------------------------------------


def test_overlap_is_matched_by_normalised_question_text():
    questions = [
        EvalQuestion("e1", "What is 2 + 3?", "5"),
        EvalQuestion("e2", "What is 6 * 7?", "42"),
        EvalQuestion("e3", "Never seen?", "1"),
    ]
    corpus = [
        Candidate("c1", "a", "  WHAT is 2 +\n3? ", "5"),
        Candidate("c1", "b", "what is 2 + 3?", "5"),
        Candidate("c9", "a", "What is 6 * 7?", "42"),
        Candidate("c5", "a", "What is 6 * 8?", "48"),
    ]
    overlap = find_overlap(corpus, questions)
    assert overlap.eval_question_ids == ("e1", "e2")
    assert overlap.corpus_question_ids == ("c1", "c9") and overlap.corpus_rows == 3
    assert overlap.to_dict()["eval_questions"] == 2


# ---- end to end --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rows = synthetic_pool(6, teachers=3, max_words=20, seed=5, subset="train")
    for teacher_rows in rows.values():
        for row in teacher_rows:
            row["reference_solution"] = f"The answer is {row['reference_answer']}."
    return write_pool(rows, tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def ablation(corpus, tiny_qwen_dir, tmp_path_factory):
    pytest.importorskip("trl")  # training needs the [train] extra; the statistics tests above do not
    from scas_hub.cli import main

    out = tmp_path_factory.mktemp("ablation") / "run"
    code = main(
        [
            "ablate",
            "--student",
            str(tiny_qwen_dir),
            "--source",
            str(corpus),
            "--eval",
            str(corpus),
            *ARGS,
            "--out",
            str(out),
        ]
    )
    assert code == 0
    return out


def test_ablation_json_has_every_strategy_with_intervals_and_the_paired_comparison(ablation):
    record = json.loads((ablation / "ablation.json").read_text())
    assert set(record["strategies"]) == {"scas", "random"}
    for name, s in record["strategies"].items():
        arm = json.loads((ablation / "arms" / name / "seed-42.json").read_text())
        per_question = arm["report"]["per_question"]
        assert s["n_questions"] == len(per_question) == 2
        assert s["accuracy"] == sum(p["correct"] for p in per_question) / 2
        assert s["ci_low"] <= s["accuracy"] <= s["ci_high"]
        assert s["seeds"] == [42] and s["seed_stderr"] is None
        assert s["training"][0]["steps"] == 2 and s["training"][0]["checkpoint"] == f"checkpoints/{name}/seed-42"
        facts = json.loads((ablation / f"checkpoints/{name}/seed-42/training_facts.json").read_text())
        assert (arm["training"]["rows_cut"], arm["training"]["max_length"]) == (facts["rows_cut"], 4096)
        assert s["reference_nll"] > 0
    assert "vs_scas" in record["strategies"]["random"] and "vs_scas" not in record["strategies"]["scas"]
    assert record["baseline"]["n_questions"] == 2
    # the same questions for every arm, and everything that pins the run
    assert len(record["eval"]["question_ids"]) == 2
    assert record["decoding"]["max_new_tokens"] == 2 and record["decoding"]["strategy"] == "greedy"
    assert record["training"]["max_steps"] == 2 and record["training"]["learning_rate"] == 1e-5
    assert record["student"]["revision"].startswith("local-")
    assert {"torch", "transformers", "trl"} <= set(record["run"]["versions"])
    assert record["run"]["command"].startswith("scas-hub ablate --student")
    assert record["bootstrap"]["unit"] == "questions"


def test_overlapping_questions_are_counted_and_kept_out_of_training(ablation, corpus):
    from scas_hub.evaluate import load_eval_questions

    record = json.loads((ablation / "ablation.json").read_text())
    assert record["overlap"]["eval_questions"] == 2  # the eval set is drawn from the training corpus
    assert record["overlap"]["corpus_rows"] == 6
    assert record["excluded_from_training"] == {"corpus_questions": 2, "rows": 6}
    eval_set = load_eval_questions(corpus, limit=2, sample_seed=42)  # the same seeded draw
    assert [q.question_id for q in eval_set.questions] == record["eval"]["question_ids"]
    for name in ("scas", "random"):
        stats = json.loads((ablation / "datasets" / name / "selection_stats.json").read_text())
        assert stats["skipped"]["held_out"] == 6 and stats["questions_selected"] == 4
        rows = pq.read_table(ablation / "datasets" / name / "data").to_pylist()
        asked = {r["messages"][1]["content"] for r in rows}
        assert len(rows) == 4 and asked.isdisjoint(q.instruction for q in eval_set.questions)
        assert record["training_corpus"]["datasets"][name]["questions_selected"] == 4


def test_the_readme_holds_the_table_and_the_chart(ablation):
    readme = (ablation / "README.md").read_text()
    record = json.loads((ablation / "ablation.json").read_text())
    assert (ablation / "figures" / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert "![accuracy per strategy](figures/accuracy.png)" in readme
    scas = record["strategies"]["scas"]
    assert f"| scas | {100 * scas['accuracy']:.1f}% |" in readme and "| random |" in readme and "| baseline |" in readme
    assert "2 of the 2 eval questions also appear in the training corpus" in readme
    assert record["run"]["command"] in readme and "2 optimizer steps" in readme
    assert f"| student | `local:{record['student']['name']}` @ `local-" in readme  # not its absolute path


def test_a_rerun_resumes_without_redoing_finished_arms(ablation, corpus, tiny_qwen_dir, tmp_path, monkeypatch):
    from scas_hub.ablate import experiment
    from scas_hub.cli import main

    out = tmp_path / "run"
    shutil.copytree(ablation, out)
    before = json.loads((out / "ablation.json").read_text())
    (out / "arms" / "random" / "seed-42.json").unlink()  # as if the run crashed while evaluating this arm
    trained, evaluated = [], []
    train_arm, evaluate_student = experiment.train_arm, experiment.evaluate_student
    monkeypatch.setattr(experiment, "train_arm", lambda *a, **k: trained.append(a[0].name) or train_arm(*a, **k))
    monkeypatch.setattr(
        experiment, "evaluate_student", lambda *a, **k: evaluated.append(a[0]) or evaluate_student(*a, **k)
    )
    argv = ["ablate", "--student", str(tiny_qwen_dir), "--source", str(corpus), "--eval", str(corpus), *ARGS]
    assert main([*argv, "--out", str(out)]) == 0
    assert trained == ["random"] and len(evaluated) == 1  # scas and the baseline were not redone
    after = json.loads((out / "ablation.json").read_text())
    assert after["strategies"] == before["strategies"]  # the checkpoint was finished: same model, same answers
    # another budget in the same folder is refused, and a folder scas-hub did not write is left alone
    assert main([*argv, "--max-steps", "3", "--out", str(out)]) == 2
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        from scas_hub.ablate import ablate

        ablate(
            str(tiny_qwen_dir), QuestionsConfig(str(corpus), limit=1), foreign, source=str(corpus), strategies=["scas"]
        )
    assert (foreign / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("repo_type", ["dataset", "model"])
def test_the_report_is_pushed_to_the_hub(ablation, fake_hub, repo_type):
    from scas_hub.ablate.report import push_report

    commit = push_report(ablation, "me/scas-ablation", repo_type=repo_type)
    files = fake_hub.files("me/scas-ablation", repo_type=repo_type)
    assert {
        "README.md",
        "ablation.json",
        "figures/accuracy.png",
        "arms/baseline.json",
        "arms/scas/seed-42.json",
        "arms/random/seed-42.json",
    } == set(files) - {".gitattributes"}  # never datasets or checkpoints
    assert files["ablation.json"] == (ablation / "ablation.json").read_bytes() and len(commit) == 40


def test_ablate_takes_its_student_and_questions_as_configs_and_refuses_what_it_cannot_run(tmp_path):
    from scas_hub.ablate import ablate
    from scas_hub.student.config import StudentConfig

    templated = StudentConfig("smollm2-135m", chat_template="{{ messages }}")
    with pytest.raises(ConfigError, match="chat template"):  # training and evaluation use the student's own
        ablate(templated, QuestionsConfig("demo", limit=1), tmp_path / "a")
    with pytest.raises(ConfigError, match="--eval SOURCE is required"):
        ablate(StudentConfig("smollm2-135m"), QuestionsConfig(limit=1), tmp_path / "a")
    assert not (tmp_path / "a").exists()
