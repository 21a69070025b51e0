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
