"""What a run tells the terminal: rows and questions set aside, by reason, and a warning when many were.

Both read a run's record (`CurateResult.stats`, i.e. `selection_stats.json`), so the terminal
says what the card and the statistics file say.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .constants import STATS_FILENAME
from .run_record import RunRecord

DROP_WARNING_SHARE = 0.1
"""Warn when more than this share of the rows, or of the questions, was set aside."""


def _typed(record: RunRecord | Mapping[str, Any]) -> RunRecord:
    return record if isinstance(record, RunRecord) else RunRecord.from_dict(record)


def set_aside_table(record: RunRecord | Mapping[str, Any]) -> str:
    """Rows and questions set aside, one line per reason, with totals; and the questions the
    small-question policy kept.

    Args:
        record: a run's record, or its statistics as written (`rows_in`, `skipped`, `questions_in`,
            `questions_dropped`, `policy_applied`).
    """
    record = _typed(record)
    rows_dropped, questions_dropped = record.rows_set_aside(), record.questions_set_aside()
    lines = []
    if rows_dropped or questions_dropped:
        reasons = [(reason, str(n), "") for reason, n in sorted(record.skipped.items(), key=lambda kv: (-kv[1], kv[0]))]
        reasons += [
            (reason, "", str(n))
            for reason, n in sorted(record.questions_dropped.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        total = ("total", f"{rows_dropped} of {record.rows_in}", f"{questions_dropped} of {record.questions_in}")
        rows = [("set aside", "rows", "questions"), *reasons, total]
        width = [max(len(r[i]) for r in rows) for i in range(3)]
        lines += [f"  {a:<{width[0]}}  {b:>{width[1]}}  {c:>{width[2]}}".rstrip() for a, b, c in rows]
    else:
        lines.append(
            f"  nothing set aside: all {record.rows_in} rows scored, all {record.questions_in} questions selected"
        )
    for policy, n in sorted(record.policy_applied.items()):
        lines.append(f"  small-question policy applied ({policy}): {n} question{'s' if n != 1 else ''}, still selected")
    return "\n".join(lines)


def drop_warning(record: RunRecord | Mapping[str, Any], out: str | Path) -> str | None:
    """A warning when more than a tenth of the rows or of the questions was set aside, else None."""
    record = _typed(record)
    rows_dropped, questions_dropped = record.rows_set_aside(), record.questions_set_aside()
    rows_in, questions_in = record.rows_in or 0, record.questions_in or 0
    parts = [
        f"{n} of {total} {what} ({n / total:.0%})"
        for n, total, what in ((rows_dropped, rows_in, "rows"), (questions_dropped, questions_in, "questions"))
        if total and n / total > DROP_WARNING_SHARE
    ]
    if not parts:
        return None
    out = Path(out)
    return (
        f"{' and '.join(parts)} were set aside; the reasons per teacher are in "
        f"{out / STATS_FILENAME} and the card {out / 'README.md'}"
    )
