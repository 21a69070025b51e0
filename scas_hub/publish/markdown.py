"""Names from the user's data (teachers, students, subsets, folders) shown safely in Markdown.

A name is shown as an inline code span: Markdown and HTML inside it are literal (`<script>` is
text, not a tag). Control characters are written as escapes (`\\n`), so a name cannot end a line,
a table row or a paragraph; a backtick in the name gets a longer fence; in a table cell a `|` is
escaped so it cannot open a new column.
"""

from __future__ import annotations

import re
import unicodedata

_LONGEST_TICKS = re.compile(r"`+")


def _visible(text: str) -> str:
    """Control characters and line or paragraph separators as escapes: `a\\nb`, `\\x1b`, `\\u2028`."""
    out = []
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            escaped = ch.encode("unicode_escape").decode("ascii")
            out.append(escaped if escaped != ch else f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def code(value: object) -> str:
    """`value` as an inline code span for prose (headings, paragraphs, list items)."""
    text = _visible(str(value))
    fence = "`" * (max((len(m) for m in _LONGEST_TICKS.findall(text)), default=0) + 1)
    if not text.strip(" "):  # only spaces are kept as they are (and nothing shows as one space)
        return f"{fence}{text or ' '}{fence}"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def cell(value: object) -> str:
    """`value` as an inline code span inside a table row (a `|` in it does not split the cell)."""
    return code(value).replace("|", "\\|")


def text(value: object) -> str:
    """`value` as plain text in a table cell: control characters escaped, `|` escaped, and `<`, `>`,
    `&` as HTML entities (so no tag is ever written)."""
    escaped = _visible(str(value)).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped.replace("|", "\\|")


_MARKDOWN_SIGNS = re.compile(r"[\\`*\[\]|~$]|(?<![^\W_])_|_(?![^\W_])")
"""What Markdown (GFM, with the Hub's `$` math) could read in plain text; an `_` inside a word cannot
open or close emphasis, so it stays as it is."""


def plain(value: object) -> str:
    """`value` as plain text in prose or a table cell, shown as it reads: a backslash before what Markdown
    would read (`*`, `[`, `]`, a backtick, `|`, `~`, `$`, `\\`, an `_` at a word's edge), `<`, `>`, `&` as
    HTML entities, control characters as escapes. Letters, digits, spaces and other punctuation stay as
    they are, so an ordinary name is written unchanged (`Qwen2.5-0.5B`, `teacher:gpt-4o`, `my_model`)."""
    escaped = _visible(str(value)).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_SIGNS.sub(lambda sign: "\\" + sign.group(), escaped)


def code_block(value: object, info: str = "") -> str:
    """`value` as a fenced code block (```` ```info ````): the fence is longer than any run of backticks
    in the text, so no line of it can end the block."""
    body = str(value)
    fence = "`" * max(3, max((len(m) for m in _LONGEST_TICKS.findall(body)), default=0) + 1)
    return f"{fence}{info}\n{body}\n{fence}"
