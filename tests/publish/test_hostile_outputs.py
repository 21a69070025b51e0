"""Hostile input against output folders and publishing (issue 20), replayed as a user meets it:
run the command, then check the files, the exit code and the message.

Findings 1 (a delete outside `--out`), 3 (two writers), 6 (`rounds --out` over a user's files),
9 (one Hub 500 ends `rounds`), 10 (publishing mistakes found after the work), 11 (a tag with a
trailing newline), 12 (`train --dataset out/typo` asks the Hub) and 14 (leftovers, modes, links).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from scas_hub import PublishError, curate
from scas_hub.atomic import build_aside
from scas_hub.cli import main
from scas_hub.pipeline import default_repo
from scas_hub.publish.hub import check_repo_id, check_tag_name, next_version, push_folder
from scas_hub.publish.lock import lock_path
from scas_hub.slug import strategy_slug
from scas_hub.testing.corpus import synthetic_pool, write_pool


@pytest.fixture(scope="module")
def curated(tmp_path_factory, tiny_qwen_dir):
    """A scored output folder (6 questions x 4 teachers; the corpus of test_output_folders, so the
    session's score cache is shared)."""
    root = tmp_path_factory.mktemp("hostile")
    write_pool(synthetic_pool(6, teachers=4, max_words=30, seed=1), root / "corpus")
    curate(str(tiny_qwen_dir), str(root / "corpus"), root / "out", scoring=None)
    return root


def record(folder: Path) -> dict:
    return json.loads((folder / "selection_stats.json").read_text())


def everything(folder: Path) -> set[str]:
    """Every path under `folder` (files, folders, links), hidden ones too."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def select(curated: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "select",
            "--candidates",
            str(curated / "out"),
            "--out",
            str(out),
            "--strategy",
            "argmin",
            "--no-progress",
            *extra,
        ]
    )


# --- finding 1: deletes are contained -------------------------------------------------------------


def test_finding_1_a_files_list_that_climbs_out_deletes_nothing_outside(curated, tmp_path, tiny_qwen_dir):
    """The exact replay: the old output's `files` list names a path that climbs out through helper
    folders created inside the output; the next `curate --out` must leave the victim in place."""
    out = shutil.copytree(curated / "out", tmp_path / "a" / "b" / "out")
    victim = tmp_path / "a" / "victim" / "precious.parquet"
    victim.parent.mkdir()
    victim.write_bytes(b"precious")
    hostile = "data/train-/../-of-/../../../../victim/precious.parquet"
    assert (out / hostile).resolve() == victim.resolve()  # two folders above the output
    (out / "data" / "train-").mkdir()
    (out / "data" / "-of-").mkdir()
    stats = record(out)
    stats["files"].append(hostile)
    (out / "selection_stats.json").write_text(json.dumps(stats))

    code = main(
        [
            "curate",
            "--student",
            str(tiny_qwen_dir),
            "--source",
            str(curated / "corpus"),
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    assert victim.read_bytes() == b"precious" and victim.parent.is_dir()
    assert hostile not in record(out)["files"]
    assert (out / "data" / "train-").is_dir() and (out / "data" / "-of-").is_dir()  # not the tool's: kept


@pytest.mark.parametrize("link", ["candidates", "data/train-00000-of-00001.parquet", "figures"])
def test_a_link_where_the_tool_writes_is_refused_and_nothing_outside_changes(curated, tmp_path, capsys, link):
    """Finding 14: a symlinked `candidates/` (or shard, or figures folder) would be written or deleted
    through; the run is refused before any work and the link's target stays as it was."""
    out = shutil.copytree(curated / "out", tmp_path / "out")
    elsewhere = tmp_path / "elsewhere"
    shutil.move(out / link, elsewhere)
    (out / link).symlink_to(elsewhere, target_is_directory=elsewhere.is_dir())
    before = everything(elsewhere) if elsewhere.is_dir() else elsewhere.read_bytes()
    assert select(curated, out) == 2
    err = capsys.readouterr().err
    assert f"symbolic link at {link}" in err and "Traceback" not in err
    assert (everything(elsewhere) if elsewhere.is_dir() else elsewhere.read_bytes()) == before
    assert (out / link).is_symlink()


# --- finding 3: one writer per output -------------------------------------------------------------

HOLDER = """
import sys, time
from scas_hub.publish.lock import output_lock
with output_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def holder():
    """Start a process that holds the lock of a folder (as a running `curate` does); killed at the end."""
    procs = []

    def start(out: Path) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "held"
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_finding_3_a_second_run_is_refused_and_a_killed_holder_is_taken_over(curated, tmp_path, capsys, caplog, holder):
    out = tmp_path / "out"
    proc = holder(out)
    assert select(curated, out) == 2
    err = capsys.readouterr().err
    assert "being written by another scas-hub run" in err and f"pid {proc.pid}" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()

    os.kill(proc.pid, signal.SIGKILL)  # kill -9: the lock file stays, its OS lock ends with the process
    proc.wait()
    assert lock_path(out).exists()
    with caplog.at_level(logging.WARNING, logger="scas_hub.publish"):
        assert select(curated, out) == 0
    assert f"pid {proc.pid}" in caplog.text and "ended without releasing" in caplog.text
    assert record(out)["selection"]["strategy"] == "argmin"
    assert not lock_path(out).exists()  # removed when the run ended


def test_rounds_train_and_ablate_refuse_an_out_another_run_holds(curated, tmp_path, capsys, holder):
    rounds_out, train_out, ablate_out = tmp_path / "rounds", tmp_path / "ckpt", tmp_path / "ablation"
    holder(rounds_out)
    holder(train_out)
    holder(ablate_out)
    assert main(["rounds", "--out", str(rounds_out), "--rounds", "1", "--no-progress"]) == 2
    assert main(["train", "--dataset", str(curated / "out"), "--out", str(train_out), "--no-progress"]) == 2
    assert main(["ablate", "--eval", "demo", "--out", str(ablate_out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("being written by another scas-hub run") == 3
    assert not rounds_out.exists() and not train_out.exists() and not ablate_out.exists()


# --- finding 6: `rounds --out` over a user's files --------------------------------------------------


@pytest.mark.parametrize(
    "files", [{"notes.txt": "mine\n", "rounds.json": '{"my": "plan"}\n'}, {"rounds.json": '{"rounds": "mine"}\n'}]
)
def test_finding_6_rounds_refuses_a_folder_it_did_not_write(tmp_path, capsys, files):
    out = tmp_path / "loop"
    out.mkdir()
    for name, text in files.items():
        (out / name).write_text(text)
    assert main(["rounds", "--out", str(out), "--rounds", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "is not a folder of `scas-hub rounds`" in err and "nothing in it was touched" in err
    assert {p.name: p.read_text() for p in out.iterdir()} == files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loop"]  # no lock, no staging left beside it


# --- finding 10/11: publishing settings are checked before any work ----------------------------------


@pytest.mark.parametrize("version", ["../v1", "v1\n", "v1..2", "v1.lock"])
def test_finding_10_a_bad_version_is_refused_before_scoring_and_leaves_nothing(
    curated, tmp_path, capsys, tiny_qwen_dir, fake_hub, version
):
    out = tmp_path / "new" / "deeper" / "out"
    code = main(
        [
            "curate",
            "--student",
            str(tiny_qwen_dir),
            "--source",
            str(curated / "corpus"),
            "--out",
            str(out),
            "--push",
            "org/data",
            "--version",
            version,
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "is not a valid tag name" in err and "Nothing was done" in err and "Scoring" not in err
    assert list(tmp_path.iterdir()) == []  # not even the folders that would hold the output
    assert fake_hub.requests == []


def test_finding_10_the_strategys_repo_name_is_checked_before_writing(curated, tmp_path, capsys, fake_hub):
    # a strategy never turns into a path or an invalid repo name
    repo = default_repo("org", "smollm2-135m", "teacher:../../evil")
    assert repo == "org/scas-smollm2-135m-teacher-evil" and check_repo_id(repo) == repo
    assert strategy_slug("teacher:gpt-4o") == "teacher-gpt-4o"
    out = tmp_path / "out"
    for push, strategy, says in [
        ("not-an-org!", "teacher:teacher-0", "not a valid Hub repo id"),
        ("org", "teacher:../../evil", "is not in the corpus"),
    ]:
        assert (
            main(
                [
                    "select",
                    "--candidates",
                    str(curated / "out"),
                    "--out",
                    str(out),
                    "--strategy",
                    strategy,
                    "--push",
                    push,
                ]
            )
            == 2
        )
        err = capsys.readouterr().err
        assert says in err and "run the same command again" not in err and "Traceback" not in err
        assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, nothing left beside
    assert fake_hub.requests == []


def test_finding_10_the_repo_is_created_only_after_the_version_is_checked(curated, tmp_path, fake_hub):
    folder = shutil.copytree(curated / "out", tmp_path / "out")
    before = record(folder)
    for version in ("v1\n", "../v1"):
        with pytest.raises(PublishError, match="not a valid tag name"):
            push_folder(folder, "org/fresh", version=version)
    with pytest.raises(PublishError, match="not a valid Hub repo id"):
        push_folder(folder, "org/fresh\n")
    assert fake_hub.requests == [] and record(folder) == before
    fake_hub.create_repo("org/taken")
    fake_hub.tag("org/taken", "v1")
    with pytest.raises(PublishError, match="already has a tag 'v1'"):
        push_folder(folder, "org/taken", version="v1")
    assert fake_hub.count("POST", "/repos/create") == 0 and record(folder) == before


def test_finding_10_a_read_only_out_is_found_before_any_work(curated, tmp_path, capsys, monkeypatch):
    out = shutil.copytree(curated / "out", tmp_path / "out")
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode, **kw: False if Path(path) == out else real_access(path, mode, **kw)
    )  # the tests run as root, who may write anything
    assert select(curated, out) == 2
    err = capsys.readouterr().err
    assert "cannot be written" in err and "read-only" in err and "Nothing was done" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_finding_11_trailing_newlines_and_invalid_ids_are_refused():
    for bad in ("v1\n", "v1\nv2", " v1", "v1/x", "", "-v1", "v1."):
        with pytest.raises(PublishError):
            check_tag_name(bad)
    assert check_tag_name("round-1.2") == "round-1.2"
    assert next_version(["v1\n", "v2", "v10x"]) == "v3"  # only whole `vN` tags count
    for bad in ("org/name\n", "org/a--b", "org/a..b", "org", "a/b/c", "org/" + "x" * 97, "org/ñame"):
        with pytest.raises(PublishError, match="Hub repo id"):
            check_repo_id(bad)


# --- finding 12: a path with a separator beside an existing folder is local ------------------------------


def test_finding_12_train_on_a_mistyped_folder_never_asks_the_hub(curated, tmp_path, capsys, monkeypatch, fake_hub):
    monkeypatch.chdir(tmp_path)
    Path("out").mkdir()
    assert main(["train", "--dataset", "out/scas-typo", "--out", "ckpt", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "no such folder: out/scas-typo" in err and len(err.strip().splitlines()) == 1
    assert fake_hub.requests == [] and sorted(os.listdir(tmp_path)) == ["out"]


# --- finding 9: reads of the Hub are retried like writes ------------------------------------------------


def test_finding_9_hub_reads_are_retried_and_the_message_says_a_rerun_resumes(curated, tmp_path, fake_hub, monkeypatch):
    from scas_hub.errors import SourceError
    from scas_hub.rounds.context import _hub_has_dataset, previous_round
    from scas_hub.rounds.loop import _tag_exists
    from scas_hub.train.data import open_training_data

    monkeypatch.setenv("SCAS_HUB_PUSH_BACKOFF", "0.01")
    folder = shutil.copytree(curated / "out", tmp_path / "out")
    push_folder(folder, "org/loop")
    fake_hub.fail("/refs", status=500)
    assert _tag_exists("org/loop", "v1")
    fake_hub.fail("/api/datasets/org/loop", status=502)
    fake_hub.fail("/resolve/", status=None)  # a dropped connection
    assert _hub_has_dataset("org/loop")
    fake_hub.fail("/resolve/", status=503, times=2)
    assert previous_round(tmp_path / "elsewhere", "org/loop").n_rows == 24
    fake_hub.fail("/api/datasets/org/loop", status=500, times=2)  # reading back the pushed version
    assert len(open_training_data("org/loop", "v1").rows) == 6

    monkeypatch.setenv("SCAS_HUB_PUSH_ATTEMPTS", "2")
    fake_hub.fail("/api/datasets/org/loop", status=500, times=2)
    with pytest.raises(SourceError, match="run the same command again: it resumes"):
        _hub_has_dataset("org/loop")


# --- finding 14: leftovers of a killed run, and modes ------------------------------------------------------


def test_finding_14_leftovers_of_a_killed_run_are_removed_and_nothing_else(curated, tmp_path):
    out = shutil.copytree(curated / "out", tmp_path / "out")
    killed = tmp_path / ".out.scas-hub-staging-abcd_123"  # what a kill mid-write leaves
    shutil.copytree(curated / "out" / "data", killed / "data")
    (killed / "data" / ".train-00001.parquet").write_bytes(b"half")
    (killed / ".selection_stats.json.tmp").write_text("{")
    users = tmp_path / ".out.scas-hub-staging-zzzzzzzz"  # looks like one, but holds a user's file
    users.mkdir()
    (users / "notes.txt").write_text("mine\n")
    (out / ".selection_stats.json.tmp").write_text("{")
    other = tmp_path / ".other.scas-hub-staging-abcd_123"  # another folder's: not this run's to judge
    shutil.copytree(killed, other)

    assert select(curated, out) == 0
    assert not killed.exists() and not (out / ".selection_stats.json.tmp").exists()
    assert (users / "notes.txt").read_text() == "mine\n" and other.is_dir()


def test_finding_14_an_aside_folder_of_a_dead_process_is_removed(tmp_path):
    from scas_hub.atomic import _host

    target = tmp_path / "student"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    stale = tmp_path / f".student.tmp-{_host()}-{dead}-abcdefgh"
    live = tmp_path / f".student.tmp-{_host()}-{os.getpid()}-abcdefgh"
    foreign = tmp_path / f".student.tmp-otherhost-{dead}-abcdefgh"
    for folder in (stale, live, foreign):
        folder.mkdir()
    with build_aside(target, "done") as tmp:
        (tmp / "done").write_text("ok")
    assert (target / "done").exists() and not stale.exists() and live.is_dir() and foreign.is_dir()


def test_finding_14_new_outputs_get_the_mode_mkdir_gives(curated, tmp_path):
    mask = os.umask(0o027)
    try:
        assert select(curated, tmp_path / "out") == 0
    finally:
        os.umask(mask)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o750


def test_finding_9_a_hub_failure_ends_rounds_with_one_line_and_the_rerun_resumes(
    curated, tmp_path, fake_hub, monkeypatch, capsys, tiny_qwen_dir
):
    pytest.importorskip("trl")
    monkeypatch.setenv("SCAS_HUB_PUSH_BACKOFF", "0.01")
    monkeypatch.setenv("SCAS_HUB_PUSH_ATTEMPTS", "2")
    out = tmp_path / "loop"
    command = [
        "rounds",
        "--student",
        str(tiny_qwen_dir),
        "--source",
        str(curated / "corpus"),
        "--rounds",
        "1",
        "--out",
        str(out),
        "--push",
        "org/loop",
        "--strategy",
        "argmin",
        "--max-steps",
        "2",
        "--effective-batch",
        "1",
        "--no-progress",
    ]
    fake_hub.fail("/commit/", status=500, times=2)  # more 500s than attempts: the push gives up
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "HfHubHTTPError" in err and "rerunning resumes" in err and len(err.strip().splitlines()) == 1
    assert not (out / "rounds.json").exists() and "v1" not in fake_hub.repo("org/loop").tags

    assert main(command) == 0
    summary = json.loads((out / "rounds.json").read_text())
    assert [r["dataset"]["version"] for r in summary["rounds"]] == ["v1"]
    assert set(fake_hub.repo("org/loop").tags) == {"v1"}


@pytest.mark.parametrize(
    "command",
    [
        ["rounds", "--out", "new/loop", "--push", "org/bad--name"],
        ["rounds", "--out", "new/loop", "--push", "org/x", "--push-checkpoints", "a/b/c"],
        ["train", "--dataset", "data", "--out", "new/ckpt", "--push", "org/x\n"],
    ],
)
def test_finding_10_bad_repo_ids_of_rounds_and_train_are_refused_first_and_leave_nothing(
    tmp_path, capsys, monkeypatch, fake_hub, command
):
    pytest.importorskip("trl")
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Hub repo id" in err and len(err.strip().splitlines()) == 1
    assert os.listdir(tmp_path) == [] and fake_hub.requests == []
