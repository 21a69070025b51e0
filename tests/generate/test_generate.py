"""`scas-hub generate` against the fake OpenAI-compatible server: layout, retries, resume, accounting,
keys, and `curate` on the result."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from scas_hub.cli import main
from scas_hub.errors import ConfigError
from scas_hub.generate import ChatClient, RequestFailed, RetryPolicy, load_prompts, load_teachers_file, parse_teacher
from scas_hub.testing.fake_openai import FakeOpenAI

FAST = ["--backoff", "0.01", "--timeout", "1", "--no-progress"]


def _references() -> dict[str, str]:
    return {p.instruction: p.reference_answer for p in load_prompts("demo")}


def _teacher_answers():
    """`right` answers with the reference, `wrong` with a wrong number, `long` rambles past any limit."""
    refs = _references()

    def answer(model, messages, request):
        question = messages[-1]["content"]
        attempt = f" (try {request['seed']})" if "seed" in request else ""  # samples with seeds differ
        if model == "right":
            return f"The answer is \\boxed{{{refs[question]}}}{attempt}"
        if model == "wrong":
            return f"I think it is \\boxed{{{int(refs[question]) + 1}}}{attempt}"
        return "word " * 50 + f"\\boxed{{{refs[question]}}}"

    return answer


@pytest.fixture
def server():
    with FakeOpenAI(models=["right", "wrong", "long"], answer=_teacher_answers()) as fake:
        yield fake


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _teachers(server, *names, extra="") -> list[str]:
    return [a for n in names for a in ("--teacher", f"{n}=openai:{server.url}#{n}{extra}")]


# ---- the fake server itself ---------------------------------------------------------------------


def test_fake_server_answers_and_injects_faults(server):
    with httpx.Client() as http:
        assert [m["id"] for m in http.get(f"{server.url}/models").json()["data"]] == ["right", "wrong", "long"]
        server.fail(429, model="wrong")
        server.fail(500)
        assert len(server._faults) == 2
        body = {"model": "wrong", "messages": [{"role": "user", "content": next(iter(_references()))}]}
        # faults are consumed in order: the first one that matches the request's model
        assert http.post(f"{server.url}/chat/completions", json={**body, "model": "right"}).status_code == 500
        assert http.post(f"{server.url}/chat/completions", json=body).status_code == 429
        ok = http.post(f"{server.url}/chat/completions", json={**body, "max_tokens": 2}).json()
        assert ok["choices"][0]["finish_reason"] == "length" and ok["usage"]["completion_tokens"] == 2
        server.fail("drop")
        with pytest.raises(httpx.TransportError):
            http.post(f"{server.url}/chat/completions", json=body)
    with pytest.raises(ValueError, match="loopback"):
        FakeOpenAI(host="0.0.0.0")


def test_client_retries_429_drops_timeouts_and_5xx_then_gives_up(server):
    question = next(iter(_references()))
    body = {"model": "right", "messages": [{"role": "user", "content": question}]}
    with ChatClient(server.url, policy=RetryPolicy(retries=3, backoff=0.01, timeout=0.5)) as client:
        server.fail(429)
        server.fail("drop")
        server.fail("timeout", delay=1.0)
        answer = client.chat(body)
        assert answer.text == f"The answer is \\boxed{{{_references()[question]}}}"
        assert len(server.requests) == 4
        server.fail(500, times=4)
        with pytest.raises(RequestFailed) as failed:
            client.chat(body)
        assert failed.value.reason == "http_500" and len(server.requests) == 8
        # a refused request (4xx other than 408/409/429) is not retried
        with pytest.raises(RequestFailed) as refused:
            client.chat({**body, "model": "nobody"})
        assert refused.value.reason == "http_404" and len(server.requests) == 9


# ---- teacher specs ------------------------------------------------------------------------------


def test_teacher_specs_and_files(tmp_path):
    spec = parse_teacher(
        "terse=openai:http://127.0.0.1:9/v1/#org/model?temperature=0.2&system=Answer+tersely.&api_key_env=MY_KEY"
    )
    assert (spec.name, spec.endpoint, spec.model, spec.system) == (
        "terse",
        "http://127.0.0.1:9/v1",
        "org/model",
        "Answer tersely.",
    )
    assert spec.sampling.temperature == 0.2 and spec.api_key_env == "MY_KEY"
    local = parse_teacher(f"local={tmp_path}?max_tokens=64")
    assert local.served and local.model == str(tmp_path.resolve()) and local.sampling.max_tokens == 64
    for bad, message in [
        ("nameless", "NAME=SPEC"),
        ("a=openai:http://h/v1", "openai:URL#MODEL"),
        ("a=openai:http://u:p@h/v1#m", "no credentials"),
        ("a=m?colour=red", "unknown setting"),
        ("a=openai:http://h/v1#m?api_key=sk-123", "name of an environment variable, not a key"),
        ("a=openai:http://h/v1#m?api_key_env=sk-123", "name of an environment variable, not a key"),
        ("a=m?temperature=hot", "not a float"),
        ("a b=m", "teacher name"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_teacher(bad)
    yaml_file = tmp_path / "teachers.yaml"
    yaml_file.write_text(
        textwrap.dedent("""\
        teachers:
          - name: terse
            spec: openai:http://127.0.0.1:9/v1#m?system=Be+brief.
            temperature: 0.3
          - name: verbose
            endpoint: http://127.0.0.1:9/v1
            model: m
            system: Explain every step.
        """)
    )
    terse, verbose = load_teachers_file(yaml_file)
    assert (terse.system, terse.sampling.temperature, verbose.system) == ("Be brief.", 0.3, "Explain every step.")
    json_file = tmp_path / "teachers.json"
    json_file.write_text(json.dumps({"a": "openai:http://127.0.0.1:9/v1#m", "b": {"model": "org/x", "top_p": 0.9}}))
    a, b = load_teachers_file(json_file)
    assert a.endpoint and b.served and b.sampling.top_p == 0.9
    keyed = tmp_path / "keyed.json"
    keyed.write_text(json.dumps([{"name": "a", "endpoint": "http://127.0.0.1:9/v1", "model": "m", "api_key": "x"}]))
    with pytest.raises(ConfigError, match="not a key") as err:
        load_teachers_file(keyed)
    assert "unknown setting" not in str(err.value)


# ---- generate -----------------------------------------------------------------------------------


def test_generate_writes_the_pool_layout_and_curate_reads_it(server, tmp_path, tiny_qwen_dir, capsys):
    out = tmp_path / "gen"
    assert (
        main(
            [
                "generate",
                "--source",
                "demo",
                "--limit",
                "4",
                *_teachers(server, "right", "wrong"),
                "--samples",
                "2",
                "--seed",
                "7",
                "--temperature",
                "0.5",
                "--out",
                str(out),
                *FAST,
            ]
        )
        == 0
    )
    files = sorted(p.relative_to(out).as_posix() for p in (out / "data").rglob("*.jsonl"))
    assert files == ["data/demo/right.jsonl", "data/demo/wrong.jsonl"]
    rows = _rows(out / "data/demo/right.jsonl")
    prompts = load_prompts("demo", limit=4)
    assert [(r["id"], r["sample"]) for r in rows] == [(p.id, k) for p in prompts for k in (0, 1)]
    first = rows[0]
    assert first["teacher_name"] == "right" and first["source_dataset"] == "demo"
    assert first["instruction"] == prompts[0].instruction and first["reference_answer"] == prompts[0].reference_answer
    assert first["system"] == prompts[0].system  # the question's own system prompt was sent
    assert first["teacher_endpoint"] == server.url and first["teacher_model"] == "right"
    assert first["sampling"] == {"temperature": 0.5, "top_p": None, "max_tokens": 1024, "seed": 7}
    assert rows[1]["sampling"]["seed"] == 8  # sample k is asked with seed S + k
    assert first["finish_reason"] == "stop" and first["completion_tokens"] == 6 and first["prompt_tokens"] > 0
    sent = server.completions("right")[0]
    assert sent["messages"][0] == {"role": "system", "content": prompts[0].system}
    record = json.loads((out / "generate.json").read_text())
    assert record["runs"][-1]["teachers"]["right"]["written"] == 8
    card = (out / "README.md").read_text()
    assert "| right | `right` |" in card and "| 8 | 4 | 0 |" in card
    from datasets import load_dataset

    loaded = load_dataset(str(out), split="train")  # the card's config: every teacher's file, one schema
    assert len(loaded) == 16 and set(loaded["teacher_name"]) == {"right", "wrong"}

    curated = tmp_path / "curated"
    assert (
        main(
            [
                "curate",
                "--student",
                str(tiny_qwen_dir),
                "--source",
                str(out),
                "--out",
                str(curated),
                "--no-progress",
                "--no-score-cache",
            ]
        )
        == 0
    )
    stats = json.loads((curated / "selection_stats.json").read_text())
    assert stats["rows_in"] == 16 and stats["questions_selected"] == 4 and stats["rows_scored"] == 8
    # the wrong teacher's answers fail verification; both samples of the right one are candidates
    assert stats["skipped"] == {"not_verified": 8}


def test_failures_are_counted_per_teacher_never_written_and_a_rerun_fills_them(server, tmp_path, capsys):
    out = tmp_path / "gen"
    server.fail(500, times=2, model="wrong")  # one request: its first try and its only retry
    server.fail(429, times=2, model="right")
    args = [
        "generate",
        "--source",
        "demo",
        "--limit",
        "3",
        *_teachers(server, "right", "wrong"),
        "--out",
        str(out),
        "--retries",
        "1",
        "--concurrency",
        "1",
        *FAST,
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert re.search(r"right\s+3\s+2\s+0\s+http_429 1", printed)
    assert re.search(r"wrong\s+3\s+2\s+0\s+http_500 1", printed)
    assert len(_rows(out / "data/demo/right.jsonl")) == 2 and len(_rows(out / "data/demo/wrong.jsonl")) == 2
    failed = json.loads((out / "generate.json").read_text())["runs"][0]["teachers"]
    assert failed["right"]["failed"] == {"http_429": 1} and failed["wrong"]["failed"] == {"http_500": 1}
    before = len(server.requests)
    assert main(args) == 0
    assert len(server.requests) - before == 2  # only the two that failed are asked again
    assert "4 requests skipped" in capsys.readouterr().out
    assert [r["id"] for r in _rows(out / "data/demo/right.jsonl")] == [p.id for p in load_prompts("demo", limit=3)]
    assert "http_429: 1" in (out / "README.md").read_text()


def test_truncated_answers_are_kept_flagged_and_set_aside_by_curate(server, tmp_path, tiny_qwen_dir):
    out = tmp_path / "gen"
    assert (
        main(
            [
                "generate",
                "--source",
                "demo",
                "--limit",
                "2",
                "--teacher",
                f"long=openai:{server.url}#long?max_tokens=10",
                *_teachers(server, "right"),
                "--out",
                str(out),
                *FAST,
            ]
        )
        == 0
    )
    long_rows = _rows(out / "data/demo/long.jsonl")
    assert [r["finish_reason"] for r in long_rows] == ["length", "length"]
    assert all(r["completion_tokens"] == 10 and r["sampling"]["max_tokens"] == 10 for r in long_rows)
    curated = tmp_path / "curated"
    assert (
        main(
            [
                "curate",
                "--student",
                str(tiny_qwen_dir),
                "--source",
                str(out),
                "--out",
                str(curated),
                "--no-progress",
                "--no-score-cache",
            ]
        )
        == 0
    )
    stats = json.loads((curated / "selection_stats.json").read_text())
    assert stats["skipped"]["truncated_answer"] == 2 and stats["questions_selected"] == 2


def test_the_key_goes_only_into_the_authorization_header(tmp_path, capsys, monkeypatch):
    key = "sk-test-0123456789-secret"
    monkeypatch.setenv("TEACHER_KEY", key)
    out = tmp_path / "gen"
    with FakeOpenAI(models=["right"], answer=_teacher_answers(), api_key=key) as server:
        server.fail(500)
        assert (
            main(
                [
                    "generate",
                    "--source",
                    "demo",
                    "--limit",
                    "2",
                    *_teachers(server, "right"),
                    "--api-key-env",
                    "TEACHER_KEY",
                    "--out",
                    str(out),
                    *FAST,
                ]
            )
            == 0
        )
        assert all(h["Authorization"] == f"Bearer {key}" for h in server.headers)
        assert all(key not in json.dumps(r) for r in server.requests)
    assert len(_rows(out / "data/demo/right.jsonl")) == 2
    printed = capsys.readouterr()
    assert key not in printed.out + printed.err
    for path in out.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path
    assert json.loads((out / "generate.json").read_text())["teachers"]["right"]["api_key_env"] == "TEACHER_KEY"
    # without the variable: one line, before any request
    monkeypatch.delenv("TEACHER_KEY")
    assert (
        main(
            [
                "generate",
                "--source",
                "demo",
                "--teacher",
                "x=openai:http://127.0.0.1:9/v1#x",
                "--api-key-env",
                "TEACHER_KEY",
                "--out",
                str(tmp_path / "other"),
                *FAST,
            ]
        )
        == 2
    )
    assert "TEACHER_KEY (api_key_env) is not set" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


def test_out_folders_the_tool_did_not_write_are_refused(server, tmp_path, capsys):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    assert main(["generate", "--source", "demo", *_teachers(server, "right"), "--out", str(theirs), *FAST]) == 2
    assert "was not written by `scas-hub generate`" in capsys.readouterr().err
    assert (theirs / "notes.txt").read_text() == "mine" and not (theirs / "data").exists()
    out = tmp_path / "gen"
    assert (
        main(["generate", "--source", "demo", "--limit", "1", *_teachers(server, "right"), "--out", str(out), *FAST])
        == 0
    )
    # the same name with other settings would mix two teachers in one file
    assert (
        main(
            [
                "generate",
                "--source",
                "demo",
                "--limit",
                "1",
                *_teachers(server, "right", extra="?temperature=1"),
                "--out",
                str(out),
                *FAST,
            ]
        )
        == 2
    )
    assert "other settings" in capsys.readouterr().err


HOLDER = """
import sys, time
from scas_hub.publish.lock import output_lock
with output_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def test_an_out_another_run_holds_is_refused_and_left_as_it_was(server, tmp_path, capsys):
    """generate appends to --out in place and finalizes it: two runs on one folder would write rows
    twice or drop each other's. A second run fails at once, naming the holder, and writes nothing."""
    out, fresh = tmp_path / "gen", tmp_path / "fresh"
    assert (
        main(["generate", "--source", "demo", "--limit", "1", *_teachers(server, "right"), "--out", str(out), *FAST])
        == 0
    )
    before = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    asked = len(server.completions("right"))
    capsys.readouterr()
    holders = [
        subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
        for folder in (out, fresh)
    ]
    try:
        for proc in holders:
            assert proc.stdout.readline().strip() == "held"
        for folder in (out, fresh):
            argv = ["generate", "--source", "demo", "--limit", "3", *_teachers(server, "right"), "--out", str(folder)]
            assert main([*argv, *FAST]) == 2
            err = capsys.readouterr().err
            assert "being written by another scas-hub run" in err and "Traceback" not in err
            assert len(err.strip().splitlines()) == 1
    finally:
        for proc in holders:
            proc.kill()
            proc.wait()
    assert {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before
    assert not fresh.exists() and len(server.completions("right")) == asked


def test_a_killed_run_loses_at_most_the_requests_in_flight(server, tmp_path):
    """kill -9 in the middle of a run: every row on disk is whole, and the rerun completes the rest."""
    out = tmp_path / "gen"
    script = textwrap.dedent(f"""\
        import sys
        from scas_hub.cli import main
        sys.exit(main(["generate", "--source", "demo", "--limit", "12", "--teacher",
                       "right=openai:{server.url}#right", "--out", {str(out)!r}, "--concurrency", "2",
                       "--backoff", "0.01", "--timeout", "5", "--no-progress"]))
        """)
    for _ in range(12):
        server.fail("timeout", delay=0.3)  # slow answers, so the kill lands mid-run
    process = subprocess.Popen([sys.executable, "-c", script])
    path = out / "data/demo/right.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (path.exists() and len(path.read_text().splitlines()) >= 3):
        time.sleep(0.05)
    process.kill()
    process.wait()
    time.sleep(0.5)  # the server's handlers of the killed requests finish
    written = _rows(path)  # every line parses
    assert 3 <= len(written) < 12
    assert (
        main(["generate", "--source", "demo", "--limit", "12", *_teachers(server, "right"), "--out", str(out), *FAST])
        == 0
    )
    assert [r["id"] for r in _rows(path)] == [p.id for p in load_prompts("demo", limit=12)]


def test_student_routed_generation_asks_only_the_kept_teachers_for_the_rest(tmp_path, tiny_qwen_dir, capsys):
    refs = _references()

    def answer(model, messages, request):
        question = messages[-1]["content"]
        if model == "wrong":
            return f"Surely \\boxed{{{int(refs[question]) + 3}}}"
        if model == "terse":
            return f"\\boxed{{{refs[question]}}}"
        return f"Let us work it out carefully. The result is \\boxed{{{refs[question]}}}"

    out = tmp_path / "gen"
    with FakeOpenAI(models=["terse", "wordy", "wrong"], answer=answer) as server:
        args = [
            "generate",
            "--source",
            "demo",
            "--limit",
            "7",
            *_teachers(server, "terse", "wordy", "wrong"),
            "--route-student",
            str(tiny_qwen_dir),
            "--route-probe",
            "3",
            "--route-keep",
            "2",
            "--out",
            str(out),
            *FAST,
        ]
        assert main(args) == 0
        asked = {m: len(server.completions(m)) for m in ("terse", "wordy", "wrong")}
    assert asked == {"terse": 7, "wordy": 7, "wrong": 3}
    routing = json.loads((out / "routing.json").read_text())
    assert [r["teacher"] for r in routing["ranking"]][2] == "wrong" and routing["ranking"][2]["picks"] == 0
    assert sorted(routing["kept"]) == ["terse", "wordy"] and routing["dropped"] == ["wrong"]
    assert sum(r["picks"] for r in routing["ranking"]) == routing["probe_questions_with_a_pick"] == 3
    # the wrong teacher's answers were never candidates, so offering only the kept two changes no pick
    assert routing["pick_unchanged_share"] == 1.0
    assert routing["saved"]["requests"] == 4 and routing["saved"]["completion_tokens"] == 4 * 2
    assert "Student-routed" in (out / "README.md").read_text()
    assert f"kept {', '.join(routing['kept'])}; SCAS pick unchanged on 100% of the probe" in capsys.readouterr().out
    assert len(_rows(out / "data/demo/wrong.jsonl")) == 3 and len(_rows(out / "data/demo/terse.jsonl")) == 7


# ---- the vLLM server scas-hub starts (a stand-in module on PYTHONPATH plays vLLM) -----------------

FAKE_VLLM = """
import argparse, sys, time
from scas_hub.testing.fake_openai import FakeOpenAI

p = argparse.ArgumentParser()
p.add_argument("--model"); p.add_argument("--served-model-name"); p.add_argument("--port", type=int)
args, _ = p.parse_known_args()
if "broken" in args.model:
    print("INFO loading", args.model)
    print("ValueError: cannot load the weights of", args.model)
    print("RuntimeError: Engine core initialization failed. See root cause above.")
    sys.exit(1)
with FakeOpenAI(models=[args.served_model_name], port=args.port):
    while True:
        time.sleep(1)
"""


@pytest.fixture
def fake_vllm(tmp_path, monkeypatch):
    module = tmp_path / "fakevllm" / "vllm" / "entrypoints" / "openai"
    module.mkdir(parents=True)
    for folder in (module, module.parent, module.parent.parent):
        (folder / "__init__.py").write_text("")
    (module / "api_server.py").write_text(FAKE_VLLM)
    repo = Path(__file__).resolve().parents[2]
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path / 'fakevllm'}:{repo}")
    monkeypatch.setenv("SCAS_HUB_VLLM_PYTHON", sys.executable)


