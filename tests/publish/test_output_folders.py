"""`--out` as a user meets it: a folder that is not the tool's is refused untouched, a previous output
is replaced file by file (the user's own files stay), a crash leaves a folder the next run recognises,
`select` never writes into its `--candidates`, and a push uploads only the tool's files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from datasets import load_dataset

from scas_hub import SelectionConfig, curate
from scas_hub.cli import main
from scas_hub.publish import output as output_module
from scas_hub.testing.corpus import synthetic_pool, write_pool

EXTRA = {"NOTES.txt": "my notes\n", "data/NOTES.txt": "about the data\n", "private/secret.txt": "keep me\n"}


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under `folder` (hidden ones too): content hash and mtime."""
    return {
        p.relative_to(folder).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def record(folder: Path) -> dict:
    return json.loads((folder / "selection_stats.json").read_text())


def add_extras(folder: Path) -> None:
    for rel, text in EXTRA.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)


def siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if "staging" in p.name)


@pytest.fixture(scope="module")
def curated(tmp_path_factory, tiny_qwen_dir):
    """A scored output folder (6 questions x 4 teachers); tests copy it. The corpus is test_publish's,
    so one of the two scores it and the other reads the session's score cache."""
    root = tmp_path_factory.mktemp("outputs")
    write_pool(synthetic_pool(6, teachers=4, max_words=30, seed=1), root / "corpus")
    curate(str(tiny_qwen_dir), str(root / "corpus"), root / "out", scoring=None)
    return root


