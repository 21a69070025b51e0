"""The run record (`selection_stats.json`) as dataclasses: what is read is written back unchanged,
older records read with defaults, and unknown keys survive."""

from __future__ import annotations

import json

import pytest

from scas_hub import ScoringConfig, curate
from scas_hub.publish.published import open_published
from scas_hub.report import set_aside_table
from scas_hub.run_record import Release, RoundEntry, RunFacts, RunRecord, SelectionFacts, StudentFacts
from scas_hub.testing.corpus import synthetic_pool, write_pool
from scas_hub.train.data import open_training_data


def as_written(record: dict) -> str:
    """The text `write_stats` writes for `record` (`atomic.write_json_atomic`)."""
    return json.dumps(record, indent=2, ensure_ascii=False) + "\n"


@pytest.fixture(scope="module")
def curated(tiny_qwen_dir, tmp_path_factory):
    corpus = write_pool(
        synthetic_pool(6, teachers=3, max_words=30, seed=5, subset="record"), tmp_path_factory.mktemp("corpus")
    )
    out = tmp_path_factory.mktemp("record") / "scas-tiny"
    result = curate(str(tiny_qwen_dir), str(corpus), out, round_number=1, scoring=ScoringConfig(progress=False))
    return out, result


def test_a_record_written_by_curate_reads_back_and_writes_the_same_bytes(curated, tiny_qwen_dir):
    out, result = curated
    text = (out / "selection_stats.json").read_text(encoding="utf-8")
    record = RunRecord.from_dict(json.loads(text))
    assert as_written(record.to_dict()) == text
    assert record == result.record and record.to_dict() == result.stats
    assert record.questions_selected == 6 and record.rows_scored == record.rows_in == 18
    assert record.student.name == tiny_qwen_dir.name and record.student.revision.startswith("local-")
    assert record.student.chat_template_sha256 == result.stats["student"]["chat_template_sha256"]
    assert record.selection.strategy == "scas" and record.run.model_ran is True
    assert record.rounds is not None and record.last_round.round == 1
    assert record.last_round.student_revision == record.student.revision and record.last_round.changed is None
    assert record.release is None and record.version is None and record.scores_from is None
    assert record.files == sorted(record.files) and "selection_stats.json" in record.files
    # the readers get the same typed record
    assert open_published(out).record == record
    assert open_training_data(out).record == record


def test_a_record_built_in_code_round_trips():
    record = RunRecord(
        rows_in=3,
        rows_scored=2,
        skipped={"too_long": 1},
        questions_in=1,
        questions_selected=1,
        student=StudentFacts(name="s", repo_id="org/s", revision="abc", device=None),
        selection=SelectionFacts(strategy="argmin", lam=0.5, groups=3, group=1, seed=42, small_policy="nearest"),
        run=RunFacts(created="2026-01-01 00:00 UTC", model_ran=False, hardware="none"),
        files=["README.md", "selection_stats.json"],
        release=Release(repo_id="org/d", version="v1", date="2026-01-01 00:00 UTC"),
    )
    written = record.to_dict()
    assert list(written)[-2:] == ["files", "release"]  # unset optional sections are left out
    assert "teacher_ranking" not in written["selection"] and "ranks" not in written["run"]
    assert written["student"]["device"] is None  # a field that is not optional is written when None
    again = RunRecord.from_dict(json.loads(json.dumps(written)))
    assert again == record and as_written(again.to_dict()) == as_written(written)
    assert again.version == "v1" and again.rows_set_aside() == 1


def test_an_older_record_reads_with_defaults_and_keeps_what_it_holds():
    old = {
        "rows_in": 4,
        "rows_scored": 4,
        "skipped": {},
        "questions_in": 2,
        "questions_selected": 2,
        "student": {"name": "s", "repo_id": "org/s", "revision": "r1", "legacy_field": 7},
        "source": {"name": "pool", "repo_id": "org/pool", "revision": None, "subsets": ["a"]},
        "selection": {"strategy": "scas", "lam": 0.5, "groups": 3, "group": 1, "seed": 42},
        "teachers": [{"teacher": "t", "selected": 2}],
        "notes": {"kept": True},
    }
    record = RunRecord.from_dict(old)
    # sections and counters the old record lacks take their defaults
    assert record.rows_truncated == record.scores_from_cache == 0 and record.policy_applied == {}
    assert record.run == RunFacts() and record.rounds is None and record.version is None
    assert record.student.chat_template_sha256 is None and record.student.max_length is None
    assert set_aside_table(record).startswith("  nothing set aside: all 4 rows scored")
    # unknown keys are kept, nested ones too, and the record is written back as it was read
    assert record.extra == {"notes": {"kept": True}} and record.student.extra == {"legacy_field": 7}
    assert json.dumps(record.to_dict()) == json.dumps(old)


def test_a_push_adds_the_release_after_what_was_read_and_a_second_push_keeps_its_place():
    record = RunRecord.from_dict({"rows_in": 1, "files": ["a"], "future": 1})
    record.release = Release(repo_id="org/d", version="v1", date="d1")
    record.versions = [{"version": "v1"}]
    first = record.to_dict()
    assert list(first) == ["rows_in", "files", "future", "release", "versions"]
    again = RunRecord.from_dict(first)
    again.release = Release(repo_id="org/d", version="v2", date="d2")
    assert list(again.to_dict()) == list(first) and again.version == "v2"


def test_a_section_of_another_json_type_is_written_back_as_it_was():
    odd = {"student": "a string", "rounds": {"not": "a list"}, "rows_in": 2}
    record = RunRecord.from_dict(odd)
    assert record.student == StudentFacts() and record.rounds is None
    assert json.dumps(record.to_dict()) == json.dumps(odd)


def test_round_entries_keep_their_training_once_known():
    entry = RoundEntry.from_dict({"round": 1, "student": {"revision": "r"}, "teacher_shares": {}, "changed": None})
    assert list(entry.to_dict()) == ["round", "student", "teacher_shares", "changed"]
    from dataclasses import replace

    trained = replace(entry, training={"steps": 2})
    assert list(trained.to_dict())[-1] == "training" and trained.student_revision == "r"
