"""Re-selection from a dataset's stored scores: same selection as the original run and as scoring
again, statistics carried forward, a complete output folder, and the `select` CLI.

Selecting from a published dataset's `candidates` config runs against the fake Hub (`fake_hub`).
"""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest
from datasets import load_dataset

from scas_hub import CorpusFormatError, ScoringConfig, SelectionConfig, SourceError, curate, reselect
from scas_hub.cli import main
from scas_hub.testing.corpus import synthetic_pool, write_pool

MAX_LENGTH = 90  # sets a few long answers aside at scoring (too_long): rows the candidates config lacks


def table(folder, config="data"):
    return pq.read_table(folder / config)


def picks(folder) -> dict[str, str]:
    rows = table(folder).to_pylist()
    return {r["question_id"]: r["teacher"] for r in rows}


def stats(folder) -> dict:
    return json.loads((folder / "selection_stats.json").read_text())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rows = synthetic_pool(6, teachers=6, max_words=60, seed=5, subset="mini")
    rows["teacher-0"][1]["teacher_output"] = ""  # skipped by verification
    for teacher in rows:  # question 5: no valid candidate at all
        rows[teacher][5]["teacher_output"] = ""
    return write_pool(rows, tmp_path_factory.mktemp("corpus"))


def run_curate(student, corpus, out, **kw):
    return curate(
        str(student),
        str(corpus),
        out,
        scoring=ScoringConfig(max_length=MAX_LENGTH, progress=False),
        selection=SelectionConfig(**{"seed": 7, **kw}),
    )


