"""The command line as a user meets it: help with defaults, what a run reports, progress bars, and
one-line errors (exit 2) for mistakes the user can fix, with no traceback."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys

import pytest
import requests

from scas_hub.cli import build_parser, main
from scas_hub.cli.common import HelpFormatter
from scas_hub.constants import DEFAULT_GROUPS, DEFAULT_LAMBDA, DEFAULT_SEED
from scas_hub.report import drop_warning, set_aside_table
from scas_hub.testing.corpus import synthetic_pool, write_pool

BAR_MARKS = ("%|", "it/s", "ans/s", "ba/s", "\r")


def scas_hub(*args: str, cwd=None, env=None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scas_hub", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def in_process(capfd, *args: str) -> subprocess.CompletedProcess:
    """`scas-hub ARGS` through `main` in this process (no interpreter start-up), its output captured."""
    capfd.readouterr()
    code = main(list(args))
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess(list(args), code, out, err)


def closed_port_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there once the socket is closed


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scas-hub: error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


# ---- help ---------------------------------------------------------------------------------------------


def subcommands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_option_of_every_subcommand_has_help_and_a_default_said():
    parsers = subcommands()
    assert set(parsers) == {
        "curate",
        "select",
        "students",
        "builders",
        "push",
        "train",
        "rounds",
        "evaluate",
        "ablate",
        "generate",
    }
    for name, parser in parsers.items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            where = f"{name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help and action.help.strip(), f"{where} has no help"
            flag = isinstance(action, argparse._StoreTrueAction)
            if action.option_strings and not flag and not action.required:
                assert "default" in HelpFormatter("x")._get_help_string(action), f"{where} says no default"
    for name in ("curate", "select", "push", "train", "rounds"):
        assert any(a.dest == "no_progress" for a in parsers[name]._actions), f"{name} lacks --no-progress"


def test_curate_help_groups_options_and_shows_defaults(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["curate", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for heading in ("source:", "student & scoring:", "selection:", "output & publishing:", "runtime:"):
        assert heading in text
    assert f"into G groups (default: {DEFAULT_GROUPS})" in text
    assert f"(default: {DEFAULT_SEED})" in text and f"(default: {DEFAULT_LAMBDA})" in text
    assert "--dtype {auto,float32,bfloat16,float16}" in text and "(default: auto)" in text
    assert "(default: None)" not in text and "(default: False)" not in text


# ---- what a run reports ---------------------------------------------------------------------------------


ISSUE_RUN = {
    "rows_in": 12,
    "rows_scored": 7,
    "skipped": {"empty_answer": 4, "duplicate_row": 1},
    "questions_in": 6,
    "questions_selected": 4,
    "questions_dropped": {"no_valid_candidate": 2},
    "policy_applied": {"nearest_group": 3},
}


def test_set_aside_table_lists_every_reason_and_the_totals():
    lines = set_aside_table(ISSUE_RUN).splitlines()
    assert lines[0].split() == ["set", "aside", "rows", "questions"]
    assert lines[1].split() == ["empty_answer", "4"] and lines[2].split() == ["duplicate_row", "1"]
    assert lines[3].split() == ["no_valid_candidate", "2"]
    assert lines[3].rstrip().endswith("2") and len(lines[3].rstrip()) == len(lines[0].rstrip())  # questions column
    assert lines[4].split() == ["total", "5", "of", "12", "2", "of", "6"]
    assert "small-question policy applied (nearest_group): 3 questions" in lines[5]


def test_set_aside_table_when_nothing_was_set_aside():
    run = {
        "rows_in": 9,
        "rows_scored": 9,
        "skipped": {},
        "questions_in": 3,
        "questions_selected": 3,
        "questions_dropped": {},
        "policy_applied": {},
    }
    assert set_aside_table(run) == "  nothing set aside: all 9 rows scored, all 3 questions selected"
    assert drop_warning(run, "out/x") is None


def test_drop_warning_above_a_tenth_of_rows_or_questions():
    warning = drop_warning(ISSUE_RUN, "out/x")
    assert warning.startswith("5 of 12 rows (42%) and 2 of 6 questions (33%) were set aside")
    assert "out/x/selection_stats.json" in warning and "out/x/README.md" in warning
    tenth = {"rows_in": 10, "skipped": {"too_long": 1}, "questions_in": 20, "questions_dropped": {"x": 2}}
    assert drop_warning(tenth, "o") is None  # exactly a tenth: no warning
    rows_only = {**tenth, "skipped": {"too_long": 2}}
    assert drop_warning(rows_only, "o").startswith("2 of 10 rows (20%) were set aside")


@pytest.fixture(scope="module")
def corpus_with_drops(tmp_path_factory):
    """The issue's run: 12 rows, 5 set aside (empty answers), 2 of 6 questions without a valid answer."""
    rows = synthetic_pool(6, teachers=2, max_words=20, seed=4)
    for teacher in rows:
        for question in (0, 1):
            rows[teacher][question]["teacher_output"] = ""
    rows["teacher-1"][2]["teacher_output"] = "  "
    return write_pool(rows, tmp_path_factory.mktemp("corpus"))


