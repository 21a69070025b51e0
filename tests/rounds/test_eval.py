"""`scas-hub rounds --eval`: the base student and every round's checkpoint answer the same held-out
questions (corpus questions among them are set aside from training); the table, `rounds.json` and the
figure show each accuracy with its interval. `--from-base` trains every round from the base student."""

from __future__ import annotations

import json

import pytest

from scas_hub.cli import main
from scas_hub.rounds.loop import SUMMARY_FILENAME, checkpoint_folder, round_folder
from scas_hub.testing.corpus import synthetic_pool, write_pool

pytest.importorskip("trl")


@pytest.mark.slow  # ~40 s: three evaluations and two trainings (make test-slow)
def test_rounds_eval_scores_every_theta_on_the_same_questions_and_from_base_trains_from_the_base(
    tiny_qwen_dir, tmp_path, capsys
):
    corpus_rows = synthetic_pool(5, teachers=3, max_words=40, seed=8, subset="keep")
    corpus = write_pool(corpus_rows, tmp_path / "corpus")
    eval_rows = synthetic_pool(3, teachers=1, max_words=10, seed=77, subset="held")
    shared = corpus_rows["teacher-0"][0]
    eval_rows["teacher-0"].append({**shared, "teacher": "teacher-0"})
    held = write_pool(eval_rows, tmp_path / "held")
    out = tmp_path / "rounds"
    assert (
        main(
            [
                "rounds",
                "--student",
                str(tiny_qwen_dir),
                "--source",
                str(corpus),
                "--out",
                str(out),
                "--rounds",
                "2",
                "--strategy",
                "argmin",
                "--max-steps",
                "2",
                "--effective-batch",
                "2",
                "--no-score-cache",
                "--no-progress",
                "--from-base",
                "--eval",
                str(held),
                "--max-new-tokens",
                "4",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    summary = json.loads((out / SUMMARY_FILENAME).read_text())

    # the same questions for θ1, θ2, θ3, each with its accuracy and interval
    reports = [json.loads((out / "eval" / f"theta-{k}.json").read_text()) for k in (1, 2, 3)]
    ids = [[q["question_id"] for q in r["per_question"]] for r in reports]
    assert ids[0] == ids[1] == ids[2] and len(ids[0]) == 4
    assert summary["settings"]["eval"]["question_ids"] == ids[0]
    entries = [summary["base_eval"], *(r["eval"] for r in summary["rounds"])]
    for entry, report in zip(entries, reports, strict=True):
        n_correct = sum(q["correct"] for q in report["per_question"])
        assert (entry["n_correct"], entry["n_questions"]) == (n_correct, 4)
        assert entry["accuracy"] == n_correct / 4 and entry["ci_low"] <= entry["accuracy"] <= entry["ci_high"]
    assert [r["student"]["revision"] for r in reports[1:]] == [r["eval"]["student_revision"] for r in summary["rounds"]]
    assert "(θ1, the base student)" in printed and "accuracy of θ[r+1]" in printed
    assert (out / "figures" / "accuracy.png").stat().st_size > 5_000

    # the corpus question that is also an eval question was set aside from every round's training
    assert summary["settings"]["eval"]["overlap_set_aside"]["eval_questions"] == 1
    for r in (1, 2):
        record = json.loads((round_folder(out, r) / "selection_stats.json").read_text())
        assert record["skipped"]["held_out"] == 3 and record["questions_selected"] == 4

    # --from-base: round 2's checkpoint was trained from the base student, while θ2 scored round 2
    facts = json.loads((checkpoint_folder(out, 2) / "training_facts.json").read_text())
    assert facts["student"]["repo_id"] == f"local:{tiny_qwen_dir.name}"
    record = json.loads((round_folder(out, 2) / "selection_stats.json").read_text())
    assert record["student"]["repo_id"] == "local:round-1"
