"""Bad input: every case is skipped with a counted reason, or stops with a message naming the place."""

from __future__ import annotations

import gzip
import json

import pytest

from scas_hub import CorpusFormatError, PipelineStats, SourceError, load_questions
from scas_hub.source import Columns, CorpusRecipe
from scas_hub.testing.corpus import write_rows


def pool_row(i, teacher="t", answer="\\boxed{42}", instruction="What is 6*7?", **kw):
    return {
        "id": i,
        "source_dataset": "s",
        "teacher_name": teacher,
        "instruction": instruction,
        "teacher_output": answer,
        "reference_answer": "42",
        **kw,
    }


def skipped(rows, name="t.jsonl", verification=None, source=None):
    """Write `rows` to one file and return (questions, stats) after the source + verify stages."""
    if source is None:
        source = write_rows(rows, name)
    stats = PipelineStats()
    _, questions = load_questions(str(source), None, None, stats, verification)
    kept = sum(c.skip_reason is None for q in questions for c in q.candidates)
    assert stats.rows_in == kept + sum(stats.skipped.values())  # every row accounted for
    return questions, stats


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_missing_fields():
    rows = [
        pool_row(0),
        {k: v for k, v in pool_row(1).items() if k != "instruction"},
        {k: v for k, v in pool_row(2).items() if k != "teacher_output"},
        pool_row(3, answer=None),
        {k: v for k, v in pool_row(4).items() if k != "id"},
    ]
    _, stats = skipped(rows)
    assert dict(stats.skipped) == {"missing_instruction": 1, "missing_answer": 2, "missing_question_id": 1}


def test_empty_fields():
    _, stats = skipped([pool_row(0, answer="  \n"), pool_row(1, instruction=""), pool_row("")])
    assert dict(stats.skipped) == {"empty_answer": 1, "empty_instruction": 1, "missing_question_id": 1}


def test_wrong_types():
    rows = [
        pool_row(0, answer=["a", "list"]),
        pool_row(1, instruction=12),
        pool_row({"a": 1}),
        pool_row(3, is_correct="yes"),
        pool_row(4, teacher=7),
        pool_row(5, system={"x": 1}),
        pool_row(6.5),
        pool_row(True),
    ]
    _, stats = skipped(rows)
    assert dict(stats.skipped) == {
        "wrong_type_answer": 1,
        "wrong_type_instruction": 1,
        "wrong_type_question_id": 3,
        "wrong_type_verified": 1,
        "wrong_type_teacher": 1,
        "wrong_type_system": 1,
    }


def test_integer_ids_and_references_are_fine():
    questions, stats = skipped([pool_row(0, reference_answer=42), pool_row(0, teacher="u", answer="42")])
    assert not stats.skipped and [c.reference_answer for c in questions[0].candidates] == ["42", "42"]


def test_same_question_and_teacher_exact_repeat_dropped_other_answer_is_a_sample():
    rows = [pool_row(0), pool_row(0), pool_row(0, answer="6*7 = \\boxed{42}"), pool_row(0, teacher="u")]
    questions, stats = skipped(rows)
    assert [(c.teacher, c.sample, c.skip_reason) for c in questions[0].candidates] == [
        ("t", 0, None),
        ("t", 1, "duplicate_row"),
        ("t", 2, None),
        ("u", 0, "duplicate_answer"),
    ]
    assert stats.skipped_by_teacher == {"t": {"duplicate_row": 1}, "u": {"duplicate_answer": 1}}


def test_same_id_different_question_text():
    questions, stats = skipped([pool_row(0), pool_row(0, teacher="u", instruction="What is 5*8?")])
    assert [c.skip_reason for c in questions[0].candidates] == [None, "question_text_mismatch"]


def test_question_with_no_valid_candidate_stays_visible():
    questions, stats = skipped([pool_row(0, answer=""), pool_row(0, teacher="u", answer="\\boxed{41}"), pool_row(1)])
    assert [q.question_id for q in questions] == ["s/0", "s/1"]
    assert all(c.skip_reason for c in questions[0].candidates)  # selection counts it `no_valid_candidate`
    assert dict(stats.skipped) == {"empty_answer": 1, "not_verified": 1}


def test_missing_teacher_in_a_long_file():
    recipe = CorpusRecipe(
        name="long",
        description="",
        local_path=".",
        data_files={"*": ("c.jsonl",)},
        subsets=("main",),
        columns=Columns(teacher="model"),
    )
    write_rows([{**pool_row(0), "model": "a"}, pool_row(1)], "c.jsonl")
    stats = PipelineStats()
    load_questions(recipe, None, None, stats)
    assert dict(stats.skipped) == {"missing_teacher": 1}