def test_run_reports_set_aside_rows_and_no_progress_silences_every_bar(
    tmp_path, tiny_qwen_dir, corpus_with_drops, capfd
):
    """With bars, then (select) without; test_curate's CLI contract checks `curate --no-progress`."""
    out = tmp_path / "scas-tiny"
    curated = in_process(
        capfd, "curate", "--student", str(tiny_qwen_dir), "--source", str(corpus_with_drops), "--out", str(out)
    )
    assert curated.returncode == 0, curated.stderr
    # bars --no-progress must silence: scoring, transformers' weight loading (the data files are
    # streamed by pyarrow, without a bar)
    for bar in ("scoring:", "Loading weights"):
        assert bar in curated.stderr
    assert "Selected 4 of 6 questions from 7 scored candidates (12 rows in)." in curated.stdout
    table = [line.split() for line in curated.stdout.splitlines()]
    assert ["empty_answer", "5"] in table and ["no_valid_candidate", "2"] in table
    assert ["total", "5", "of", "12", "2", "of", "6"] in table
    warning = [line for line in curated.stderr.splitlines() if line.startswith("scas-hub: warning: ")]
    assert warning == [
        f"scas-hub: warning: 5 of 12 rows (42%) and 2 of 6 questions (33%) were set aside; the reasons "
        f"per teacher are in {out / 'selection_stats.json'} and the card {out / 'README.md'}"
    ]

    # select: no model, the same accounting carried forward, and no bars
    selected = in_process(
        capfd,
        "select",
        "--candidates",
        str(out),
        "--out",
        str(tmp_path / "argmin"),
        "--strategy",
        "argmin",
        "--no-progress",
    )
    assert selected.returncode == 0, selected.stderr
    assert not any(mark in selected.stderr for mark in BAR_MARKS), selected.stderr
    assert ["total", "5", "of", "12", "2", "of", "6"] in [line.split() for line in selected.stdout.splitlines()]
    assert selected.stderr.strip().splitlines() == [warning[0].replace(str(out), str(tmp_path / "argmin"))]
    stats = json.loads((tmp_path / "argmin" / "selection_stats.json").read_text())
    assert stats["skipped"] == {"empty_answer": 5} and stats["questions_dropped"] == {"no_valid_candidate": 2}


def test_bars_without_a_switch_are_dropped_only_when_bars_are_off(monkeypatch, capsys):
    from tqdm.auto import tqdm

    from scas_hub import progress

    with progress.bars_without_switch():
        list(tqdm(range(3), desc="plain-bar"))
    assert "plain-bar" in capsys.readouterr().err
    monkeypatch.setattr(progress, "_enabled", False)
    with progress.bars_without_switch():
        list(tqdm(range(3), desc="plain-bar"))
    assert capsys.readouterr().err == ""


