"""Every corpus layout, read from small local fixtures shaped like the real corpora, into `Candidate`s.

The builders' own recipes are used (pointed at local files instead of the Hub), so these tests also
check the column mappings the builders declare.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from scas_hub import PipelineStats, SourceError, load_questions
from scas_hub.source import Columns, CorpusRecipe, TeacherDataset, load_builder, open_source
from scas_hub.source import files as source_files
from scas_hub.source.columns import question_hash
from scas_hub.testing.corpus import write_rows


def load(source, **kw):
    stats = PipelineStats()
    info, questions = load_questions(source, kw.pop("subset", None), None, stats, kw.pop("verification", None))
    return info, questions, stats


def kept(questions):
    return {(q.question_id, c.teacher): c for q in questions for c in q.candidates if c.skip_reason is None}


# ---- long ---------------------------------------------------------------------------------------------

LONG_COLUMNS = Columns(
    question_id="qid",
    instruction="prompt",
    answer="output",
    teacher="model",
    system=None,
    reference_answer="gold",
    verified="ok",
    source_dataset=None,
)
LONG_ROWS = [
    {"qid": 7, "prompt": "What is 6*7?", "model": "m1", "output": "6*7 = \\boxed{42}", "gold": 42, "ok": True},
    {"qid": 3, "prompt": "What is 1+1?", "model": "m1", "output": "\\boxed{2}", "gold": 2, "ok": True},
    {"qid": 7, "prompt": "What is 6*7?", "model": "m2", "output": "It is 42.", "gold": 42, "ok": None},
    {"qid": 3, "prompt": "What is 1+1?", "model": "m2", "output": "\\boxed{3}", "gold": 2, "ok": False},
]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet"])
def test_long_layout_any_column_names_any_format(tmp_path, suffix):
    write_rows(LONG_ROWS, tmp_path / "data" / f"corpus{suffix}")
    recipe = CorpusRecipe(
        name="mine",
        description="",
        local_path=str(tmp_path),
        subsets=("main",),
        data_files={"main": ("data/*",)},
        columns=LONG_COLUMNS,
    )
    info, questions, stats = load(recipe)
    assert info.layout == "long" and info.verification == "auto"
    # questions in natural id order, candidates in source order
    assert [q.question_id for q in questions] == ["main/3", "main/7"]
    good = kept(questions)
    assert set(good) == {("main/3", "m1"), ("main/7", "m1"), ("main/7", "m2")}
    c = good[("main/7", "m2")]
    # no flag: math-verify against the integer reference (read as text)
    assert (c.instruction, c.answer, c.reference_answer, c.verified) == ("What is 6*7?", "It is 42.", "42", None)
    assert c.provenance["file"] == f"corpus{suffix}"
    assert dict(stats.skipped) == {"not_verified": 1}
    assert stats.skipped_by_teacher == {"m2": {"not_verified": 1}}


def test_recipe_file_is_a_source(tmp_path):
    write_rows(LONG_ROWS, tmp_path / "files" / "corpus.jsonl")
    recipe_file = tmp_path / "my_corpus.py"
    recipe_file.write_text(
        "from scas_hub.source import Columns, CorpusRecipe\n"
        "RECIPE = CorpusRecipe(name='my_corpus', description='mine', local_path='files', verification='flags',\n"
        "    columns=Columns(question_id='qid', instruction='prompt', answer='output', teacher='model',\n"
        "                    verified='ok', reference_answer='gold', system=None, source_dataset=None))\n"
    )
    info, questions, stats = load(str(recipe_file))
    assert info.name == "my_corpus" and info.verification == "flags"
    assert dict(stats.skipped) == {"not_verified": 1, "no_verification_flag": 1}
    assert sorted(kept(questions)) == [("3", "m1"), ("7", "m1")]


# ---- wide ---------------------------------------------------------------------------------------------


def ultrafeedback_row(instruction, completions, source="evol_instruct"):
    return {
        "source": source,
        "instruction": instruction,
        "models": [c[0] for c in completions],
        "completions": [
            {
                "model": m,
                "response": r,
                "custom_system_prompt": sp,
                "principle": "helpfulness",
                "annotations": {"helpfulness": {"Rating": "4"}},
                "critique": "ok",
                "overall_score": 7.5,
                "fine-grained_score": 4.0,
            }
            for m, r, sp in completions
        ],
        "correct_answers": ["None"],
        "incorrect_answers": ["None"],
    }


def test_wide_list_of_structs_ultrafeedback(tmp_path):
    rows = [
        ultrafeedback_row(
            "Write a haiku about rain.",
            [
                ("gpt-4", "Rain on the roof...", "You are a poet."),
                ("llama-2-70b-chat", "Drops fall softly...", ""),
                ("wizardlm-7b", "Drops fall softly...", ""),
            ],
        ),
        ultrafeedback_row("Name a prime.", [("gpt-4", "2", ""), ("alpaca-7b", "9", "")], source="flan_v2"),
    ]
    write_rows(rows, tmp_path / "evol_instruct.jsonl")
    recipe = replace(load_builder("ultrafeedback"), repo_id=None, revision=None, local_path=str(tmp_path))
    info, questions, stats = load(recipe)
    assert info.layout == "wide" and info.verification == "trusted"
    assert stats.rows_in == 5
    haiku = next(q for q in questions if q.question_id == question_hash("Write a haiku about rain."))
    assert [(c.teacher, c.skip_reason) for c in haiku.candidates] == [
        ("gpt-4", None),
        ("llama-2-70b-chat", None),
        ("wizardlm-7b", "duplicate_answer"),
    ]
    assert haiku.candidates[0].system == "You are a poet."
    assert haiku.candidates[1].system is None  # empty -> the default system prompt when rendered
    assert haiku.candidates[0].source_dataset == "evol_instruct"
    assert haiku.candidates[2].provenance == {"file": "evol_instruct.jsonl", "line": 1, "answer_index": 2}
    assert stats.skipped_by_teacher == {"wizardlm-7b": {"duplicate_answer": 1}}


def openr1_row(uuid, problem, answer, generations, flags):
    return {
        "problem": problem,
        "solution": "...",
        "answer": answer,
        "problem_type": "Algebra",
        "question_type": "math-word-problem",
        "source": "olympiads",
        "uuid": uuid,
        "is_reasoning_complete": [True] * len(generations),
        "generations": generations,
        "correctness_math_verify": flags,
        "correctness_llama": None,
        "finish_reasons": ["stop"] * len(generations),
        "correctness_count": sum(flags),
        "messages": [{"role": "user", "content": problem}, {"role": "assistant", "content": generations[0]}],
    }


def test_wide_parallel_lists_openr1(tmp_path):
    rows = [
        openr1_row("u-1", "Solve x+1=3.", "2", ["<think>...</think> \\boxed{2}", "x = \\boxed{2}"], [True, True]),
        openr1_row("u-2", "Compute 2^5.", "32", ["\\boxed{32}", "\\boxed{23}", "\\boxed{32}."], [True, False, True]),
    ]
    write_rows(rows, tmp_path / "data" / "train-00000-of-00001.parquet")
    write_rows(rows[:1], tmp_path / "extended" / "train-00000-of-00001.parquet")
    recipe = replace(load_builder("openr1_math"), repo_id=None, revision=None, local_path=str(tmp_path))
    info, questions, stats = load(recipe)
    assert info.layout == "wide" and info.subsets == ("default",) and info.verification == "flags"
    assert [q.question_id for q in questions] == ["default/u-1", "default/u-2"]  # ids scoped by subset
    # one teacher, its generations are samples numbered by their index in the list
    assert [(c.teacher, c.sample, c.skip_reason) for c in questions[1].candidates] == [
        ("DeepSeek-R1", 0, None),
        ("DeepSeek-R1", 1, "not_verified"),
        ("DeepSeek-R1", 2, None),
    ]
    assert questions[1].candidates[0].reference_answer == "32"
    assert stats.skipped_by_teacher == {"DeepSeek-R1": {"not_verified": 1}}
    _, both, stats = load(recipe, subset="all")
    assert [q.question_id for q in both] == ["default/u-1", "default/u-2", "extended/u-1"]
    assert stats.rows_in == 7


# ---- joined -------------------------------------------------------------------------------------------


def am_row(question, answer, reference, system=None):
    msgs = [{"role": "system", "content": system, "info": None}] if system else []
    return {
        "messages": [
            *msgs,
            {
                "role": "user",
                "content": question,
                "info": {
                    "source": "numina",
                    "reference_answer": reference,
                    "test_case": None,
                    "think_content": None,
                    "answer_content": None,
                },
            },
            {
                "role": "assistant",
                "content": answer,
                "info": {
                    "source": "numina",
                    "reference_answer": None,
                    "test_case": None,
                    "think_content": "...",
                    "answer_content": answer,
                },
            },
        ]
    }


def am_recipe(tmp_path):
    teachers = tuple(
        TeacherDataset(t.teacher, local_path=str(tmp_path / t.teacher)) for t in load_builder("am_distilled").teachers
    )
    return replace(load_builder("am_distilled"), teachers=teachers)


def test_joined_datasets_on_normalised_question_text(tmp_path):
    write_rows(
        [
            am_row("What is 2+2?", "<think>..</think><answer>\\boxed{4}</answer>", "4"),
            am_row("Area of a unit square?", "\\boxed{1}", "1"),
        ],
        tmp_path / "AM-Thinking-v1" / "math.jsonl",
    )
    write_rows(
        [
            am_row("what is  2+2?\n", "The answer is $4$.", "4", system="Think first."),
            am_row("Only Qwen saw this one?", "\\boxed{5}", "6"),
            am_row("Area of a unit square?", "\\boxed{1}", "1"),
        ],
        tmp_path / "Qwen3-235B-A22B" / "math.jsonl",
    )
    write_rows([am_row("def f(): ...", "code", None)], tmp_path / "Qwen3-235B-A22B" / "code.jsonl")
    info, questions, stats = load(am_recipe(tmp_path))
    assert info.layout == "joined" and info.subsets == ("math",) and info.verification == "math"
    by_id = {q.question_id: q for q in questions}
    assert len(by_id) == 3 and stats.rows_in == 5  # the code file is another subset
    joined = by_id[question_hash("What is 2+2?")]
    assert [(c.teacher, c.skip_reason) for c in joined.candidates] == [
        ("AM-Thinking-v1", None),
        ("Qwen3-235B-A22B", None),
    ]
    assert joined.candidates[1].system == "Think first." and joined.candidates[0].system is None
    assert joined.candidates[0].source_dataset == "numina"
    alone = by_id[question_hash("Only Qwen saw this one?")]
    assert [c.skip_reason for c in alone.candidates] == ["not_verified"]
    square = by_id[question_hash("Area of a unit square?")]
    assert [c.skip_reason for c in square.candidates] == [None, "duplicate_answer"]
    assert stats.skipped_by_teacher == {"Qwen3-235B-A22B": {"not_verified": 1, "duplicate_answer": 1}}


def test_joined_recipe_downloads_each_teacher_at_its_revision(tmp_path, monkeypatch):
    """The Hub path of a joined builder: one snapshot per teacher dataset, SHAs recorded for the card."""
    calls = []

    def fake_download(repo_id, patterns, revision):
        calls.append((repo_id, tuple(patterns), revision))
        root = tmp_path / repo_id.split("/")[1]
        write_rows([am_row("What is 2+2?", "\\boxed{4}" if "Qwen" in repo_id else "4", "4")], root / "math.jsonl")
        return root, "sha-" + repo_id.split("/")[1]

    monkeypatch.setattr("scas_hub.source._hub_download", fake_download)
    opened = open_source("am_distilled")
    assert [c[0] for c in calls] == ["a-m-team/AM-Thinking-v1-Distilled", "a-m-team/AM-Qwen3-Distilled"]
    assert all("math.jsonl" in c[1] for c in calls)
    assert opened.info.datasets == (
        ("a-m-team/AM-Thinking-v1-Distilled", "sha-AM-Thinking-v1-Distilled"),
        ("a-m-team/AM-Qwen3-Distilled", "sha-AM-Qwen3-Distilled"),
    )
    assert opened.info.repo_id is None
    assert {c.teacher for c in opened.candidates()} == {"AM-Thinking-v1", "Qwen3-235B-A22B"}
    with pytest.raises(SourceError, match="pin their revisions"):
        open_source("am_distilled", revision="main")


def test_builder_pins_revision_and_subset_patterns(tmp_path, monkeypatch):
    seen = {}

    def fake_download(repo_id, patterns, revision):
        seen.update(repo_id=repo_id, patterns=patterns, revision=revision)
        write_rows([openr1_row("u", "p", "1", ["\\boxed{1}"], [True])], tmp_path / "extended" / "train-0.parquet")
        return tmp_path, "f" * 40

    monkeypatch.setattr("scas_hub.source._hub_download", fake_download)
    opened = open_source("openr1_math", subset="extended")
    assert seen == {
        "repo_id": "open-r1/OpenR1-Math-220k",
        "patterns": ["extended/train-*.parquet"],
        "revision": "e4e141ec9dea9f8326f4d347be56105859b2bd68",
    }
    assert (opened.info.repo_id, opened.info.revision) == ("open-r1/OpenR1-Math-220k", "f" * 40)
    with pytest.raises(SourceError, match="no subset geometry; subsets: default, extended"):
        open_source("openr1_math", subset="geometry")


# ---- formats and CLI ----------------------------------------------------------------------------------


def test_json_array_is_read_incrementally(tmp_path, monkeypatch):
    monkeypatch.setattr(source_files, "JSON_BUFFER", 64)  # force many refills mid-object
    rows = [
        {"id": i, "instruction": f"question {i}? " * 5, "teacher_output": "x" * (50 + i), "teacher_name": "t"}
        for i in range(20)
    ]
    path = write_rows(rows, tmp_path / "t.json")
    read = list(source_files.iter_rows(path))
    assert [r for r, _ in read] == rows
    assert read[3][1] == {"file": "t.json", "row": 4}


def test_cli_lists_builders_with_layout():
    proc = subprocess.run([sys.executable, "-m", "scas_hub", "builders"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line.split()[1:3] for line in proc.stdout.splitlines() if not line.startswith(" ")}
    assert lines == {
        "am_distilled": ["joined", "math"],
        "demo": ["long", "math"],
        "openr1_math": ["wide", "flags"],
        "scas_pool": ["long", "trusted"],
        "ultrafeedback": ["wide", "trusted"],
    }
