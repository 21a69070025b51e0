"""Hostile input, replayed as a user would meet it (issue 20): run the command, then check the
exit code, the one-line message, the files, and (where a limit is involved) the memory of a child
process whose address space is capped."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scas_hub import CorpusFormatError
from scas_hub.cli import main
from scas_hub.source.files import MAX_NESTING, MAX_ROW_BYTES, iter_rows
from scas_hub.testing.corpus import write_rows

MEMORY_HEADROOM = 1 << 30
"""Address space a capped child may add to what its imports took: 1 GiB, far below what the
hostile files took before the limits (21 GB for a 400 KB file)."""

_CAPPED = """
import resource, sys
from scas_hub.cli import main
import scas_hub.pipeline, scas_hub.score.runner  # noqa: E401 (what curate loads, lazily: before the cap)
size = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (size + {headroom}, size + {headroom}))
sys.exit(main(sys.argv[1:]))
"""


def run_capped(*argv: str, cwd: Path, headroom: int = MEMORY_HEADROOM) -> subprocess.CompletedProcess:
    """`scas-hub argv` in a child that cannot map more than `headroom` bytes beyond its imports."""
    return subprocess.run(
        [sys.executable, "-c", _CAPPED.format(headroom=headroom), *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def one_line_error(stderr: str) -> str:
    """The command's error line; fails on a traceback or a multi-line message."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("scas-hub: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def pool_row(i, teacher="t", answer="\\boxed{42}"):
    return {
        "id": i,
        "source_dataset": "s",
        "teacher_name": teacher,
        "instruction": "What is 6*7?",
        "teacher_output": answer,
        "reference_answer": "42",
    }


def rows_of(path: Path) -> list[dict]:
    return [row for row, _ in iter_rows(path)]


# ---- finding 2: parsing is bounded ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name, text, where",
    [
        ("brackets.jsonl", "[" * 200_000 + "]" * 200_000, r"brackets\.jsonl: row 1"),  # the reported file
        ("nested.jsonl", '{"a": ' + "[" * 200_000 + "]" * 200_000 + "}\n", r"nested\.jsonl:1"),
        ("element.json", '[{"a": ' + "[" * 200_000 + "]" * 200_000 + "}]", r"element\.json: row 1"),
    ],
)
def test_deep_nesting_is_one_line_in_bounded_memory(tmp_path, name, text, where):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / name).write_text(text)
    proc = run_capped("curate", "--source", "corpus", "--out", "out", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 2
    assert re.search(where + rf": the row is nested deeper than {MAX_NESTING} levels", one_line_error(proc.stderr))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "name, text, where",
    [
        ("line.jsonl", json.dumps(pool_row(0)) + '\n{"a": "' + "x" * (MAX_ROW_BYTES + 1) + '"}\n', "line.jsonl:2"),
        ("noline.jsonl", '{"a": "' + "x" * (3 * MAX_ROW_BYTES), "noline.jsonl:1"),  # no newline at all
        ("element.json", '[{"a": 1}, {"a": "' + "x" * (3 * MAX_ROW_BYTES), "element.json: row 2"),
    ],
)
def test_huge_row_is_one_line_in_bounded_memory(tmp_path, name, text, where):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / name).write_text(text)
    # headroom: a row at the limit may be held (as bytes and as text), nothing like the whole file
    proc = run_capped(
        "curate",
        "--source",
        "corpus",
        "--out",
        "out",
        "--no-progress",
        cwd=tmp_path,
        headroom=MAX_ROW_BYTES * 2 + MEMORY_HEADROOM // 2,
    )
    assert proc.returncode == 2
    assert f"{where}: the row is larger than {MAX_ROW_BYTES >> 20} MiB" in one_line_error(proc.stderr)