def test_no_progress_in_process_restores_the_bars_afterwards(capsys):
    """A notebook or test that calls `main([..., "--no-progress"])` gets its bars back after the call."""
    import datasets
    import huggingface_hub.utils

    from scas_hub import progress
    from scas_hub.cli import main

    with progress.progress_bars_off():
        assert not progress.progress_bars_enabled()
        assert not datasets.is_progress_bar_enabled() and huggingface_hub.utils.are_progress_bars_disabled()
    assert progress.progress_bars_enabled()
    # a command that fails fast (missing folder) with --no-progress, then the bars are on again
    assert main(["push", "no-such-folder-here", "org/name", "--no-progress"]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert progress.progress_bars_enabled()
    assert datasets.is_progress_bar_enabled() and not huggingface_hub.utils.are_progress_bars_disabled()


# ---- one-line errors ------------------------------------------------------------------------------------


def test_select_from_a_missing_folder_says_so(tmp_path):
    (tmp_path / "out").mkdir()  # `out/nonexist` beside an existing `out/` can only be a path
    proc = scas_hub(
        "select",
        "--candidates",
        "out/nonexist",
        "--out",
        "X",
        cwd=tmp_path,
        env={"HF_ENDPOINT": closed_port_endpoint()},
    )
    assert_one_line_error(proc, "no such folder: out/nonexist", str(tmp_path / "out" / "nonexist"))
    assert not (tmp_path / "X").exists()


def test_select_from_an_unreachable_hub_says_what_to_do(tmp_path):
    endpoint = closed_port_endpoint()
    proc = scas_hub(
        "select", "--candidates", "some-org/scas-x", "--out", "X", cwd=tmp_path, env={"HF_ENDPOINT": endpoint}
    )
    assert_one_line_error(
        proc,
        "cannot reach dataset 'some-org/scas-x' on the Hub",
        "no local folder of that name",
        f"HF_ENDPOINT={endpoint}",
        "hf auth login",
    )


def test_curate_from_a_missing_folder_says_so(tmp_path):
    proc = scas_hub("curate", "--source", "no/such/folder/here", "--no-progress", cwd=tmp_path)
    assert_one_line_error(proc, "no such file or folder: no/such/folder/here")


@pytest.fixture
def unreachable_hub(monkeypatch):
    """In this process: the Hub behind a closed port, one push attempt."""
    from huggingface_hub import constants

    endpoint = closed_port_endpoint()
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setenv("SCAS_HUB_PUSH_ATTEMPTS", "1")
    return endpoint


def test_student_and_push_against_an_unreachable_hub(unreachable_hub, tmp_path, capsys, corpus_with_drops):
    assert (
        main(
            [
                "curate",
                "--student",
                "some-org/some-model",
                "--source",
                str(corpus_with_drops),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("scas-hub: error: cannot download student 'some-org/some-model' from the Hub")
    assert "hf auth login" in err and len(err.strip().splitlines()) == 1

    assert main(["push", str(tmp_path / "nowhere"), "some-org/ds"]) == 2
    assert capsys.readouterr().err.startswith(f"scas-hub: error: no such folder: {tmp_path / 'nowhere'}")
    folder = tmp_path / "done"
    folder.mkdir()
    (folder / "selection_stats.json").write_text(
        json.dumps({"student": {}, "source": {}, "selection": {}, "questions_selected": 0, "rows_scored": 0})
    )
    assert main(["push", str(folder), "some-org/ds"]) == 2
    err = capsys.readouterr().err
    assert "failed while reading the repo's refs" in err and f"HF_ENDPOINT={unreachable_hub}" in err
    assert len(err.strip().splitlines()) == 1


def test_offline_mode_is_named(monkeypatch, tmp_path, capsys):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)
    assert main(["select", "--candidates", "some-org/scas-x", "--out", "X"]) == 2
    assert "HF_HUB_OFFLINE is set: unset it to reach the Hub" in capsys.readouterr().err


def test_a_hub_error_no_layer_wrapped_is_still_one_line(monkeypatch, capsys, unreachable_hub):
    from huggingface_hub import HfApi

    import scas_hub.pipeline

    monkeypatch.setattr(scas_hub.pipeline, "reselect", lambda *a, **k: HfApi().whoami())
    assert main(["select", "--candidates", "x", "--out", "y"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scas-hub: error: cannot reach the Hub (") and len(err.strip().splitlines()) == 1


def test_a_bug_keeps_its_traceback(monkeypatch):
    import scas_hub.pipeline

    def buggy(*args, **kwargs):
        try:
            raise requests.ConnectionError("the Hub was down")
        except requests.ConnectionError:
            return len(None)  # a bug in a handler is not a network failure

    monkeypatch.setattr(scas_hub.pipeline, "reselect", buggy)
    with pytest.raises(TypeError):
        main(["select", "--candidates", "x", "--out", "y"])


@pytest.mark.parametrize(
    "command, resume",
    [
        (["curate"], "to resume (scores are cached)"),
        (["curate", "--no-score-cache"], "to start again"),
        (["select", "--candidates", "x", "--out", "y"], "to start again"),
    ],
)
def test_ctrl_c_exits_130_with_what_to_do(monkeypatch, capsys, command, resume):
    import scas_hub.pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(scas_hub.pipeline, "curate", interrupted)
    monkeypatch.setattr(scas_hub.pipeline, "reselect", interrupted)
    assert main(command) == 130
    assert capsys.readouterr().err.strip() == f"scas-hub: interrupted; rerun the same command {resume}"
