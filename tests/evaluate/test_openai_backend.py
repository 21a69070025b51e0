"""`evaluate --backend openai --endpoint URL#MODEL` against the fake OpenAI-compatible server."""

from __future__ import annotations

import json

import pytest

from scas_hub.cli import main
from scas_hub.evaluate.openai_backend import backend_differences, parse_endpoint
from scas_hub.evaluate.report import EvalReport, QuestionResult
from scas_hub.generate import load_prompts
from scas_hub.testing.fake_openai import FakeOpenAI


def test_openai_backend_answers_greedily_with_pinned_settings(tiny_qwen_dir, tmp_path, capsys):
    refs = {p.instruction: p.reference_answer for p in load_prompts("demo")}

    def answer(model, messages, request):
        question = messages[-1]["content"]
        # right on even references, wrong on odd ones: the report must grade what was answered
        ref = int(refs[question])
        return f"so \\boxed{{{ref if ref % 2 == 0 else ref + 1}}}"

    with FakeOpenAI(models=["student"], answer=answer) as server:
        server.fail(503)  # retried
        out = tmp_path / "report.json"
        assert (
            main(
                [
                    "evaluate",
                    "--student",
                    str(tiny_qwen_dir),
                    "--eval",
                    "demo",
                    "--limit",
                    "6",
                    "--backend",
                    "openai",
                    "--endpoint",
                    f"{server.url}#student",
                    "--max-new-tokens",
                    "64",
                    "--no-reference-nll",
                    "--no-progress",
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        sent = server.completions("student")
    report = json.loads(out.read_text())
    assert report["decoding"]["backend"] == "openai" and report["decoding"]["max_new_tokens"] == 64
    assert len(sent) == 7 and all(
        (r["temperature"], r["top_p"], r["seed"], r["max_tokens"], r["n"]) == (0.0, 1.0, 0, 64, 1) for r in sent
    )
    results = report["per_question"]
    assert len(results) == 6
    for r in results:
        assert r["correct"] == (int(r["reference_answer"]) % 2 == 0), r


def test_openai_backend_needs_an_endpoint(tiny_qwen_dir, tmp_path, capsys):
    assert (
        main(
            [
                "evaluate",
                "--student",
                str(tiny_qwen_dir),
                "--eval",
                "demo",
                "--backend",
                "openai",
                "--no-progress",
                "--out",
                str(tmp_path / "r.json"),
            ]
        )
        == 2
    )
    assert "--endpoint URL#MODEL" in capsys.readouterr().err
    with pytest.raises(Exception, match="URL#MODEL"):
        parse_endpoint("http://127.0.0.1:8000/v1")


def test_openai_backend_refuses_a_chat_template_the_server_would_not_use(tiny_qwen_dir, tmp_path, capsys):
    """The server renders prompts with its own template: a local --chat-template would be recorded
    (its sha) as if used. It is refused before any question is asked or anything written."""
    template = tmp_path / "template.jinja"
    template.write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    out = tmp_path / "report.json"
    with FakeOpenAI(models=["student"], answer=lambda model, messages, request: "\\boxed{1}") as server:
        code = main(
            [
                "evaluate",
                "--student",
                str(tiny_qwen_dir),
                "--eval",
                "demo",
                "--limit",
                "2",
                "--backend",
                "openai",
                "--endpoint",
                f"{server.url}#student",
                "--chat-template",
                str(template),
                "--no-progress",
                "--out",
                str(out),
            ]
        )
        sent = server.completions("student")
    assert code == 2
    err = capsys.readouterr().err
    assert "--chat-template cannot be used with --backend openai" in err and "its own template" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert sent == [] and not out.exists()


def test_backend_differences_names_each_question_and_where_answers_part():
    def report(*answers):
        return EvalReport(
            per_question=[QuestionResult(f"q{i}", a, a.endswith("4"), "x", "4") for i, a in enumerate(answers)],
            student={},
            eval={},
            decoding={},
            run={},
        )

    diffs = backend_differences({"transformers": report("2+2=4", "so 4"), "openai": report("2+2=4", "so 5")})
    assert diffs == [
        {
            "question_id": "q1",
            "transformers": "so 4",
            "transformers_correct": True,
            "backends": {"openai": {"generated": "so 5", "correct": False, "first_difference_at": 3}},
        }
    ]