def test_rows_within_the_limits_are_read(tmp_path):
    deep = {"a": json.loads("[" * (MAX_NESTING - 1) + "]" * (MAX_NESTING - 1))}  # exactly MAX_NESTING levels
    big = {"a": "x" * (MAX_ROW_BYTES - 100)}
    write_rows([deep, big, pool_row(1)], tmp_path / "ok.jsonl")
    write_rows([deep, big, pool_row(1)], tmp_path / "ok.json")
    for path in (tmp_path / "ok.jsonl", tmp_path / "ok.json"):
        assert rows_of(path) == [deep, big, pool_row(1)]
    too_deep = {"a": [deep]}
    for name in ("deep.jsonl", "deep.json"):
        write_rows([pool_row(0), too_deep], tmp_path / name)
        with pytest.raises(CorpusFormatError, match=r"(deep\.jsonl:2|deep\.json: row 2): the row is nested deeper"):
            rows_of(tmp_path / name)


def test_a_jsonl_file_holding_an_array_is_read_once(tmp_path):
    """An array in a `.jsonl` file is read whole, never once per part of a parallel read."""
    from scas_hub.source import files

    rows = [pool_row(i) for i in range(30)]
    (tmp_path / "t.jsonl").write_text("[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n")
    assert files.row_parts(tmp_path / "t.jsonl", 10) == [None]
    assert rows_of(tmp_path / "t.jsonl") == rows


# ---- finding 8: corpus bytes that are not what they claim --------------------------------------------


def curate_error(capsys, *argv: str) -> str:
    """Run `scas-hub curate` in-process; it must exit 2 with one line on stderr, which is returned."""
    assert main(["curate", "--no-progress", *argv]) == 2
    return one_line_error(capsys.readouterr().err)


def test_invalid_utf8_names_file_and_line(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    good = json.dumps(pool_row(0)).encode()
    (corpus / "t.jsonl").write_bytes(good + b"\n" + good.replace(b"What", b"Wh\xffat") + b"\n")
    line = curate_error(capsys, "--source", str(corpus), "--out", str(tmp_path / "out"))
    assert "t.jsonl:2: not valid UTF-8 (byte 0xff at byte" in line and "save the file as UTF-8" in line
    assert not (tmp_path / "out").exists()
    (tmp_path / "a.json").write_bytes(b'[{"id": 0}, {"id": "\xff"}]')
    with pytest.raises(CorpusFormatError, match=r"a\.json: row 2: not valid UTF-8 .*save the file as UTF-8"):
        rows_of(tmp_path / "a.json")


def test_byte_order_mark_is_read(tmp_path):
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + json.dumps(pool_row(0)).encode() + b"\n")
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps([pool_row(1)]).encode())
    assert rows_of(tmp_path / "bom.jsonl") == [pool_row(0)] and rows_of(tmp_path / "bom.json") == [pool_row(1)]


