"""`scas-hub evaluate`: questions from a source, greedy generation, math-verify checking, report.json."""

from __future__ import annotations

import json

import pytest

from scas_hub.errors import ConfigError, SourceError
from scas_hub.evaluate import DecodingConfig, QuestionsConfig, evaluate, grade, load_eval_questions
from scas_hub.evaluate.generate import TransformersGenerator, stop_token_ids
from scas_hub.testing.corpus import write_pool
from scas_hub.testing.naive import naive_components

SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


def _row(qid, teacher, question, reference, solution="", system=SYSTEM):
    return {
        "id": qid,
        "source_dataset": "toy",
        "teacher_name": teacher,
        "system": system,
        "instruction": question,
        "teacher_output": f"\\boxed{{{reference}}}",
        "reference_answer": reference,
        "reference_solution": solution,
        "is_common_correct": True,
    }


@pytest.fixture
def toy_pool(tmp_path):
    """Five distinct questions answered by two teachers; one question repeated under another id,
    one without a reference answer."""
    questions = [
        ("What is 2 + 3?", "5", "2 + 3 = 5."),
        ("What is 6 * 7?", "42", "6 * 7 = 42."),
        ("Half of 10?", "5", ""),
        ("What is 1/2 + 1/4?", "\\frac{3}{4}", "1/2 + 1/4 = 3/4."),
        ("What is 9 - 4?", "5", "9 - 4 = 5."),
    ]
    rows = {"a": [], "b": []}
    for i, (q, ref, sol) in enumerate(questions):
        for t in rows:
            rows[t].append(_row(i, t, q, ref, sol))
    rows["a"].append(_row(10, "a", "  what is 2 +   3? ", "5"))  # same text as question 0, other id
    rows["a"].append(_row(11, "a", "Name a colour.", ""))  # no reference answer
    return write_pool(rows, tmp_path / "toy")


def _answer_book(answers: dict[str, str]):
    """A generator that answers each question from a book (question text -> answer), else says nothing."""
    seen = []

    def generate(conversations):
        seen.extend(conversations)
        return [answers.get(c[-1]["content"], "I do not know.") for c in conversations]

    generate.seen = seen
    return generate


def test_grade_outcomes():
    assert grade("so the answer is \\boxed{42}", "42") == (True, "correct")
    assert grade("\\boxed{0.75}", "\\frac{3}{4}") == (True, "correct")
    assert grade("\\boxed{41}", "42") == (False, "not_verified")
    assert grade("no idea", "42") == (False, "unverifiable")


def test_distinct_questions_with_a_reference_are_evaluated_once(toy_pool):
    eval_set = load_eval_questions(toy_pool)
    assert [q.question_id for q in eval_set.questions] == [f"toy/{i}" for i in range(5)]
    assert eval_set.questions_in == 7 and eval_set.rows_in == 12
    assert dict(eval_set.skipped) == {"duplicate_question_text": 1, "no_reference_answer": 1}
    assert eval_set.questions[0].reference_solution == "2 + 3 = 5."
    assert eval_set.questions[2].reference_solution is None


def test_limit_draws_a_seeded_sample_in_source_order(toy_pool):
    a = load_eval_questions(toy_pool, limit=3, sample_seed=1)
    b = load_eval_questions(toy_pool, limit=3, sample_seed=1)
    ids = [q.question_id for q in a.questions]
    assert ids == [q.question_id for q in b.questions] and len(ids) == 3 and ids == sorted(ids)
    assert a.skipped["beyond_limit"] == 2
    with pytest.raises(ConfigError):
        load_eval_questions(toy_pool, limit=0)


def test_source_without_references_is_refused(tmp_path):
    folder = write_pool({"a": [_row(0, "a", "Name a colour.", "")]}, tmp_path / "none")
    with pytest.raises(SourceError, match="no question with a reference answer"):
        load_eval_questions(folder)


