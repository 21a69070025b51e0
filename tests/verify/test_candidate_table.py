"""The candidate table: built on several processes, it holds exactly what the streaming verify stage yields."""

from __future__ import annotations

import json
import random

import pytest

from scas_hub import CorpusFormatError, PipelineStats
from scas_hub.constants import table_cache_dir
from scas_hub.source import open_source
from scas_hub.testing.corpus import write_rows
from scas_hub.verify import build as table_build
from scas_hub.verify import iter_verified
from scas_hub.verify.build import open_table


def messy_rows(n_questions: int, teacher: str, seed: int) -> list[dict]:
    """Rows in shuffled order with every kind of trouble the verify stage counts."""
    rng = random.Random(seed)
    rows = []
    for i in range(n_questions):
        answer = rng.choice(["\\boxed{42}", "so \\boxed{42}", "\\boxed{41}", "no idea", "", "6*7 = \\boxed{42}"])
        row = {
            "id": i,
            "source_dataset": "s",
            "teacher_name": teacher,
            "instruction": f"What is {i}?",
            "teacher_output": answer,
            "reference_answer": "42",
        }
        if i % 11 == 0:
            row["instruction"] = f"Something else {i}?"
        if i % 13 == 0:
            row["id"] = ""
        if i % 7 == 0:
            row["is_correct"] = i % 2 == 0
        rows.append(row)
        if i % 9 == 0:
            rows.append(dict(row, teacher_output=rng.choice(["\\boxed{42}", "again \\boxed{42}"])))
    rng.shuffle(rows)
    return rows


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "pool"
    for k in range(3):
        write_rows(messy_rows(60, f"t{k}", seed=k), folder / f"t{k}.jsonl")
    return folder


def streamed(folder):
    stats = PipelineStats()
    opened = open_source(str(folder))
    questions = list(iter_verified(opened.candidates(), stats, rule=opened.verification))
    return [(q.question_id, [(c.teacher, c.answer, c.skip_reason) for c in q.candidates]) for q in questions], stats


def tabled(folder, processes):
    stats = PipelineStats()
    table = open_table(open_source(str(folder)), processes=processes)
    table.stats.add_to(stats)
    return (
        [
            (q.question_id, [(c.teacher, c.answer, c.skip_reason) for c in q.candidates])
            for q in table.iter_questions(per_batch=7)
        ],
        stats,
        table,
    )


def test_parallel_table_equals_the_streaming_verify_stage(corpus, monkeypatch, tmp_path):
    monkeypatch.setattr(table_build, "PART_ROWS", 17)  # many parts per file, on 2 processes
    monkeypatch.setattr(table_build, "VERIFY_ROWS", 20)
    expected, expected_stats = streamed(corpus)
    got, stats, table = tabled(corpus, processes=2)
    assert got == expected
    assert stats.to_dict() == expected_stats.to_dict()
    assert list(stats.skipped_by_teacher) == list(expected_stats.skipped_by_teacher)  # same order of teachers
    assert sum(stats.skipped.values()) < stats.rows_in == table.n_rows
    # built once: the same corpus opens the same folder without building again
    monkeypatch.setattr(table_build, "build_table", lambda *a, **k: pytest.fail("rebuilt"))
    again, _, table2 = tabled(corpus, processes=2)
    assert again == got and table2.folder == table.folder


def test_a_changed_file_gets_a_new_table(corpus):
    _, _, before = tabled(corpus, processes=1)
    write_rows(messy_rows(61, "t0", seed=0), corpus / "t0.jsonl")
    _, stats, after = tabled(corpus, processes=1)
    assert after.folder != before.folder and after.n_rows > before.n_rows


def test_broken_line_in_a_later_part_is_named_by_file_and_line(tmp_path, monkeypatch):
    monkeypatch.setattr(table_build, "PART_ROWS", 10)
    folder = tmp_path / "pool"
    rows = [
        {"id": i, "teacher_name": "t", "instruction": "q?", "teacher_output": "\\boxed{1}", "reference_answer": "1"}
        for i in range(40)
    ]
    write_rows(rows, folder / "t.jsonl")
    lines = (folder / "t.jsonl").read_text().splitlines()
    lines[33] = "{broken"
    (folder / "t.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(CorpusFormatError, match=r"t\.jsonl:34: broken JSON line"):
        open_table(open_source(str(folder)), processes=2)
    assert not list(table_cache_dir().glob(".*"))  # the half-built table is gone


def test_pool_flag_is_read_by_default(tmp_path):
    """The published pool's `is_common_correct` decides under `--verify flags`; `is_correct` wins when present."""
    rows = [
        {
            "id": 0,
            "teacher_name": t,
            "instruction": "q?",
            "teacher_output": f"answer {t}",
            "is_common_correct": t != "b",
            **({"is_correct": False} if t == "c" else {}),
        }
        for t in "abc"
    ]
    write_rows(rows, tmp_path / "pool" / "all.jsonl")
    stats = PipelineStats()
    table = open_table(open_source(str(tmp_path / "pool"), verification="flags"))
    table.stats.add_to(stats)
    assert [c.skip_reason for c in table.questions()[0].candidates] == [None, "not_verified", "not_verified"]
    assert json.loads((table.folder / "table.json").read_text())["usable"] == 1


def test_row_taker_equals_arrow_take_without_concatenating():
    import numpy as np
    import pyarrow as pa

    from scas_hub.verify.table import RowTaker

    sizes = [3, 0, 5, 2, 7]
    table = pa.concat_tables(
        [
            pa.table(
                {"text": pa.array([f"{i}-{j}" for j in range(n)], pa.string()), "n": pa.array(np.arange(n) + 1000 * i)}
            )
            for i, n in enumerate(sizes)
        ]
    )
    taker = RowTaker(table)
    for seed in range(10):
        indices = np.random.default_rng(seed).integers(0, table.num_rows, 12)  # repeats, any order
        assert taker.take(indices).equals(table.take(indices))
    assert taker.take([]).num_rows == 0