def test_truncated_gzip_is_one_line(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    whole = gzip.compress(b"".join(json.dumps(pool_row(i)).encode() + b"\n" for i in range(200)))
    (corpus / "t.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    line = curate_error(capsys, "--source", str(corpus), "--out", str(tmp_path / "out"))
    assert "t.jsonl.gz: the gzip stream is cut short or damaged" in line and "again" in line


# ---- finding 5: layouts are explicit -----------------------------------------------------------------


def _candidates(source, subset):
    from scas_hub import PipelineStats, load_questions

    _, questions = load_questions(str(source), subset, None, PipelineStats())
    return [c for q in questions for c in q.candidates]


def teachers_read(source, subset=None) -> set[str]:
    return {c.teacher for c in _candidates(source, subset)}


@pytest.mark.parametrize("sub", ["backup", "data/backup"])
def test_top_level_teachers_beside_a_subfolder_are_refused_with_the_choices(tmp_path, capsys, sub):
    corpus = tmp_path / "corpus"
    for teacher in ("alpha", "beta"):
        write_rows([pool_row(0, teacher), pool_row(1, teacher)], corpus / f"{teacher}.jsonl")
    write_rows([pool_row(0, "old")], corpus / sub / "alpha.jsonl")
    line = curate_error(capsys, "--source", str(corpus), "--out", str(tmp_path / "out"))
    assert "holds data files both at its top (alpha.jsonl, beta.jsonl) and in subfolders (backup)" in line
    assert "--subset backup" in line and "--subset . for the files at its top" in line
    assert not (tmp_path / "out").exists()
    assert teachers_read(corpus, ".") == {"alpha", "beta"}
    assert teachers_read(corpus, "backup") == {"old"}
    assert {c.provenance["file"] for c in _candidates(corpus, "backup")} == {"alpha.jsonl"}
    assert len(_candidates(corpus, ".")) == 4 and len(_candidates(corpus, ".,backup")) == 5


def test_top_level_subset_of_a_folder_without_top_files_says_so(tmp_path, capsys):
    write_rows([pool_row(0)], tmp_path / "corpus" / "main" / "t.jsonl")
    line = curate_error(capsys, "--source", str(tmp_path / "corpus"), "--out", str(tmp_path / "out"), "--subset", ".")
    assert "--subset . asks for the data files at the top of" in line and "subsets: main" in line


# ---- finding 8: a damaged selection_stats.json -------------------------------------------------------


@pytest.fixture(scope="module")
def curated(tmp_path_factory, tiny_qwen_dir):
    """One small scored output folder, copied by each test."""
    from scas_hub import curate
    from scas_hub.testing.corpus import synthetic_pool, write_pool

    root = tmp_path_factory.mktemp("hostile")
    write_pool(synthetic_pool(4, teachers=3, max_words=20, seed=2), root / "corpus")
    curate(str(tiny_qwen_dir), str(root / "corpus"), root / "out", scoring=None)
    return root / "out"


DAMAGED_STATS = {
    "not JSON": ('{"selection": {"strategy": "scas"', "is not valid JSON"),
    "a list": ("[1, 2, 3]", "holds a JSON list, not the object of a selection_stats.json"),
}


@pytest.mark.parametrize("damage", DAMAGED_STATS)
@pytest.mark.parametrize("command", ["select", "train", "push"])
def test_damaged_selection_stats_is_one_line(curated, tmp_path, capsys, fake_hub, tiny_qwen_dir, command, damage):
    folder = shutil.copytree(curated, tmp_path / "out")
    text, expected = DAMAGED_STATS[damage]
    (folder / "selection_stats.json").write_text(text)
    argv = {
        "select": ["select", "--candidates", str(folder), "--out", str(tmp_path / "again"), "--no-progress"],
        "train": [
            "train",
            "--dataset",
            str(folder),
            "--student",
            str(tiny_qwen_dir),
            "--out",
            str(tmp_path / "ckpt"),
            "--no-progress",
        ],
        "push": ["push", str(folder), "org/damaged"],
    }[command]
    assert main(argv) == 2
    line = one_line_error(capsys.readouterr().err)
    assert f"{folder / 'selection_stats.json'} {expected}" in line and "scas-hub curate" in line
    assert (folder / "selection_stats.json").read_text() == text  # left as it was
    assert not (tmp_path / "again").exists() and not (tmp_path / "ckpt").exists()
    assert ("dataset", "org/damaged") not in fake_hub.repos


def test_damaged_selection_stats_on_the_hub_is_one_line(curated, capsys, fake_hub, tiny_qwen_dir, tmp_path):
    from scas_hub.publish.hub import push_folder

    push_folder(shutil.copytree(curated, tmp_path / "pushed"), "org/pushed")  # push writes the release in
    fake_hub.commit_files("org/pushed", {"selection_stats.json": "[]"})
    assert main(["select", "--candidates", "org/pushed", "--out", str(tmp_path / "again"), "--no-progress"]) == 2
    assert "selection_stats.json of org/pushed@" in one_line_error(capsys.readouterr().err)
    assert (
        main(
            [
                "train",
                "--dataset",
                "org/pushed",
                "--student",
                str(tiny_qwen_dir),
                "--out",
                str(tmp_path / "ckpt"),
                "--no-progress",
            ]
        )
        == 2
    )
    assert "holds a JSON list" in one_line_error(capsys.readouterr().err)


def test_stats_without_the_fields_a_push_reads_is_one_line(curated, tmp_path, capsys, fake_hub):
    folder = shutil.copytree(curated, tmp_path / "out")
    record = json.loads((folder / "selection_stats.json").read_text())
    del record["student"]
    record["selection"] = "scas"
    (folder / "selection_stats.json").write_text(json.dumps(record))
    assert main(["push", str(folder), "org/damaged"]) == 2
    assert "lacks student, selection (or holds another type)" in one_line_error(capsys.readouterr().err)


# ---- finding 8: a full disk, a read-only cache -------------------------------------------------------


def _full_disk(*args, **kwargs):
    import errno
    import os

    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def small_corpus(tmp_path):
    from scas_hub.testing.corpus import synthetic_pool, write_pool

    write_pool(synthetic_pool(3, teachers=2, max_words=15, seed=3), tmp_path / "corpus")
    return tmp_path / "corpus"


def test_disk_full_while_saving_a_figure(small_corpus, tmp_path, capsys, monkeypatch, tiny_qwen_dir):
    from matplotlib.figure import Figure

    def savefig(self, path, **kwargs):
        Path(path).write_bytes(b"\x89PNG half")  # part of the figure made it to disk
        _full_disk()

    monkeypatch.setattr(Figure, "savefig", savefig)
    out = tmp_path / "out"
    line = curate_error(capsys, "--student", str(tiny_qwen_dir), "--source", str(small_corpus), "--out", str(out))
    assert f"cannot write the card's figures in {tmp_path} (No space left on device); free space" in line
    assert "run the same command again" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]  # no output, no staging folder left


def test_disk_full_while_writing_the_table_cache(small_corpus, tmp_path, capsys, monkeypatch, tiny_qwen_dir):
    import pyarrow as pa

    tables = tmp_path / "tables"
    monkeypatch.setenv("SCAS_HUB_TABLE_CACHE", str(tables))
    monkeypatch.setenv("SCAS_HUB_NUM_PROC", "1")
    monkeypatch.setattr(pa, "OSFile", _full_disk)
    line = curate_error(
        capsys, "--student", str(tiny_qwen_dir), "--source", str(small_corpus), "--out", str(tmp_path / "out")
    )
    assert f"cannot write the candidate table cache in {tables} (No space left on device)" in line
    assert "SCAS_HUB_TABLE_CACHE" in line
    assert list(tables.iterdir()) == [] and not (tmp_path / "out").exists()


def test_disk_full_while_writing_the_score_cache(small_corpus, tmp_path, capsys, monkeypatch, tiny_qwen_dir):
    import os
    import types

    from scas_hub.score import cache as cache_module

    monkeypatch.setattr(
        cache_module, "os", types.SimpleNamespace(fdopen=os.fdopen, replace=os.replace, fsync=_full_disk)
    )
    scores = tmp_path / "scores"
    line = curate_error(
        capsys,
        "--student",
        str(tiny_qwen_dir),
        "--source",
        str(small_corpus),
        "--out",
        str(tmp_path / "out"),
        "--score-cache",
        str(scores),
    )
    assert f"cannot write the score cache in {scores}/" in line and "(No space left on device)" in line
    assert "--no-score-cache" in line
    assert not [p for p in scores.rglob("*") if p.is_file()]  # no half shard, no temp file


def test_read_only_score_cache_fails_before_scoring(small_corpus, tmp_path, capsys, monkeypatch, tiny_qwen_dir):
    import errno
    import os
    import tempfile
    import types

    from scas_hub.score import cache as cache_module
    from scas_hub.score import runner

    scores = tmp_path / "scores"
    scores.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: the file system's refusal is simulated

        def read_only(*args, **kwargs):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))

        monkeypatch.setattr(
            cache_module, "tempfile", types.SimpleNamespace(NamedTemporaryFile=read_only, mkstemp=tempfile.mkstemp)
        )
    else:
        scores.chmod(0o555)
    monkeypatch.setattr(runner, "load_student", lambda *a, **k: pytest.fail("the student was loaded"))
    line = curate_error(
        capsys,
        "--student",
        str(tiny_qwen_dir),
        "--source",
        str(small_corpus),
        "--out",
        str(tmp_path / "out"),
        "--score-cache",
        str(scores),
    )
    assert f"cannot write the score cache in {scores}" in line and "make that folder writable" in line
    assert "pass another --score-cache DIR, or --no-score-cache" in line
    assert not (tmp_path / "out").exists()