def _servers(tag: str) -> list[str]:
    ps = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()
    return [line for line in ps if "vllm.entrypoints.openai.api_server" in line and tag in line]


def test_a_model_spec_is_served_on_loopback_and_the_server_stopped(fake_vllm, tmp_path):
    model = tmp_path / "my-model"
    model.mkdir()
    out = tmp_path / "gen"
    assert (
        main(
            [
                "generate",
                "--source",
                "demo",
                "--limit",
                "2",
                "--teacher",
                f"local={model}?system=Be+brief.",
                "--samples",
                "2",
                "--out",
                str(out),
                *FAST,
            ]
        )
        == 0
    )
    rows = _rows(out / "data/demo/local.jsonl")
    assert [r["sample"] for r in rows] == [0, 1, 0, 1]
    assert rows[0]["teacher_model"] == str(model) and rows[0]["teacher_endpoint"].startswith("vllm server")
    assert rows[0]["teacher_output"].startswith(f"{model} answers:") and rows[0]["system"] == "Be brief."
    assert not _servers(str(model)), "the server outlived the run"


def test_a_server_that_will_not_start_fails_with_its_log(fake_vllm, tmp_path, capsys):
    model = tmp_path / "broken-model"
    model.mkdir()
    out = tmp_path / "gen"
    assert (
        main(["generate", "--source", "demo", "--limit", "1", "--teacher", f"local={model}", "--out", str(out), *FAST])
        == 2
    )
    err = capsys.readouterr().err
    assert "exited with code 1 before it was ready" in err
    assert "First error in its log: ValueError: cannot load the weights of" in err
    assert "Engine core initialization failed" in err  # the log's last lines
    assert not _servers(str(model))


