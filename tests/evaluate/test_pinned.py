"""`scas-hub evaluate` is pinned and its grading cannot be fooled: run as a user runs it (the CLI's
`main` in-process), then check report.json, the answers, their grades, messages and exit codes."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from scas_hub.cli import main
from scas_hub.evaluate import evaluate, grade, load_eval_questions
from scas_hub.evaluate.generate import Generation
from scas_hub.testing.corpus import write_pool
from scas_hub.testing.models import QWEN_CHAT_TEMPLATE

SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
QUESTIONS = [("What is 2 + 3?", "5"), ("What is 6 * 7?", "42"), ("Compute -5 * -6.", "30")]


def _row(qid, teacher, question, reference, system=SYSTEM):
    return {
        "id": qid,
        "source_dataset": "toy",
        "teacher_name": teacher,
        "system": system,
        "instruction": question,
        "teacher_output": f"\\boxed{{{reference}}}",
        "reference_answer": reference,
        "reference_solution": "",
        "is_common_correct": True,
    }


@pytest.fixture
def pool(tmp_path):
    return write_pool({"a": [_row(i, "a", q, r) for i, (q, r) in enumerate(QUESTIONS)]}, tmp_path / "pool")


@pytest.fixture
def sampling_copy(tiny_qwen_dir, tmp_path):
    """The tiny student with a generation_config.json that samples and penalises repetition."""
    from transformers import GenerationConfig

    copy = tmp_path / "student-copy"
    shutil.copytree(tiny_qwen_dir, copy)
    GenerationConfig(
        do_sample=True, temperature=0.7, top_k=5, top_p=0.8, repetition_penalty=1.3, no_repeat_ngram_size=2
    ).save_pretrained(copy)
    return copy


def _evaluate(student, pool, out, *extra) -> tuple[int, dict]:
    code = main(
        [
            "evaluate",
            "--student",
            str(student),
            "--eval",
            str(pool),
            "--max-new-tokens",
            "8",
            "--no-reference-nll",
            "--no-progress",
            "--out",
            str(out),
            *extra,
        ]
    )
    return code, json.loads(out.read_text()) if out.exists() else {}


def _answers(report: dict) -> list[str]:
    return [p["generated"] for p in report["per_question"]]


# ---- pinned decoding -----------------------------------------------------------------------------


def test_a_sampling_generation_config_does_not_change_greedy_answers(tiny_qwen_dir, sampling_copy, pool, tmp_path):
    code_a, original = _evaluate(tiny_qwen_dir, pool, tmp_path / "original.json")
    code_b, copy = _evaluate(sampling_copy, pool, tmp_path / "copy.json")
    assert code_a == code_b == 0
    assert _answers(copy) == _answers(original)
    # the copy's own config does change what `generate` writes when it is inherited: the test can fail
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    model = AutoModelForCausalLM.from_pretrained(sampling_copy, dtype="float32").eval()
    tokenizer = AutoTokenizer.from_pretrained(sampling_copy)
    inherited = []
    for question, _ in QUESTIONS:
        text = tokenizer.apply_chat_template(
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
            tokenize=False,
            add_generation_prompt=True,
        )
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        out = model.generate(**ids, generation_config=GenerationConfig(max_new_tokens=8, do_sample=False))
        inherited.append(tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True))
    assert inherited != _answers(original)


def test_the_report_records_what_pins_the_run(tiny_qwen_dir, qwen_tokenizer, pool, tmp_path):
    code, report = _evaluate(tiny_qwen_dir, pool, tmp_path / "r.json")
    assert code == 0
    decoding = report["decoding"]
    assert decoding["generation"]["do_sample"] is False and decoding["generation"]["repetition_penalty"] == 1.0
    used = decoding["backend_parameters"]
    assert used["max_new_tokens"] == 8 and used["do_sample"] is False and used["num_beams"] == 1
    assert used["repetition_penalty"] == 1.0 and used["no_repeat_ngram_size"] == 0
    im_end = qwen_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert im_end in decoding["stop_token_ids"] and used["eos_token_id"] == decoding["stop_token_ids"]
    assert decoding["pad_token_id"] == qwen_tokenizer.pad_token_id
    own = hashlib.sha256(QWEN_CHAT_TEMPLATE.encode()).hexdigest()
    assert decoding["chat_template"]["sha256"] == own and decoding["chat_template"]["source"] == "the student's own"
    assert decoding["system_prompt"]["texts"] == [{"text": SYSTEM, "questions": 3}]
    # a local source is pinned by its content: the same files give the same hash, an edit another
    content = report["eval"]["content_sha256"]
    assert len(content) == 64 and content == load_eval_questions(pool).content_sha256
    with open(next(pool.rglob("*.jsonl")), "a", encoding="utf-8") as f:
        f.write(json.dumps(_row(9, "a", "What is 1 + 1?", "2")) + "\n")
    assert load_eval_questions(pool).content_sha256 != content


def test_system_prompt_and_chat_template_flags(tiny_qwen_dir, pool, tmp_path):
    template = tmp_path / "template.jinja"
    template.write_text("{#- a copy of the student's template -#}\n" + QWEN_CHAT_TEMPLATE, encoding="utf-8")
    code, report = _evaluate(
        tiny_qwen_dir, pool, tmp_path / "r.json", "--system-prompt", "Answer briefly.", "--chat-template", str(template)
    )
    assert code == 0
    decoding = report["decoding"]
    assert decoding["system_prompt"] == {
        "source": "--system-prompt",
        "texts": [{"text": "Answer briefly.", "questions": 3}],
    }
    assert decoding["chat_template"]["sha256"] == hashlib.sha256(template.read_bytes()).hexdigest()
    assert decoding["chat_template"]["source"] == "--chat-template"
    # what the student is asked: the given prompt, through the Python API as well
    seen = []
    evaluate(
        str(tiny_qwen_dir),
        pool,
        generator=lambda c: seen.extend(c) or ["\\boxed{5}"] * len(c),
        reference_nll=False,
        system_prompt="Answer briefly.",
    )
    assert {c[0]["content"] for c in seen} == {"Answer briefly."}
    code, _ = _evaluate(tiny_qwen_dir, pool, tmp_path / "r2.json", "--chat-template", str(tmp_path / "missing"))
    assert code == 2


def test_one_question_under_two_system_prompts_is_evaluated_once(tmp_path):
    rows = {"a": [_row(0, "a", "What is 2 + 3?", "5"), _row(1, "a", "What is 2 + 3?", "5", system="Be brief.")]}
    eval_set = load_eval_questions(write_pool(rows, tmp_path / "two"))
    assert len(eval_set.questions) == 1 and eval_set.skipped["duplicate_question_text"] == 1


# ---- grading -------------------------------------------------------------------------------------


def test_a_boxed_answer_wins_over_a_later_number():
    # math-verify's default priorities grade this on 7 ("the final answer is"); lighteval's, on the box
    assert grade("\\boxed{5}. So the final answer is 7", "5") == (True, "correct")
    assert grade("\\boxed{5}. So the final answer is 7", "7") == (False, "not_verified")


def test_a_cut_answer_is_graded_only_on_an_explicit_final_answer():
    restated = "To calculate -5 * -6, we first note that the product of two negatives is positive, so"
    assert grade(restated, "30", finished=False) == (False, "cut_without_final_answer")
    last_number = "First 2 * 15 = 30, then we add the remaining 4 and"
    assert grade(last_number, "30", finished=False) == (False, "cut_without_final_answer")
    assert grade("so the product is \\boxed{30}, which we check by", "30", finished=False) == (True, "correct")
    assert grade("Hence the answer is 30, and to check it", "30", finished=False) == (True, "correct")
    assert grade("\\boxed{31} and then", "30", finished=False) == (False, "not_verified")


def test_cut_answers_are_counted_and_warned_about(tiny_qwen_dir, pool, tmp_path, capsys):
    # a student that restates the question until the limit, and one that finishes
    def restating(conversations):
        return [Generation(f"To calculate {c[-1]['content']} we", 8, stopped=False) for c in conversations[:2]] + [
            Generation("\\boxed{30}", 3, stopped=True) for _ in conversations[2:]
        ]

    report = evaluate(str(tiny_qwen_dir), pool, tmp_path / "r.json", generator=restating, reference_nll=False)
    data = json.loads((tmp_path / "r.json").read_text())
    assert [p["outcome"] for p in data["per_question"]] == ["cut_without_final_answer"] * 2 + ["correct"]
    assert data["cut_at_max_new_tokens"] == 2 and data["n_finished"] == 1 and data["accuracy_finished"] == 1.0
    assert data["accuracy"] == pytest.approx(1 / 3) and "were cut" in data["cut_warning"]
    assert report.cut()["cut_share"] == pytest.approx(2 / 3)
    # the CLI says it too: a tiny random student never ends its turn within 2 tokens
    code = main(
        [
            "evaluate",
            "--student",
            str(tiny_qwen_dir),
            "--eval",
            str(pool),
            "--max-new-tokens",
            "2",
            "--no-reference-nll",
            "--no-progress",
            "--out",
            str(tmp_path / "cli.json"),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert "3 of 3 answers cut at --max-new-tokens; accuracy on the 0 finished ones: -" in captured.out
    assert "scas-hub: warning:" in captured.err and "3 of 3 answers (100%) were cut at 2 new tokens" in captured.err


# ---- the vLLM backend: what it is given (a stand-in module records it; no GPU or vLLM here) -----


def test_vllm_is_given_every_parameter_and_ignores_the_models_generation_config(tiny_qwen, monkeypatch):
    import sys
    import types

    from scas_hub.evaluate import DecodingConfig
    from scas_hub.evaluate.generate import VLLMGenerator

    calls = {}

    class LLM:
        def __init__(self, **kwargs):
            calls["llm"] = kwargs

        def chat(self, conversations, params, **kwargs):
            calls["chat"] = kwargs
            out = types.SimpleNamespace(text="\\boxed{5}", token_ids=[1, 2], finish_reason="stop")
            return [types.SimpleNamespace(outputs=[out]) for _ in conversations]

    class SamplingParams:
        def __init__(self, **kwargs):
            calls["sampling"] = kwargs

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    _, tokenizer = tiny_qwen
    generator = VLLMGenerator("student", tokenizer, DecodingConfig(max_new_tokens=7), "bfloat16", progress=False)
    answers = generator([[{"role": "system", "content": SYSTEM}, {"role": "user", "content": "2 + 3?"}]])
    assert answers[0].text == "\\boxed{5}" and answers[0].stopped is True
    assert calls["llm"]["generation_config"] == "vllm"  # nothing from the model's generation_config.json
    sampling = calls["sampling"]
    assert sampling["temperature"] == 0.0 and sampling["max_tokens"] == 7 and sampling["min_tokens"] == 0
    assert sampling["repetition_penalty"] == 1.0 and sampling["presence_penalty"] == 0.0
    assert sampling["frequency_penalty"] == 0.0 and sampling["top_p"] == 1.0 and sampling["min_p"] == 0.0
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in sampling["stop_token_ids"]
    assert calls["chat"]["chat_template"] == QWEN_CHAT_TEMPLATE and generator.parameters == sampling


def test_exclude_overlap_is_on_in_the_cli_and_the_makefile():
    import subprocess
    from pathlib import Path

    from scas_hub.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["ablate", "--eval", "demo"]).exclude_overlap is True
    assert parser.parse_args(["ablate", "--eval", "demo", "--no-exclude-overlap"]).exclude_overlap is False
    root = Path(__file__).resolve().parents[2]

    def dry_run(*args):
        return subprocess.run(
            ["make", "-n", "-C", str(root), "ablate", *args], capture_output=True, text=True, timeout=60
        ).stdout

    # the Makefile passes only what the user set: by default the CLI's default (on, asserted above) applies
    assert "--no-exclude-overlap" not in dry_run()
    assert "--exclude-overlap" in dry_run("EXCLUDE_OVERLAP=1") and "--no-exclude-overlap" not in dry_run(
        "EXCLUDE_OVERLAP=1"
    )
    assert "--no-exclude-overlap" in dry_run("EXCLUDE_OVERLAP=0")


def test_the_report_says_whether_the_template_is_the_one_the_checkpoint_was_trained_with(tiny_qwen_dir, pool, tmp_path):
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(tiny_qwen_dir, checkpoint)
    own = hashlib.sha256(QWEN_CHAT_TEMPLATE.encode()).hexdigest()
    for trained, matches in ((own, True), ("0" * 64, False)):
        (checkpoint / "training_facts.json").write_text(json.dumps({"chat_template_sha256": trained}))
        report = evaluate(str(checkpoint), pool, generator=lambda c: ["\\boxed{5}"] * len(c), reference_nll=False)
        assert report.decoding["chat_template"] == {
            "sha256": own,
            "source": "the student's own",
            "training_sha256": trained,
            "matches_training": matches,
        }


def test_a_checkpoint_is_asked_with_the_system_prompt_it_was_trained_with(tiny_qwen_dir, pool, tmp_path):
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(tiny_qwen_dir, checkpoint)
    (checkpoint / "training_facts.json").write_text(json.dumps({"system_prompt": "Answer like a tutor."}))
    seen: list[str] = []

    def generator(conversations):
        seen.extend(c[0]["content"] for c in conversations)
        return ["\\boxed{5}"] * len(conversations)

    report = evaluate(str(checkpoint), pool, generator=generator, reference_nll=False)
    assert seen and set(seen) == {"Answer like a tutor."}
    assert report.decoding["system_prompt"]["source"] == "the checkpoint's training rows (training_facts.json)"
    seen.clear()
    evaluate(str(checkpoint), pool, generator=generator, reference_nll=False, system_prompt="Be brief.")
    assert set(seen) == {"Be brief."}  # --system-prompt still wins