# ---- finding 8: a chat template that is broken or hostile --------------------------------------------

BROKEN_TEMPLATES = {
    "syntax": ("{% for m in messages %}{{ m.content }\n{% endfor %}", "is not valid Jinja (line 1: unexpected '}')"),
    "sandbox": (
        "{{ ''.__class__.__mro__[1].__subclasses__() }}{% for m in messages %}{{ m.content }}{% endfor %}",
        "tries to leave Jinja's sandbox (access to attribute '__class__' of 'str' object is unsafe)",
    ),
    "raises": (
        "{% if messages[0].role == 'system' %}{{ raise_exception('no system turn') }}{% endif %}",
        "fails on a system/user/assistant conversation (TemplateError: no system turn)",
    ),
}


@pytest.mark.parametrize("kind", BROKEN_TEMPLATES)
@pytest.mark.parametrize("whose", ["override", "student"])
def test_broken_chat_template_is_one_line_before_any_work(
    small_corpus, tmp_path, capsys, monkeypatch, tiny_qwen_dir, kind, whose
):
    from scas_hub.score import runner

    text, expected = BROKEN_TEMPLATES[kind]
    student = tiny_qwen_dir
    extra = []
    if whose == "override":
        (tmp_path / "template.jinja").write_text(text)
        extra = ["--chat-template", str(tmp_path / "template.jinja")]
    else:
        student = shutil.copytree(tiny_qwen_dir, tmp_path / "student")
        (student / "chat_template.jinja").write_text(text)
    monkeypatch.setattr(runner, "load_student", lambda *a, **k: pytest.fail("the student was loaded"))
    line = curate_error(
        capsys, "--student", str(student), "--source", str(small_corpus), "--out", str(tmp_path / "out"), *extra
    )
    whose_text = (
        "the chat template given with --chat-template" if whose == "override" else "the student's own chat template"
    )
    assert f"{whose_text} {expected}" in line
    assert ("fix that file" if whose == "override" else "pass a working one with --chat-template FILE") in line
    assert not (tmp_path / "out").exists()