@pytest.fixture(scope="module")
def original(tiny_qwen_dir, corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("original") / "scas-tiny"
    run_curate(tiny_qwen_dir, corpus, out)
    s = stats(out)
    # the corpus exercises everything the candidates config does not hold
    assert s["skipped"]["empty_answer"] == 7 and s["skipped"]["too_long"] > 0
    assert s["questions_dropped"] == {"no_valid_candidate": 1}
    return out


def test_reselect_with_the_same_settings_reproduces_the_original(original, tmp_path):
    out = tmp_path / "again"
    result = reselect(original, out, selection=SelectionConfig(seed=7))
    assert table(out).equals(table(original))
    assert table(out, "candidates").equals(table(original, "candidates"))
    before, after = stats(original), stats(out)
    origin = after.pop("scores_from")
    assert origin == {
        "location": str(original),
        "repo_id": None,
        "revision": None,
        "stats_carried_forward": True,
        "scoring_run": {
            "created": before["run"]["created"],
            "student": before["student"]["repo_id"],
            "student_revision": before["student"]["revision"],
            "weights": None,
            "dtype": "float32",
            "hardware": before["run"]["hardware"],
            "tokens_scored": before["tokens_scored"],
            "scoring_seconds": before["scoring_seconds"],
            "version": None,
        },
    }
    run = after.pop("run")  # a new run: its own run facts, and no scoring figures of its own
    assert run["hardware"].startswith("none: re-selection") and run["model_ran"] is False
    assert "tokens_per_second" not in run and "ranks" not in run
    before.pop("run")
    assert after == before  # skipped rows, dropped questions, scoring figures: all carried forward
    assert {q: p.teacher for q, p in result.selection.items()} == picks(original)
    card = (out / "README.md").read_text()
    assert "re-selected without scoring" in card and "carried forward" in card
    assert "`too_long`" in card and "`no_valid_candidate` | 1" in card
    assert len(load_dataset(str(out), split="train")) == 5


@pytest.mark.parametrize("strategy", ["argmin", "strongest"])
def test_reselect_equals_scoring_again(original, tiny_qwen_dir, corpus, tmp_path, strategy):
    reselected = reselect(original, tmp_path / "reselected", selection=SelectionConfig(strategy=strategy, seed=7))
    rescored = run_curate(tiny_qwen_dir, corpus, tmp_path / "rescored", strategy=strategy)
    assert picks(tmp_path / "reselected") == picks(tmp_path / "rescored")
    assert table(tmp_path / "reselected").equals(table(tmp_path / "rescored"))
    for key in (
        "rows_in",
        "rows_scored",
        "skipped",
        "skipped_by_teacher",
        "questions_in",
        "questions_selected",
        "questions_dropped",
        "policy_applied",
        "selection",
    ):
        assert reselected.stats[key] == rescored.stats[key], key


def test_strongest_counts_rows_that_scoring_set_aside(original, tmp_path):
    """too_long answers are verified answers: the ranking must match the run that saw them."""
    s = stats(original)
    too_long = {t: r["too_long"] for t, r in s["skipped_by_teacher"].items() if "too_long" in r}
    assert too_long
    result = reselect(original, tmp_path / "strongest", selection=SelectionConfig(strategy="strongest"))
    order = result.stats["selection"]["teacher_order"]
    scored = _scored_by_teacher(original)
    verified = {t: scored.get(t, 0) + too_long.get(t, 0) for t in set(scored) | set(too_long)}
    assert order == sorted(verified, key=lambda t: (-verified[t], t))


def _scored_by_teacher(folder) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in table(folder, "candidates").column("teacher").to_pylist():
        out[t] = out.get(t, 0) + 1
    return out


def test_reselect_with_a_user_ranking_and_another_lambda(original, tmp_path):
    result = reselect(
        original,
        tmp_path / "ranked",
        selection=SelectionConfig(strategy="strongest", teacher_ranking=["teacher-3", "teacher-1"]),
    )
    order = result.stats["selection"]["teacher_order"]
    assert order[:2] == ["teacher-3", "teacher-1"] and len(order) == 6
    candidates = table(original, "candidates").to_pylist()
    answered = {(r["question_id"], r["teacher"]) for r in candidates}
    expected = {q: next(t for t in order if (q, t) in answered) for q, _ in answered}
    assert picks(tmp_path / "ranked") == expected
    assert set(expected.values()) >= {"teacher-3", "teacher-1"}  # the ranking matters here
    # lambda changes the ranking score: the new folder's scores are recomputed from the components
    reselect(original, tmp_path / "lam0", selection=SelectionConfig(strategy="argmin", lam=0.0))
    for r in table(tmp_path / "lam0").to_pylist():
        assert r["scas_score"] == pytest.approx(r["answer_mean_nll"] ** 2 * _component(candidates, r, "sim_aa"))


def _component(candidates, row, name):
    key = (row["question_id"], row["teacher"])
    return next(c[name] for c in candidates if (c["question_id"], c["teacher"]) == key)


def test_reselect_without_stats_file_says_counts_are_missing(original, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(original, bare)
    (bare / "selection_stats.json").unlink()
    result = reselect(bare, tmp_path / "out")
    s = result.stats
    assert s["skipped"] == {} and s["rows_in"] == s["rows_scored"] and s["questions_in"] == 5
    assert s["scores_from"]["stats_carried_forward"] is False
    assert "**not counted**" in (tmp_path / "out" / "README.md").read_text()


def test_reselect_errors(original, tmp_path):
    with pytest.raises(SourceError, match="no such folder: no_such_folder_here"):
        reselect("no_such_folder_here", tmp_path / "x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="has no candidates"):
        reselect(tmp_path / "empty", tmp_path / "x")
    with pytest.raises(SourceError, match="Hub datasets only"):
        reselect(original, tmp_path / "x", revision="v1")
    broken = tmp_path / "broken"
    shutil.copytree(original, broken)
    shard = next((broken / "candidates").glob("*.parquet"))
    pq.write_table(pq.read_table(shard).drop(["sim_aa"]), shard)
    with pytest.raises(CorpusFormatError, match="lacks columns sim_aa"):
        reselect(broken, tmp_path / "x")


def test_select_cli(original, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(
        [
            "select",
            "--candidates",
            str(original),
            "--out",
            str(out),
            "--strategy",
            "strongest",
            "--teacher-ranking",
            "teacher-2,teacher-4",
            "--teacher-ranking",
            "teacher-0",
        ]
    )
    assert code == 0
    assert f'load_dataset("{out.resolve()}")' in capsys.readouterr().out
    selection = stats(out)["selection"]
    assert selection["teacher_ranking"] == ["teacher-2", "teacher-4", "teacher-0"]
    assert selection["teacher_order"][:3] == ["teacher-2", "teacher-4", "teacher-0"]
    assert main(["select", "--candidates", str(original), "--out", str(out), "--strategy", "teacher:nobody"]) == 2
    assert "not in the corpus" in capsys.readouterr().err


def test_reselect_from_a_published_version_on_the_hub(fake_hub, original, tmp_path):
    from scas_hub.publish.hub import push_folder

    repo_id = "org/scas-tiny"
    shutil.copytree(original, tmp_path / "pushed")
    assert push_folder(tmp_path / "pushed", repo_id).version == "v1"
    local = reselect(original, tmp_path / "local", selection=SelectionConfig(strategy="argmin", seed=7))
    hub = reselect(repo_id, tmp_path / "hub", revision="v1", selection=SelectionConfig(strategy="argmin", seed=7))
    assert picks(tmp_path / "hub") == picks(tmp_path / "local")
    assert table(tmp_path / "hub").equals(table(tmp_path / "local"))
    origin = hub.stats["scores_from"]
    assert origin["repo_id"] == repo_id and origin["stats_carried_forward"]
    assert len(origin["revision"]) == 40  # the tag was resolved to the commit it names
    for key in ("rows_in", "skipped", "questions_in", "questions_dropped"):
        assert hub.stats[key] == local.stats[key], key


def test_a_candidates_config_that_splits_a_question_or_lacks_a_turn_is_refused(original, tmp_path):
    import pyarrow as pa

    rows = pq.read_table(original / "candidates")
    first = rows.column("question_id")[0].as_py()
    # the first question's first row moved to the end: its rows are no longer together
    split = tmp_path / "split"
    shutil.copytree(original, split)
    shutil.rmtree(split / "candidates")
    (split / "candidates").mkdir()
    pq.write_table(pa.concat_tables([rows.slice(1), rows.slice(0, 1)]), split / "candidates" / "train.parquet")
    with pytest.raises(CorpusFormatError, match=f"rows of question '{first}' are not together"):
        reselect(split, tmp_path / "out-split")
    # a conversation without the assistant's turn
    cut = tmp_path / "cut"
    shutil.copytree(original, cut)
    shutil.rmtree(cut / "candidates")
    (cut / "candidates").mkdir()
    turns = rows.column("messages").to_pylist()
    turns[3] = turns[3][:2]
    messages = pa.array(turns, rows.schema.field("messages").type)
    pq.write_table(
        rows.set_column(rows.schema.get_field_index("messages"), "messages", messages),
        cut / "candidates" / "train.parquet",
    )
    with pytest.raises(CorpusFormatError, match="lack a user or assistant turn"):
        reselect(cut, tmp_path / "out-cut")
    assert not (tmp_path / "out-split").exists() and not (tmp_path / "out-cut").exists()


def test_windows_hold_whole_questions_whatever_the_batch_size(original):
    from dataclasses import replace

    from scas_hub.publish.published import open_published

    published = open_published(original)
    rows = pq.read_table(original / "candidates")

    def small_batches(columns):  # 5 rows at a time: questions straddle batches
        view = rows.select(columns) if columns is not None else rows
        yield from view.to_batches(max_chunksize=5)

    windows = list(replace(published, batches=small_batches).windows(rows=7))
    assert len(windows) > 3
    ids = [w.column("question_id").to_pylist() for w in windows]
    assert [q for w in ids for q in w] == rows.column("question_id").to_pylist()
    for before, after in zip(ids, ids[1:], strict=False):
        assert before[-1] != after[0]  # a question never continues in the next window
    assert all(w.column("scored").to_pylist() == [True] * w.num_rows for w in windows)
