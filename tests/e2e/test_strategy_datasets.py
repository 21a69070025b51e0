"""Ablations as a user runs them: each strategy gets a repo (and folder) of its own, the student's real
dataset stays what `load_dataset` returns, and every card says what its strategy did, and no more.

Hub pushes go to the fake Hub (`fake_hub`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from datasets import load_dataset
from huggingface_hub import DatasetCard

from scas_hub import SelectionConfig, reselect
from scas_hub.cli import main
from scas_hub.pipeline import dataset_name, default_repo
from scas_hub.student.loading import student_slug
from scas_hub.testing.corpus import synthetic_pool, write_pool

ROOT = Path(__file__).resolve().parents[2]
GROUP_SAMPLING = ("groups G", "group drawn from", "fewer candidates than groups", "cost group", "ceil(k·G/M)")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    # test_publish's corpus: one of the modules scores it, the other reads the session's score cache
    return write_pool(synthetic_pool(6, teachers=4, max_words=30, seed=1), tmp_path_factory.mktemp("abl") / "c")


@pytest.fixture(scope="module")
def curated(corpus, tiny_qwen_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("abl-out") / "scas"
    # in-process runs leave out --no-progress: it switches bars off for the whole process
    assert main(["curate", "--student", str(tiny_qwen_dir), "--source", str(corpus), "--out", str(out)]) == 0
    return out


def card(folder: Path) -> str:
    return (folder / "README.md").read_text()


def rows(repo_id: str, revision: str | None = None) -> list[tuple[str, str]]:
    ds = load_dataset(repo_id, split="train", revision=revision)
    return sorted(zip(ds["question_id"], ds["teacher"], strict=True))


def test_names_of_ablation_folders_and_repos():
    assert dataset_name("qwen-1.5b") == "scas-qwen-1.5b"
    assert dataset_name("qwen-1.5b", "teacher:gpt-4o") == "scas-qwen-1.5b-teacher-gpt-4o"
    assert dataset_name("qwen-1.5b", "teacher:Qwen/Qwen2.5-72B") == "scas-qwen-1.5b-teacher-Qwen-Qwen2.5-72B"
    assert default_repo("my-org", "qwen-1.5b", "strongest") == "my-org/scas-qwen-1.5b-strongest"
    assert default_repo("my-org", "qwen-1.5b") == "my-org/scas-qwen-1.5b"
    assert default_repo("my-org/anything", "qwen-1.5b", "strongest") == "my-org/anything"
    # `make select` names its folder the same way
    dry = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "select", "STUDENT=qwen-1.5b", "STRATEGY=teacher:gpt-4o"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "--out out/scas-qwen-1.5b-teacher-gpt-4o " in dry.stdout, dry.stdout + dry.stderr


def test_an_ablation_pushed_to_an_org_gets_its_own_repo(fake_hub, corpus, curated, tiny_qwen_dir, tmp_path):
    """The reported defect: `select --strategy strongest --push my-org` became v2 of the real dataset."""
    slug = student_slug(str(tiny_qwen_dir))
    real = f"my-org/scas-{slug}"
    assert main(["push", str(shutil.copytree(curated, tmp_path / "pushed")), real]) == 0  # a push adds its release
    scas_rows = rows(real)

    assert (
        main(
            [
                "select",
                "--candidates",
                real,
                "--strategy",
                "strongest",
                "--push",
                "my-org",
                "--out",
                str(tmp_path / "strongest"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "curate",
                "--student",
                str(tiny_qwen_dir),
                "--source",
                str(corpus),
                "--strategy",
                "argmin",
                "--push",
                "my-org",
                "--out",
                str(tmp_path / "argmin"),
            ]
        )
        == 0
    )

    assert list(fake_hub.repo(real).tags) == ["v1"]
    assert rows(real) == scas_rows  # load_dataset still returns the student's SCAS selection
    for strategy in ("strongest", "argmin"):
        repo = f"my-org/scas-{slug}-{strategy}"
        assert list(fake_hub.repo(repo).tags) == ["v1"]
        stats = json.loads(fake_hub.files(repo, "v1")["selection_stats.json"])
        assert stats["selection"]["strategy"] == strategy
        assert rows(repo) == rows(str(tmp_path / strategy))
    strongest = json.loads(fake_hub.files(f"my-org/scas-{slug}-strongest", "v1")["selection_stats.json"])
    assert strongest["scores_from"]["repo_id"] == real and strongest["scores_from"]["scoring_run"]["version"] == "v1"


def test_another_strategy_in_an_existing_repo_needs_its_full_id(fake_hub, curated, tiny_qwen_dir, tmp_path, capsys):
    slug = student_slug(str(tiny_qwen_dir))
    taken = f"my-org/scas-{slug}-argmin"
    # someone put the scas selection there by its full id
    assert main(["push", str(shutil.copytree(curated, tmp_path / "pushed")), taken]) == 0

    assert (
        main(
            [
                "select",
                "--candidates",
                str(curated),
                "--strategy",
                "argmin",
                "--push",
                "my-org",
                "--out",
                str(tmp_path / "argmin"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert f"{taken}'s latest version (v1) holds the 'scas' selection" in err and "Nothing was pushed" in err
    assert f"scas-hub push {tmp_path / 'argmin'} {taken}" in err
    assert list(fake_hub.repo(taken).tags) == ["v1"]
    assert (tmp_path / "argmin" / "selection_stats.json").exists()  # the work is kept, ready to push

    # the full id says it is meant: a new version, and the versions table tells the strategies apart
    assert (
        main(
            [
                "select",
                "--candidates",
                str(curated),
                "--strategy",
                "argmin",
                "--push",
                taken,
                "--out",
                str(tmp_path / "argmin"),
            ]
        )
        == 0
    )
    text = fake_hub.files(taken, "v2")["README.md"].decode()
    versions = text.split("## Versions", 1)[1].split("##", 1)[0]
    assert "| `v2` (this) |" in versions.replace("[", "").replace("](/datasets/" + taken + "/tree/v2)", "")
    assert versions.count("| `argmin` |") == 1 and versions.count("| `scas` |") == 1


EXPECTED = {
    "strongest": ("# Strongest-teacher selection for", "the strongest teacher's answer for each question"),
    "argmin": ("# Lowest-SCAS-score selection for", "the answer with the lowest SCAS score"),
    "lowest-nll": ("# Lowest-NLL selection for", "lowest mean answer NLL under the student (GRAPE's rule)"),
    "random": ("# Random selection for", "drawn uniformly at random (seed 42)"),
    "teacher:teacher-1": ("# Single-teacher selection (`teacher-1`) for", "`teacher-1`'s answer for each question"),
}


@pytest.mark.parametrize("strategy", list(EXPECTED))
def test_a_reselected_card_says_what_its_strategy_did(curated, tmp_path, strategy):
    out = tmp_path / "out"
    assert main(["select", "--candidates", str(curated), "--strategy", strategy, "--out", str(out)]) == 0
    text = card(out)
    title, kept = EXPECTED[strategy]
    assert text.count(title) == 1 and kept in text
    assert DatasetCard.load(out / "README.md").data.pretty_name.startswith(title[2:-4].replace("`", "") + " for ")
    assert "low-cost answer was kept" not in text and "SCAS selection" not in text
    for claim in GROUP_SAMPLING:  # group sampling was not used
        assert claim not in text, claim
    if strategy == "argmin":
        assert "| λ (lambda) | 0.5 |" in text
    else:  # λ changed nothing but the score column
        assert "| λ (lambda) | 0.5: only for the `scas_score` column; it did not affect this selection |" in text
    assert ("| seed | 42 |" in text) == (strategy == "random")
    assert ("| teacher order | `teacher-" in text) == (strategy == "strongest")
    # no model ran: say so, and where the scores came from
    assert "| model run | none: re-selected from stored scores, no model was loaded |" in text
    assert f"| scores from | `{curated}` |" in text
    scoring = json.loads((curated / "selection_stats.json").read_text())
    assert f"| tokens scored in the scoring run | {scoring['tokens_scored']}" in text
    assert f"| scoring run | {scoring['run']['created']}: `{scoring['student']['repo_id']}` @ " in text
    assert "tokens scored in this run" not in text and "tokens/s" not in text


def test_the_scas_card_explains_group_sampling_with_its_settings(curated, tmp_path):
    text = card(curated)
    assert text.count("# SCAS selection for") == 1
    assert "one answer per question was drawn from the lowest-cost of 5 cost groups" in text
    assert "| groups G | 5 |" in text and "| group drawn from | 1 |" in text and "| λ (lambda) | 0.5 |" in text
    assert "| tokens scored in this run |" in text and "model run" not in text
    reselect(curated, tmp_path / "g2", selection=SelectionConfig(group=2))
    text = card(tmp_path / "g2")
    assert "drawn from cost group 2 of 5 (group 1 is the cheapest)" in text and "| group drawn from | 2 |" in text


def test_a_reselection_of_a_reselection_names_the_run_that_scored(curated, tmp_path):
    first = reselect(curated, tmp_path / "first", selection=SelectionConfig(strategy="argmin"))
    second = reselect(tmp_path / "first", tmp_path / "second", selection=SelectionConfig(strategy="random"))
    assert second.stats["scores_from"]["location"] == str(tmp_path / "first")
    assert second.stats["scores_from"]["scoring_run"] == first.stats["scores_from"]["scoring_run"]
    assert (
        second.stats["scores_from"]["scoring_run"]["created"]
        == json.loads((curated / "selection_stats.json").read_text())["run"]["created"]
    )