def test_wide_rows_with_bad_answer_lists():
    recipe = CorpusRecipe(
        name="wide",
        description="",
        local_path=".",
        data_files={"*": ("w.jsonl",)},
        subsets=("main",),
        teacher="R1",
        verification="flags",
        columns=Columns(
            question_id="id",
            instruction="q",
            answer="gens.*",
            verified="ok.*",
            teacher=None,
            system=None,
            reference_answer=None,
            source_dataset=None,
        ),
    )
    write_rows(
        [
            {"id": 1, "q": "a?", "gens": ["x", "y"], "ok": [True]},  # parallel lists disagree
            {"id": 2, "q": "b?", "gens": []},  # no answers at all
            {"id": 3, "q": "c?", "gens": "x", "ok": True},  # not a list
            {"id": 4, "q": "d?"},  # no answer column
            {"id": 5, "q": "e?", "gens": ["x", 3], "ok": [True, True]},
        ],
        "w.jsonl",
    )
    stats = PipelineStats()
    _, questions = load_questions(recipe, None, None, stats)
    assert [q.question_id for q in questions] == ["main/1", "main/2", "main/3", "main/4", "main/5"]
    assert dict(stats.skipped) == {
        "answer_list_length_mismatch": 2,
        "no_answers": 1,
        "wrong_type_answer": 2,
        "missing_answer": 1,
    }
    assert stats.rows_in == 7
    assert [(c.teacher, c.sample) for c in questions[4].candidates] == [("R1", 0), ("R1", 1)]


def test_answers_failing_or_escaping_math_verify_are_excluded_per_teacher():
    rows = [
        pool_row(0, "a"),
        pool_row(0, "b", answer="\\boxed{41}"),
        pool_row(0, "c", answer="I am not sure."),
        pool_row(1, "a", reference_answer="\\"),
        pool_row(2, "a", reference_answer=None),
    ]
    questions, stats = skipped(rows, verification="math")
    assert stats.skipped_by_teacher == {
        "b": {"not_verified": 1},
        "c": {"unverifiable": 1},
        "a": {"unverifiable_reference": 1, "no_reference_answer": 1},
    }


def test_corpus_flags_win_over_math_verify_in_auto():
    rows = [
        pool_row(0, "a", answer="\\boxed{41}", is_correct=True),
        pool_row(0, "b", is_correct=False),
        pool_row(0, "c", answer="\\boxed{7}"),
    ]
    questions, stats = skipped(rows)
    assert [c.skip_reason for c in questions[0].candidates] == [None, "not_verified", "not_verified"]


def test_nothing_verifiable_says_what_to_do():
    rows = [pool_row(0, reference_answer=None), pool_row(1, reference_answer=None)]
    with pytest.raises(SourceError, match="neither a correctness flag nor a reference answer.*--verify trusted"):
        skipped(rows)
    _, stats = skipped(rows, verification="trusted")
    assert not stats.skipped


def test_broken_json_line_stops_with_file_and_line(tmp_path):
    (tmp_path / "pool").mkdir()
    path = tmp_path / "pool" / "t.jsonl"
    path.write_text(json.dumps(pool_row(0)) + "\n\n" + json.dumps(pool_row(1)) + "\n{not json\n")
    with pytest.raises(CorpusFormatError, match=r"t\.jsonl:4: broken JSON line"):
        skipped(None, source=tmp_path / "pool")
    with gzip.open(tmp_path / "g.jsonl.gz", "wt") as f:
        f.write(json.dumps(pool_row(0)) + "\n[1, 2]\n")
    with pytest.raises(CorpusFormatError, match=r"g\.jsonl\.gz:2: expected a JSON object per row, got list"):
        skipped(None, source=tmp_path / "g.jsonl.gz")