# ---- finding 8: a Hub dataset with a stray script ----------------------------------------------------


def test_hub_dataset_with_a_stray_script_is_read_without_running_it(curated, tmp_path, capsys, fake_hub):
    import pyarrow.parquet as pq

    from scas_hub.publish.hub import push_folder
    from scas_hub.train.data import open_training_data

    push_folder(shutil.copytree(curated, tmp_path / "pushed"), "org/scripted")  # push writes the release in
    ran = tmp_path / "the script ran"
    fake_hub.commit_files("org/scripted", {"scripted.py": f"open({str(ran)!r}, 'w').write('x')\n"})
    assert (
        main(
            [
                "select",
                "--candidates",
                "org/scripted",
                "--strategy",
                "argmin",
                "--out",
                str(tmp_path / "again"),
                "--no-progress",
            ]
        )
        == 0
    ), capsys.readouterr().err
    selected = pq.read_table(tmp_path / "again" / "data").to_pylist()
    assert len(selected) == json.loads((curated / "selection_stats.json").read_text())["questions_selected"]
    data = open_training_data("org/scripted")
    assert len(data.rows) == len(pq.read_table(curated / "data"))
    assert not ran.exists()


# ---- finding 8: a 200 answer to the commit that names no commit ---------------------------------------


def test_commit_answer_without_commit_url_is_found_and_tagged(curated, tmp_path, capsys, fake_hub):
    folder = shutil.copytree(curated, tmp_path / "out")
    fake_hub.fail(r"/commit/main$", 200, method="POST", after=True, body={"success": True})
    assert main(["push", str(folder), "org/answer"]) == 0, capsys.readouterr().err
    repo = fake_hub.repo("org/answer")
    assert repo.tags == {"v1": repo.branches["main"]}
    assert (
        json.loads(repo.commits[repo.branches["main"]].files["selection_stats.json"].content)["release"]["version"]
        == "v1"
    )