def test_curate_into_a_corpus_folder_is_refused_and_nothing_is_touched(tmp_path, tiny_qwen_dir):
    """The reported defect: `curate --source . --out .` in a folder with the corpus, notes and a README."""
    write_pool(synthetic_pool(3, teachers=2, max_words=15, seed=1), tmp_path / "data" / "train")
    (tmp_path / "data" / "NOTES.txt").write_text("how the corpus was made\n")
    (tmp_path / "README.md").write_text("# my corpus\n")
    before = snapshot(tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "scas_hub",
            "curate",
            "--student",
            str(tiny_qwen_dir),
            "--source",
            ".",
            "--out",
            ".",
            "--no-progress",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "is not an output of scas-hub" in proc.stderr and "nothing in it was touched" in proc.stderr
    assert "Traceback" not in proc.stderr and "scoring" not in proc.stderr  # refused before any work
    assert snapshot(tmp_path) == before
    assert siblings(tmp_path) == []


def test_a_file_or_a_foreign_folder_is_refused_by_select_too(curated, tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "results.csv").write_text("a,b\n")
    (tmp_path / "file.txt").write_text("x")
    before = snapshot(tmp_path)
    for out in ("mine", "file.txt"):
        code = main(["select", "--candidates", str(curated / "out"), "--out", str(tmp_path / out)])
        assert code == 2
    err = capsys.readouterr().err
    assert "is not an output of scas-hub" in err and "is a file" in err
    assert snapshot(tmp_path) == before


def test_rerun_replaces_the_tools_files_and_keeps_the_users(curated, tmp_path, tiny_qwen_dir):
    out = shutil.copytree(curated / "out", tmp_path / "out")
    add_extras(out)
    extras = {rel: snapshot(out)[rel] for rel in EXTRA}
    result = curate(
        str(tiny_qwen_dir), str(curated / "corpus"), out, scoring=None, selection=SelectionConfig(strategy="argmin")
    )
    assert result.stats["scores_from_cache"] == result.stats["rows_scored"]  # the rerun scored nothing
    written = record(out)["files"]
    assert files(out) == set(written) | set(EXTRA)
    assert {rel: snapshot(out)[rel] for rel in EXTRA} == extras  # byte-identical, never rewritten
    assert record(out)["selection"]["strategy"] == "argmin"
    assert len(load_dataset(str(out), split="train")) == 6
    assert siblings(out) == []


def test_out_dot_in_an_empty_folder_writes_there_and_keeps_the_folder(curated, tmp_path, monkeypatch):
    here = tmp_path / "empty"
    here.mkdir()
    inode = here.stat().st_ino
    monkeypatch.chdir(here)  # the user's shell stands in it: the folder itself must stay
    for strategy in ("argmin", "random"):  # new, then a previous output replaced
        assert main(["select", "--candidates", str(curated / "out"), "--out", ".", "--strategy", strategy]) == 0
        assert here.stat().st_ino == inode and files(here) == set(record(here)["files"])
        assert record(here)["selection"]["strategy"] == strategy
    assert siblings(here) == [] and 'load_dataset("empty")' not in (here / "README.md").read_text()
    assert 'load_dataset("path/to/empty", split="train")' in (here / "README.md").read_text()


def test_an_older_output_without_a_file_list_loses_only_its_own_files(curated, tmp_path):
    """Outputs written before the `files` list: the tool's fixed names are its files; a stale extra
    shard (more shards last time) is removed, since it would be loaded with the new one."""
    out = shutil.copytree(curated / "out", tmp_path / "out")
    stats = record(out)
    del stats["files"]
    (out / "selection_stats.json").write_text(json.dumps(stats))
    shard = out / "data" / "train-00000-of-00001.parquet"
    table = pq.read_table(shard)
    shard.unlink()
    pq.write_table(table.slice(0, 2), out / "data" / "train-00000-of-00002.parquet")
    pq.write_table(table.slice(2), out / "data" / "train-00001-of-00002.parquet")
    add_extras(out)
    (out / "figures" / "my_plot.png").write_bytes(b"not the tool's")

    assert main(["select", "--candidates", str(curated / "out"), "--out", str(out), "--strategy", "random"]) == 0
    assert files(out) == set(record(out)["files"]) | set(EXTRA) | {"figures/my_plot.png"}
    assert sorted(p.name for p in (out / "data").iterdir()) == ["NOTES.txt", "train-00000-of-00001.parquet"]
    assert (out / "figures" / "my_plot.png").read_bytes() == b"not the tool's"
    assert len(load_dataset(str(out), split="train")) == 6


def test_a_file_at_a_tool_path_the_output_did_not_write_is_refused(curated, tmp_path, capsys):
    out = shutil.copytree(curated / "out", tmp_path / "out")
    stats = record(out)
    stats["files"] = [f for f in stats["files"] if not f.startswith("figures/")]  # as if the run drew none
    (out / "selection_stats.json").write_text(json.dumps(stats))
    before = snapshot(out)
    assert main(["select", "--candidates", str(curated / "out"), "--out", str(out)]) == 2
    assert "figures/score_distribution.png" in capsys.readouterr().err
    assert snapshot(out) == before


@pytest.mark.parametrize("where", ["same", "inside", "around"])
def test_select_never_writes_into_its_candidates(curated, tmp_path, capsys, where):
    candidates = shutil.copytree(curated / "out", tmp_path / "parent" / "cands")
    out = {"same": candidates, "inside": candidates / "argmin", "around": tmp_path / "parent"}[where]
    before = snapshot(tmp_path)
    assert main(["select", "--candidates", str(candidates), "--out", str(out), "--strategy", "argmin"]) == 2
    assert "overlaps --candidates" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_a_failure_while_writing_leaves_the_old_output_as_it_was(curated, tmp_path, monkeypatch):
    out = shutil.copytree(curated / "out", tmp_path / "out")
    before = snapshot(out)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("scas_hub.pipeline.write_card", broken)  # after the data files are written
    with pytest.raises(RuntimeError, match="disk full"):
        main(["select", "--candidates", str(curated / "out"), "--out", str(out), "--strategy", "argmin"])
    assert snapshot(out) == before
    assert siblings(out) == []


def test_a_crash_while_moving_files_in_leaves_a_folder_the_next_run_replaces(curated, tmp_path, monkeypatch, capsys):
    out = shutil.copytree(curated / "out", tmp_path / "out")
    add_extras(out)
    shard = out / "data" / "train-00000-of-00001.parquet"  # an old shard the new output does not have
    shutil.copy(shard, out / "data" / "train-00000-of-00009.parquet")
    stats = record(out)
    stats["files"].append("data/train-00000-of-00009.parquet")
    (out / "selection_stats.json").write_text(json.dumps(stats))
    real_replace = os.replace
    moved = []

    def crash_after_one_shard(src, dst):
        if str(dst).startswith(str(out)) and str(dst).endswith(".parquet"):
            if moved:
                raise OSError("power cut")
            moved.append(dst)
        return real_replace(src, dst)

    monkeypatch.setattr(output_module.os, "replace", crash_after_one_shard)
    assert main(["select", "--candidates", str(curated / "out"), "--out", str(out), "--strategy", "argmin"]) == 2
    assert "running the same command again replaces them" in capsys.readouterr().err
    listed = set(record(out)["files"])
    assert files(out) - set(EXTRA) <= listed  # every tool file in the folder is listed: recognisable

    monkeypatch.setattr(output_module.os, "replace", real_replace)
    assert main(["select", "--candidates", str(curated / "out"), "--out", str(out), "--strategy", "argmin"]) == 0
    assert files(out) == set(record(out)["files"]) | set(EXTRA)
    assert not (out / "data" / "train-00000-of-00009.parquet").exists()
    assert all((out / rel).read_text() == text for rel, text in EXTRA.items())


def test_push_uploads_only_the_tools_files(curated, tmp_path, fake_hub, capsys):
    out = shutil.copytree(curated / "out", tmp_path / "out")
    add_extras(out)
    (out / "data" / "train.jsonl").write_text("{}\n")  # a user's file inside a config folder
    assert main(["push", str(out), "org/own-files"]) == 0
    pushed = set(fake_hub.files("org/own-files", "v1")) - {".gitattributes"}  # the Hub's own
    assert pushed == set(record(out)["files"]) and not pushed & set(EXTRA)
    assert "private/secret.txt" not in capsys.readouterr().out