def test_accuracy_bookkeeping_against_known_generations(toy_pool, tiny_qwen_dir, tmp_path):
    book = _answer_book(
        {
            "What is 2 + 3?": "2 + 3 = 5, so \\boxed{5}.",  # correct
            "What is 6 * 7?": "\\boxed{48}",  # wrong
            "What is 1/2 + 1/4?": "That is \\boxed{0.75}.",  # correct, in another form
            "What is 9 - 4?": "The answer is $5$.",  # correct, no box
        }
    )  # "Half of 10?": unverifiable
    report = evaluate(str(tiny_qwen_dir), toy_pool, tmp_path / "report.json", generator=book, reference_nll=False)
    assert report.accuracy == pytest.approx(3 / 5) and report.n_questions == 5 and report.n_correct == 3
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["accuracy"] == pytest.approx(0.6) and data["n_questions"] == 5
    per = {p["question_id"]: p for p in data["per_question"]}
    assert [per[f"toy/{i}"]["correct"] for i in range(5)] == [True, False, False, True, True]
    assert per["toy/1"]["generated"] == "\\boxed{48}" and per["toy/1"]["outcome"] == "not_verified"
    assert per["toy/2"]["outcome"] == "unverifiable"
    assert data["outcomes"] == {"correct": 3, "not_verified": 1, "unverifiable": 1}
    # the student saw the row's system prompt and the question, as in training and scoring
    assert book.seen[0] == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "What is 2 + 3?"}]
    assert data["decoding"]["backend"] == "custom" and data["eval"]["questions_evaluated"] == 5
    assert data["eval"]["skipped"] == {"duplicate_question_text": 1, "no_reference_answer": 1}


def test_evaluate_end_to_end_with_a_real_student(toy_pool, tiny_qwen_dir, tiny_qwen, tmp_path):
    """Real decoding and reference NLL on a tiny Qwen2 (machinery, not accuracy)."""
    decoding = DecodingConfig(max_new_tokens=4, batch_size=2)
    report = evaluate(str(tiny_qwen_dir), toy_pool, tmp_path, decoding=decoding, progress=False)
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["n_questions"] == 5 and len(data["per_question"]) == 5
    assert all(1 <= p["n_generated_tokens"] <= 4 and isinstance(p["generated"], str) for p in data["per_question"])
    assert data["accuracy"] == sum(p["correct"] for p in data["per_question"]) / 5
    assert data["decoding"]["max_new_tokens"] == 4 and data["decoding"]["strategy"] == "greedy"
    assert data["decoding"]["backend"] == "transformers" and data["student"]["revision"].startswith("local-")
    assert data["run"]["versions"]["transformers"] and data["run"]["command"].startswith("scas_hub.evaluate(")
    # reference NLL: the engine's answer NLL, equal to a naive forward pass, for the 4 solutions there are
    model, tokenizer = tiny_qwen
    per = {r.question_id: r for r in report.per_question}
    naive = naive_components(model, tokenizer, "What is 6 * 7?", "6 * 7 = 42.", SYSTEM)["answer_mean_nll"]
    assert per["toy/1"].reference_nll == pytest.approx(naive, rel=1e-4)
    assert per["toy/2"].reference_nll is None
    assert data["reference_nll"]["n_questions"] == 4


def test_batched_left_padded_decoding_matches_one_at_a_time(tiny_qwen):
    model, tokenizer = tiny_qwen
    conversations = [
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}]
        for q in ("Hi", "What is the sum of the first ten positive integers?", "2+2?")
    ]
    batched = TransformersGenerator(model, tokenizer, DecodingConfig(max_new_tokens=5, batch_size=3), progress=False)
    single = TransformersGenerator(model, tokenizer, DecodingConfig(max_new_tokens=5, batch_size=1), progress=False)
    assert [g.text for g in batched(conversations)] == [g.text for g in single(conversations)]


def test_generation_stops_at_the_templates_end_of_turn(tiny_qwen):
    _, tokenizer = tiny_qwen
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in stop_token_ids(tokenizer)


def test_cli_evaluate_writes_the_report(toy_pool, tiny_qwen_dir, tmp_path, capsys):
    from scas_hub.cli import main

    out = tmp_path / "r.json"
    code = main(
        [
            "evaluate",
            "--student",
            str(tiny_qwen_dir),
            "--eval",
            str(toy_pool),
            "--limit",
            "2",
            "--max-new-tokens",
            "2",
            "--no-reference-nll",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    data = json.loads(out.read_text())
    assert data["n_questions"] == 2 and data["eval"]["limit"] == 2
    assert data["run"]["command"].startswith("scas-hub evaluate --student")
    assert "accuracy" in capsys.readouterr().out
    assert (
        main(["evaluate", "--student", str(tiny_qwen_dir), "--eval", str(tmp_path / "missing"), "--out", str(out)]) == 2
    )


@pytest.mark.slow  # generation with the embedded SmolLM2 on a shared 2-core CPU takes minutes
def test_evaluate_the_embedded_student_on_the_demo_corpus(tmp_path):
    report = evaluate(
        "smollm2-135m",
        QuestionsConfig("demo", limit=2),
        tmp_path,
        decoding=DecodingConfig(max_new_tokens=16),
        progress=False,
    )
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["n_questions"] == 2 and data["student"]["repo_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert all(p["generated"].strip() and p["n_generated_tokens"] <= 16 for p in data["per_question"])
    assert report.reference_nll["n_questions"] == 2 and 0 < report.reference_nll["mean"] < 10