def test_commit_answer_without_commit_url_that_did_not_land_says_run_again(curated, tmp_path, capsys, fake_hub):
    folder = shutil.copytree(curated, tmp_path / "out")
    fake_hub.create_repo("org/answer", {"NOTES.md": "the owner's file"})
    head = fake_hub.repo("org/answer").branches["main"]
    fake_hub.fail(r"/commit/main$", 200, method="POST", body={"success": True})  # answered, never committed
    assert main(["push", str(folder), "org/answer"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "without naming a commit, and main does not hold this push; nothing was tagged" in line
    assert "run the same command again" in line
    repo = fake_hub.repo("org/answer")
    assert repo.tags == {} and repo.branches["main"] == head
    assert main(["push", str(folder), "org/answer"]) == 0
    assert list(fake_hub.repo("org/answer").tags) == ["v1"]


# ---- finding 8: integer options are bounded -----------------------------------------------------------

HUGE = "99999999999999999999999"


@pytest.mark.parametrize(
    "argv, option, bound",
    [
        (["curate", "--source", "corpus", "--groups", HUGE], "--groups", "[1, 10000]"),
        (["select", "--candidates", "out", "--out", "again", "--group", HUGE], "--group", "[1, 10000]"),
        (["curate", "--source", "corpus", "--num-processes", HUGE], "--num-processes", "[1, 1024]"),
        (["rounds", "--num-processes", "0"], "--num-processes", "[1, 1024]"),
    ],
)
def test_huge_integer_options_are_refused_before_any_work(tmp_path, capsys, monkeypatch, argv, option, bound):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.splitlines()[-1].endswith(
        f"error: argument {option}: {argv[argv.index(option) + 1]} is not in {bound}"
    )
    assert list(tmp_path.iterdir()) == []


def test_huge_groups_in_python_is_a_selection_error():
    from scas_hub import SelectionConfig, SelectionError

    with pytest.raises(SelectionError, match=r"--groups must be in \[1, 10000\], got 99999999999999999999999"):
        SelectionConfig(groups=int(HUGE)).validate()


# ---- finding 14: cards escape what they show ---------------------------------------------------------

HOSTILE_NAMES = ["a|b", "x\ny", "<script>alert(1)</script>", "t`ick", "plain"]


def rendered_tables(markdown: str) -> list[list[list[str]]]:
    """Every table of a Markdown text as rendered (GFM tables, HTML allowed as on the Hub): rows of cell texts."""
    markdown_it = pytest.importorskip("markdown_it")
    tokens = markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table").parse(markdown)
    tables, row, cell = [], None, None
    for tok in tokens:
        if tok.type == "table_open":
            tables.append([])
        elif tok.type == "tr_open":
            row = []
        elif tok.type == "tr_close":
            tables[-1].append(row)
        elif tok.type in ("td_open", "th_open"):
            cell = ""
        elif tok.type in ("td_close", "th_close"):
            row.append(cell)
        elif tok.type == "inline" and cell is not None:
            cell += "".join(c.content for c in tok.children)
    return tables


def assert_no_raw_html(markdown: str) -> None:
    markdown_it = pytest.importorskip("markdown_it")
    html = markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_card_escapes_teacher_names(tmp_path, tiny_qwen_dir):
    from scas_hub import curate

    rows = [
        pool_row(q, teacher, f"The answer is \\boxed{{42}} ({teacher.encode().hex()})")
        for q in range(3)
        for teacher in HOSTILE_NAMES
    ]
    write_rows(rows, tmp_path / "corpus" / "pool.jsonl")
    curate(str(tiny_qwen_dir), str(tmp_path / "corpus"), tmp_path / "out", scoring=None)
    card = (tmp_path / "out" / "README.md").read_text()
    assert "<script>alert(1)</script>`" in card  # only ever inside a code span
    assert_no_raw_html(card)
    per_teacher = next(t for t in rendered_tables(card) if t[0][0] == "teacher")
    assert all(len(row) == 7 for row in per_teacher)  # no name split a row or added a column
    assert sorted(row[0] for row in per_teacher[1:]) == sorted(
        ["a|b", "x\\ny", "<script>alert(1)</script>", "t`ick", "plain"]
    )
    stats = json.loads((tmp_path / "out" / "selection_stats.json").read_text())
    assert sorted(t["teacher"] for t in stats["teachers"]) == sorted(HOSTILE_NAMES)  # the data keeps the names


def test_card_load_lines_stay_python_whatever_the_folder_name(curated, tmp_path):
    import ast

    from scas_hub.publish.card import write_card

    folder = shutil.copytree(curated, tmp_path / 'we"ird ```name')
    card = write_card(folder).read_text()
    blocks = re.findall(r"```python\n(.*?)```\n", card, flags=re.S)
    assert blocks and all(ast.parse(block) for block in blocks)
    assert 'load_dataset("path/to/we\\"ird ```name", split="train")' in card


def test_card_escapes_the_student_weights_and_run_facts(curated, tmp_path):
    """`weights` comes from the user's model; hardware and versions are shown as plain text too."""
    from scas_hub.publish.card import write_card

    folder = shutil.copytree(curated, tmp_path / "copy")
    record = json.loads((folder / "selection_stats.json").read_text())
    record["student"]["weights"] = "w|x <script>alert(1)</script>"
    record["run"]["hardware"] = "gpu|1 *bold*"
    (folder / "selection_stats.json").write_text(json.dumps(record))
    card = write_card(folder).read_text()
    assert_no_raw_html(card)
    tables = rendered_tables(card)
    student = next(t for t in tables if t[0][0] == "" and len(t) > 1 and t[1][0] == "student")
    assert all(len(row) == 4 for row in student) and "weights: w|x <script>alert(1)</script>; " in student[1][3]
    run = next(t for t in tables if any(row[0] == "hardware" for row in t))
    assert all(len(row) == 2 for row in run) and ["hardware", "gpu|1 *bold*"] in run


def test_single_teacher_strategy_card_escapes_the_name():
    from scas_hub.publish.card import describe_strategy

    method = describe_strategy({"strategy": "teacher:<b>x|y\n", "groups": 5, "group": 1, "seed": 1})
    assert method["title"] == "Single-teacher selection (`<b>x|y\\n`)"


def test_several_students_summary_escapes_names():
    from scas_hub.compare import Pick
    from scas_hub.publish.summary import students_summary, summary_markdown

    picks = {name: {"q1": Pick(teacher=name, answer="42")} for name in ("s|1", "<i>s2</i>")}
    summary = students_summary(picks, {name: {"questions_selected": 1} for name in picks})
    markdown = summary_markdown(summary)
    shares, agreement = rendered_tables(markdown)
    assert shares[0] == ["teacher", "s|1", "<i>s2</i>"] and all(len(row) == 3 for row in shares)
    assert agreement[1][0] == "s|1 vs <i>s2</i>" and len(agreement[1]) == 4
    assert "<i>" not in markdown.replace("`<i>s2</i>`", "")


# ---- finding 14: an empty --source -------------------------------------------------------------------


@pytest.mark.parametrize("command", [["curate"], ["rounds", "--rounds", "1"], ["ablate", "--eval", "demo"]])
def test_empty_source_is_refused_not_the_demo(tmp_path, capsys, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    write_rows([pool_row(0)], tmp_path / "t.jsonl")  # the current folder must not be read either
    assert main([*command, "--source", " ", "--out", str(tmp_path / "out")]) == 2
    assert one_line_error(capsys.readouterr().err).startswith("scas-hub: error: --source is empty:")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]


def test_empty_source_in_python_is_a_source_error(tmp_path):
    """In the library too, not only at the CLI: `rounds` and `ablate` took a blank for the default corpus."""
    from scas_hub import SourceError, curate
    from scas_hub.ablate import ablate
    from scas_hub.rounds.loop import run_rounds

    with pytest.raises(SourceError, match="--source is empty"):
        curate("smollm2-135m", "", tmp_path / "out")
    with pytest.raises(SourceError, match="--source is empty"):
        run_rounds("smollm2-135m", 1, tmp_path / "rounds", source=" ")
    with pytest.raises(SourceError, match="--source is empty"):
        ablate("smollm2-135m", "demo", tmp_path / "ablation", source="")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