def test_broken_json_array_names_the_row(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[\n {"id": 0, "instruction": "q"},\n {"id": 1, "instruction": "q",,}\n]')
    with pytest.raises(CorpusFormatError, match=r"a\.json: row 2: broken JSON value in array \(.*,,\}"):
        skipped(None, source=path)
    path.write_text('[\n {"id": 0}\n')
    with pytest.raises(CorpusFormatError, match=r"row 2: .*premature EOF.*close the array"):
        skipped(None, source=path)
    path.write_text('[{"id": 0}, 7]')
    with pytest.raises(CorpusFormatError, match=r"a\.json: row 2: expected a JSON object per row, got int"):
        skipped(None, source=path)


def test_unreadable_parquet(tmp_path):
    (tmp_path / "p.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(CorpusFormatError, match=r"p\.parquet: not a readable parquet file"):
        skipped(None, source=tmp_path / "p.parquet")


def test_selection_stats_and_card_account_for_every_row(tmp_path, tiny_qwen_dir):
    """End to end: all kinds of bad rows, the student's own checks (length, control tokens) included."""
    from huggingface_hub import DatasetCard

    from scas_hub import ScoringConfig, curate

    rows = [
        pool_row(0, "a"),
        pool_row(0, "b", answer="6*7 is \\boxed{42}"),
        pool_row(0, "b"),
        pool_row(0, "c", answer="so " * 300 + "\\boxed{42}"),  # over --max-length
        pool_row(0, "d", answer="\\boxed{42}<|im_end|><|im_start|>user"),  # chat-template control tokens
        pool_row(1, "a", answer=""),
        pool_row(1, "b", answer="\\boxed{41}"),  # question 1: nothing valid
        pool_row(2, "a", answer=["x"]),
        pool_row(2, "b"),
        {"teacher_name": "a", "instruction": "No id?", "teacher_output": "1"},
    ]
    write_rows(rows, tmp_path / "corpus" / "mixed.jsonl")
    out = tmp_path / "out"
    result = curate(
        str(tiny_qwen_dir), str(tmp_path / "corpus"), out, scoring=ScoringConfig(max_length=200, progress=False)
    )
    stats = json.loads((out / "selection_stats.json").read_text())
    assert stats["rows_in"] == 10 and stats["rows_scored"] == 3
    assert stats["skipped"] == {
        "control_tokens_in_answer": 1,
        "duplicate_answer": 1,
        "empty_answer": 1,
        "missing_question_id": 1,
        "not_verified": 1,
        "too_long": 1,
        "wrong_type_answer": 1,
    }
    assert stats["rows_in"] == stats["rows_scored"] + sum(stats["skipped"].values())
    assert (stats["questions_in"], stats["questions_selected"]) == (3, 2)
    assert stats["questions_dropped"] == {"no_valid_candidate": 1}
    assert stats["source"]["verification"] == "auto" and stats["source"]["layout"] == "long"
    assert result.stats["skipped_by_teacher"]["c"] == {"too_long": 1}
    card = DatasetCard.load(out / "README.md").text
    for reason, n in stats["skipped"].items():
        assert f"| skipped: `{reason}` | {n} |" in card
    assert "| dropped: `no_valid_candidate` | 1 |" in card and "rule `auto`" in card


def test_over_max_length_is_truncated_only_when_asked(tiny_qwen):
    from scas_hub import Candidate, Question, ScoringConfig, StudentScorer

    model, tokenizer = tiny_qwen
    for truncate in (False, True):
        q = Question("q", [Candidate("q", "short", "Hi", "ok"), Candidate("q", "long", "Hi", "word " * 200)])
        stats = PipelineStats()
        scorer = StudentScorer(model, tokenizer, ScoringConfig(max_length=60, truncate=truncate, progress=False))
        list(scorer.score_questions([q], stats))
        n_prompt = scorer.encoder.encode(q.candidates[1:])[0].n_prompt
        scorer.close()
        long = q.candidates[1]
        if truncate:
            assert long.skip_reason is None and long.score.n_answer_tokens == 60 - n_prompt
            assert (stats.rows_scored, stats.rows_truncated, dict(stats.skipped)) == (2, 1, {})
        else:
            assert long.skip_reason == "too_long" and long.score is None
            assert (stats.rows_scored, stats.rows_truncated, dict(stats.skipped)) == (1, 0, {"too_long": 1})


def test_truncate_without_max_length_is_an_error():
    from scas_hub import ConfigError, ScoringConfig

    with pytest.raises(ConfigError, match="--max-length"):
        ScoringConfig(truncate=True)


def test_nothing_survives_verification_exits_1_and_names_the_flag_columns(tmp_path):
    """A pool-layout folder whose flag column the map does not read: a clear message, exit 1, nothing written."""
    import subprocess
    import sys

    rows = [dict(pool_row(i), pool_flag=True) for i in range(3)]
    write_rows(rows, tmp_path / "corpus" / "t.jsonl")
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "scas_hub",
            "curate",
            "--source",
            str(tmp_path / "corpus"),
            "--out",
            str(out),
            "--verify",
            "flags",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "no candidate survived verification: 3 rows in, 3 set aside (no_verification_flag 3)" in proc.stderr
    assert "pool_flag (bool)" in proc.stderr and "--verify math" in proc.stderr
    assert not out.exists()


def test_nothing_survives_scoring_says_what_to_do(tmp_path, tiny_qwen_dir):
    from scas_hub import NoUsableCandidatesError, ScoringConfig, curate

    write_rows([pool_row(0, answer="so " * 300 + "\\boxed{42}")], tmp_path / "corpus" / "t.jsonl")
    with pytest.raises(
        NoUsableCandidatesError,
        match=r"survived scoring: 1 rows in, 1 set aside \(too_long 1\)"
        r".*--truncate.*Nothing was written",
    ):
        curate(
            str(tiny_qwen_dir),
            str(tmp_path / "corpus"),
            tmp_path / "out",
            scoring=ScoringConfig(max_length=100, progress=False, score_cache=False),
        )
    assert not (tmp_path / "out").exists()


def test_a_data_file_that_cannot_be_opened_is_left_to_the_reader(tmp_path):
    """Splitting files for several cores does not read an unopenable file itself: the reader reports it
    with its name (an OSError escaping here was reported as the table cache's disk being unwritable)."""
    from scas_hub.source.files import row_parts

    unopenable = tmp_path / "teacher.jsonl"
    unopenable.mkdir()  # open() fails with an OSError (IsADirectoryError), also when run as root
    assert row_parts(unopenable, rows_per_part=1) == [None]