def test_push_uploads_the_corpus_without_the_server_logs(server, tmp_path, fake_hub, capsys):
    out = tmp_path / "gen"
    (out / "logs").mkdir(parents=True)
    (out / "generate.json").write_text(
        json.dumps({"tool": "scas-hub generate", "source": "demo", "subset": None, "teachers": {}, "runs": []})
    )
    (out / "logs" / "vllm-x.log").write_text("server log")
    assert (
        main(
            [
                "generate",
                "--source",
                "demo",
                "--limit",
                "2",
                *_teachers(server, "right"),
                "--out",
                str(out),
                "--push",
                "org/generated",
                *FAST,
            ]
        )
        == 0
    )
    assert "Pushed to org/generated@" in capsys.readouterr().out
    files = fake_hub.files("org/generated")
    assert {"README.md", "generate.json", "data/demo/right.jsonl"} <= set(files) and "logs/vllm-x.log" not in files
    assert files["data/demo/right.jsonl"] == (out / "data/demo/right.jsonl").read_bytes()


def test_the_server_dies_with_a_killed_scas_hub(fake_vllm, tmp_path):
    model = tmp_path / "orphan-model"
    model.mkdir()
    script = textwrap.dedent(f"""\
        import time
        from scas_hub.generate import VLLMServer
        server = VLLMServer({str(model)!r}, start_timeout=60).start()
        print(server.url, flush=True)
        time.sleep(600)
        """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        url = parent.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and _servers(str(model))
    finally:
        parent.kill()  # no atexit, no context manager: only the kernel's parent-death signal is left
        parent.wait()
    deadline = time.monotonic() + 20
    while _servers(str(model)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _servers(str(model))
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/models", timeout=2)
