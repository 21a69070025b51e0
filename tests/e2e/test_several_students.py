"""Several students in one run: the corpus is read once, each student gets its own dataset, and a
summary compares their teacher shares and selections."""

from __future__ import annotations

import json
from collections import Counter

import pyarrow.parquet as pq
import pytest

import scas_hub.several_students as several
from scas_hub import (
    PublishConfig,
    PublishError,
    ScoringConfig,
    SelectionConfig,
    SelectionError,
    StudentConfig,
    StudentError,
    curate,
    curate_students,
)
from scas_hub.cli import main
from scas_hub.student.loading import student_slug
from scas_hub.testing.corpus import synthetic_pool, write_pool
from scas_hub.testing.models import QWEN_CHAT_TEMPLATE


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rows = synthetic_pool(4, teachers=4, max_words=25, seed=2, subset="pair")
    rows["teacher-1"][0]["teacher_output"] = ""  # a row verification sets aside: counted once per student
    return write_pool(rows, tmp_path_factory.mktemp("corpus"))


def selection(folder) -> dict[str, tuple[str, str]]:
    rows = pq.read_table(folder / "data").to_pylist()
    return {r["question_id"]: (r["teacher"], r["messages"][-1]["content"]) for r in rows}


@pytest.fixture(scope="module")
def pair(corpus, tiny_qwen_dir, tmp_path_factory):
    """The embedded student and a tiny random model, in that order (the tiny one scores second)."""
    out = tmp_path_factory.mktemp("pair")
    calls = []
    original = several.run_table

    def counting(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(several, "run_table", counting)
    try:
        run = curate_students(
            ["smollm2-135m", str(tiny_qwen_dir)],
            str(corpus),
            out,
            scoring=ScoringConfig(progress=False),
            selection=SelectionConfig(strategy="argmin"),
        )
    finally:
        mp.undo()
    return out, run, calls


def test_two_students_write_two_datasets_and_a_summary(pair, tiny_qwen_dir):
    out, run, calls = pair
    assert len(calls) == 1  # corpus read and verified once
    tiny = student_slug(str(tiny_qwen_dir))
    assert list(run.results) == ["smollm2-135m", tiny]
    for slug, result in run.results.items():
        folder = out / f"scas-{slug}-argmin"  # an ablation strategy: its own folder
        assert result.out == folder and (folder / "README.md").exists()
        s = json.loads((folder / "selection_stats.json").read_text())
        assert s["rows_in"] == 16 and s["skipped"] == {"empty_answer": 1} and s["questions_selected"] == 4
        assert len(pq.read_table(folder / "candidates")) == 15
    smollm2 = json.loads((out / "scas-smollm2-135m-argmin" / "selection_stats.json").read_text())["student"]
    assert smollm2["repo_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_summary_matches_the_datasets(pair):
    out, run, _ = pair
    summary = json.loads((out / "students_summary.json").read_text())
    assert summary == json.loads(json.dumps(run.summary))
    selections = {s: selection(out / f"scas-{s}-argmin") for s in run.results}
    for s, sel in selections.items():
        counts = Counter(t for t, _ in sel.values())
        assert summary["teacher_shares"][s] == pytest.approx({t: n / len(sel) for t, n in counts.items()})
    a, b = selections.values()
    same = sum(a[q] == b[q] for q in a.keys() & b.keys())
    [pair_row] = summary["agreement"]
    assert pair_row == {
        "students": list(run.results),
        "questions_compared": 4,
        "same_answer": same,
        "share": pytest.approx(same / 4),
    }
    table = (out / "students_summary.md").read_text()
    assert table == run.table
    assert f"| {same} | {100 * same / 4:.1f}% |" in table


def test_each_student_starts_from_fresh_records(pair, corpus, tiny_qwen_dir, tmp_path):
    """The second student's dataset equals a run of that student alone: no score, skip or
    selection state leaks from the first."""
    out, run, _ = pair
    tiny = student_slug(str(tiny_qwen_dir))
    alone = curate(
        str(tiny_qwen_dir),
        str(corpus),
        tmp_path / "alone",
        scoring=ScoringConfig(progress=False),
        selection=SelectionConfig(strategy="argmin"),
    )
    assert pq.read_table(out / f"scas-{tiny}-argmin" / "candidates").equals(pq.read_table(alone.out / "candidates"))
    assert run.results[tiny].stats["skipped"] == alone.stats["skipped"]


def test_several_students_cli(corpus, tiny_qwen_dir, tmp_path, capsys):
    twin = tmp_path / "twin-tiny"  # the same weights under another name: the two must agree everywhere
    twin.symlink_to(tiny_qwen_dir, target_is_directory=True)
    out = tmp_path / "cli"
    code = main(
        ["curate", "--student", f"{tiny_qwen_dir},{twin}", "--source", str(corpus), "--out", str(out), "--no-progress"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert (out / f"scas-{student_slug(str(tiny_qwen_dir))}").is_dir() and (out / "scas-twin-tiny").is_dir()
    assert (out / "students_summary.md").read_text() in printed
    assert "| 4 | 4 | 100.0% |" in printed


def test_each_student_is_loaded_as_its_own_config_says(corpus, tiny_qwen_dir, tmp_path):
    twin = tmp_path / "twin-tiny"
    twin.symlink_to(tiny_qwen_dir, target_is_directory=True)
    run = curate_students(
        [str(tiny_qwen_dir), StudentConfig(str(twin), dtype="bfloat16", chat_template=QWEN_CHAT_TEMPLATE)],
        str(corpus),
        tmp_path / "out",
        scoring=ScoringConfig(progress=False, score_cache=False),
    )
    plain, twin_facts = (run.results[student_slug(s)].stats["student"] for s in (str(tiny_qwen_dir), str(twin)))
    assert (plain["dtype"], plain["chat_template_override"]) == ("float32", False)
    assert (twin_facts["dtype"], twin_facts["chat_template_override"]) == ("bfloat16", True)


def test_several_students_errors(corpus, tiny_qwen_dir, tmp_path, capsys, monkeypatch):
    with pytest.raises(StudentError, match="distinct names"):
        curate_students([str(tiny_qwen_dir), str(tiny_qwen_dir)], str(corpus), tmp_path)
    with pytest.raises(PublishError, match="takes an org"):
        curate_students(
            ["smollm2-135m", str(tiny_qwen_dir)], str(corpus), tmp_path, publishing=PublishConfig(push="org/name")
        )
    assert main(["curate", "--student", "qwen-0.5b", "--student", "qwen-1.5b", "--round", "2"]) == 2
    assert "take one student" in capsys.readouterr().err
    monkeypatch.setattr(several, "score_table", lambda *a, **k: pytest.fail("scored before checking the teacher name"))
    with pytest.raises(SelectionError, match="not in the corpus"):
        curate_students(
            ["smollm2-135m", str(tiny_qwen_dir)],
            str(corpus),
            tmp_path,
            selection=SelectionConfig(strategy="teacher:nobody"),
        )


def test_summary_files_the_tool_did_not_write_are_refused_before_any_work(corpus, tiny_qwen_dir, tmp_path, monkeypatch):
    from scas_hub.publish.summary import students_summary, write_summary

    monkeypatch.setattr(several, "run_table", lambda *a, **k: pytest.fail("read the corpus before the check"))
    (tmp_path / "students_summary.md").write_text("my own notes\n")
    with pytest.raises(PublishError, match="students_summary.md exists and was not written by scas-hub"):
        curate_students(["smollm2-135m", str(tiny_qwen_dir)], str(corpus), tmp_path)
    assert (tmp_path / "students_summary.md").read_text() == "my own notes\n"
    (tmp_path / "students_summary.json").write_text('{"mine": 1}')
    with pytest.raises(PublishError, match="students_summary.json exists"):
        curate_students(["smollm2-135m", str(tiny_qwen_dir)], str(corpus), tmp_path)
    # an earlier run's summary is replaced
    earlier = tmp_path / "earlier"
    write_summary(earlier, students_summary({"a": {}, "b": {}}, {}))
    write_summary(earlier, students_summary({"c": {}, "d": {}}, {}))
    assert json.loads((earlier / "students_summary.json").read_text())["students"] == ["c", "d"]
