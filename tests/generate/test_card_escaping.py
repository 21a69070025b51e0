"""The generated corpus's README shows teacher names, models, endpoints, sources and the command as text:
hostile values cannot add table columns, HTML, links or end the command's code block."""

from __future__ import annotations

import pytest

from scas_hub.generate.card import render_card

markdown_it = pytest.importorskip("markdown_it")

HOSTILE = "evil | col\n<script>x</script> [a](javascript:alert(1)) `tick` *b*"


def record(teacher: str, source: str, command: str) -> dict:
    return {
        "source": source,
        "subset": teacher,
        "teachers": {
            teacher: {
                "model": teacher,
                "endpoint": f"http://127.0.0.1:1/v1 {teacher}",
                "sampling": {"temperature": 0.5},
                "system": teacher,
            }
        },
        "runs": [
            {
                "date": "2026-12-06",
                "questions": 2,
                "samples": 1,
                "seconds": 1.0,
                "teachers": {teacher: {"requests": 2, "written": 1, "failed": {teacher: 1}}},
                "command": command,
            }
        ],
    }


def tokens_of(card: str) -> list:
    body = card.split("---\n", 2)[2]
    return markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table").parse(body)


def rows_of(tokens: list) -> list[list[str]]:
    rows: list[list[str]] = []
    cell = None
    for tok in tokens:
        if tok.type == "tr_open":
            rows.append([])
        elif tok.type in ("td_open", "th_open"):
            cell = ""
        elif tok.type in ("td_close", "th_close"):
            rows[-1].append(cell)
            cell = None
        elif tok.type == "inline" and cell is not None:
            cell += "".join(child.content for child in tok.children)
    return rows


def test_hostile_names_stay_in_their_cells_and_make_no_html_or_links():
    command = "scas-hub generate --teachers 'x\n```\n<img src=x onerror=alert(1)>'"
    card = render_card(record(HOSTILE, HOSTILE, command), {HOSTILE: {"rows": 1, "questions": 1}})
    tokens = tokens_of(card)
    kinds = {t.type for t in tokens} | {c.type for t in tokens if t.type == "inline" for c in t.children}
    assert not kinds & {"html_block", "html_inline", "link_open", "image"}
    rows = rows_of(tokens)
    teachers, runs = rows[:2], rows[2:]
    assert [len(r) for r in teachers] == [8, 8] and [len(r) for r in runs] == [7, 7]
    shown = HOSTILE.replace("\n", "\\n")
    assert teachers[1][0] == shown and teachers[1][1] == shown  # name as text, model as a code span
    fences = [t for t in tokens if t.type == "fence"]
    assert len(fences) == 1 and fences[0].content == command + "\n" and fences[0].info == "bash"


def test_ordinary_names_read_as_before():
    card = render_card(record("right", "demo", "scas-hub generate --source demo"), {"right": {"rows": 8}})
    assert '| right | `right` | http://127.0.0.1:1/v1 right | temperature=0.5, system="right" | 8 |' in card
    assert "Questions and reference answers from `demo` (subset `right`)." in card
    assert "```bash\nscas-hub generate --source demo\n```" in card
