"""Synthetic multi-teacher corpora in the published pool's schema.

`demo_rows()` is the bundled demo corpus (scas_hub/data/demo, regenerate with
`python -m scas_hub.testing.corpus scas_hub/data/demo`); `synthetic_pool()` makes corpora of any
size and answer length for tests and benchmarks.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import jsonlines

POOL_FIELDS = (
    "id",
    "source_dataset",
    "teacher_name",
    "system",
    "instruction",
    "teacher_output",
    "reference_answer",
    "reference_solution",
    "is_common_correct",
)

_NAMES = ["Ada", "Bilal", "Chen", "Dara", "Elif", "Femi", "Goran", "Hana", "Ines", "Jonas", "Kiri", "Lena"]
_ITEMS = ["apples", "pencils", "stamps", "marbles", "books", "tickets"]


def _problem(i: int, rng: random.Random) -> tuple[str, int, list[str]]:
    """A word problem, its integer answer, and the reasoning steps."""
    name, item = _NAMES[i % len(_NAMES)], _ITEMS[i % len(_ITEMS)]
    kind = i % 4
    if kind == 0:
        a, b, c = rng.randint(12, 90), rng.randint(3, 9), rng.randint(2, 30)
        ans = a * b - c
        q = f"{name} buys {b} boxes of {item} with {a} in each box and gives away {c}. How many {item} are left?"
        steps = [f"{b} boxes of {a} make {b} * {a} = {a * b} {item}.", f"Giving away {c} leaves {a * b} - {c} = {ans}."]
    elif kind == 1:
        v, t = rng.randint(30, 90), rng.randint(2, 7)
        ans = v * t
        q = f"A train travels at {v} km/h for {t} hours. How many kilometres does it cover?"
        steps = [f"Distance is speed times time: {v} * {t}.", f"{v} * {t} = {ans} km."]
    elif kind == 2:
        w, h = rng.randint(4, 25), rng.randint(4, 25)
        ans = 2 * (w + h)
        q = f"{name}'s garden is a rectangle {w} m wide and {h} m long. How many metres of fence go around it?"
        steps = ["The perimeter of a rectangle is 2 * (width + length).", f"2 * ({w} + {h}) = 2 * {w + h} = {ans}."]
    else:
        p, n = rng.choice([10, 20, 25, 40, 50]), rng.choice([80, 120, 200, 240, 360])
        ans = p * n // 100
        q = f"{name} has {n} {item} and sells {p}% of them. How many {item} does {name} sell?"
        steps = [f"{p}% of {n} is {p}/100 * {n}.", f"{n} / 100 = {n / 100:g}, times {p} is {ans}."]
    return q, ans, steps


_STYLES = {
    "terse": lambda q, a, s: f"\\boxed{{{a}}}",
    "stepwise": lambda q, a, s: "\n".join(f"Step {k}: {x}" for k, x in enumerate(s, 1)) + f"\nAnswer: \\boxed{{{a}}}",
    "verbose": lambda q, a, s: (
        "Let's read the problem carefully and work through it one piece at a time, making sure we "
        "understand every quantity before computing anything. "
        + " ".join(s)
        + f" Putting it all together, and double-checking the arithmetic once more, the final answer is \\boxed{{{a}}}."
    ),
    "latex": lambda q, a, s: (
        "\\begin{align*}\n"
        + " \\\\\n".join(x.replace("*", "\\times").rstrip(".") for x in s)
        + "\n\\end{align*}\n"
        + f"$\\boxed{{{a}}}$"
    ),
    "program": lambda q, a, s: (
        "We can compute this directly.\n```python\n"
        + "\n".join(f"# {x}" for x in s)
        + f"\nresult = {a}\nprint(result)\n```\nThe program prints {a}, so the answer is \\boxed{{{a}}}."
    ),
    "self-check": lambda q, a, s: (
        "First attempt: " + s[0] + " Then: " + s[-1] + f" Check: substituting back, {a} is consistent with "
        f"every condition in the question. Final answer: \\boxed{{{a}}}"
    ),
}


def demo_rows(n_questions: int = 24, seed: int = 7) -> dict[str, list[dict]]:
    """The demo corpus, by teacher: most questions have 5-6 answers, a few have fewer (M < G),
    one has a single answer, and one answer is empty (counted and skipped)."""
    rng = random.Random(seed)
    teachers = list(_STYLES)
    out: dict[str, list[dict]] = {t: [] for t in teachers}
    for i in range(n_questions):
        q, ans, steps = _problem(i, rng)
        present = teachers if i % 5 else teachers[: 1 + i % 4]
        if i == 3:
            present = ["stepwise"]
        for t in present:
            answer = "" if (i == 7 and t == "verbose") else _STYLES[t](q, ans, steps)
            out[t].append(
                {
                    "id": i,
                    "source_dataset": "demo",
                    "teacher_name": t,
                    "system": "Please reason step by step, and put your final answer within \\boxed{}.",
                    "instruction": q,
                    "teacher_output": answer,
                    "reference_answer": str(ans),
                    "reference_solution": " ".join(steps),
                    "is_common_correct": len(present) == len(teachers),
                }
            )
    return out


POOL_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
"""A typical system prompt of math answer pools (the published pool carries one per row)."""


def synthetic_pool(
    n_questions: int,
    teachers: int = 6,
    min_words: int = 2,
    max_words: int = 1500,
    seed: int = 0,
    subset: str = "synthetic",
    system: str | None = None,
    problem_words: tuple[int, int] | None = None,
) -> dict[str, list[dict]]:
    """A pool-shaped corpus with answers from a few words to `max_words` words (log-uniform).

    `system` fills every row's system prompt; `problem_words=(lo, hi)` pads each word problem with
    a log-uniform number of words of context, for prompts as long as competition-math problems.
    """
    rng = random.Random(seed)
    vocab = str.split(
        "the of and to in is that for it as was with be by on not he this are or his from at which "
        "but have an they you were her she there been one all we their has would when if so no will "
        "more can said who out about up into them then some could time two may first like these"
    )
    out: dict[str, list[dict]] = {f"teacher-{k}": [] for k in range(teachers)}
    for i in range(n_questions):
        q, ans, _ = _problem(i, rng)
        if problem_words:
            lo, hi = problem_words
            n = int(round(lo * (hi / lo) ** rng.random()))
            q = " ".join(rng.choice(vocab) for _ in range(n)) + ". " + q
        for t in out:
            n = int(round(min_words * (max_words / min_words) ** rng.random()))
            body = " ".join(rng.choice(vocab) for _ in range(n))
            out[t].append(
                {
                    "id": i,
                    "source_dataset": subset,
                    "teacher_name": t,
                    "system": system,
                    "instruction": q,
                    "teacher_output": f"{body} \\boxed{{{ans}}}",
                    "reference_answer": str(ans),
                    "reference_solution": "",
                    "is_common_correct": True,
                }
            )
    return out


def write_pool(rows: dict[str, list[dict]], folder: str | Path) -> Path:
    """Write `{teacher: rows}` as `<folder>/<teacher>.jsonl`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for teacher, teacher_rows in rows.items():
        write_rows(teacher_rows, folder / f"{teacher}.jsonl")
    return folder


def write_rows(rows: list[dict], path: str | Path) -> Path:
    """Write rows as one data file; the format follows the suffix (`.jsonl`, `.json` array, `.parquet`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    else:
        with jsonlines.open(path, "w", dumps=_dumps) as writer:
            writer.write_all(rows)
    return path


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


if __name__ == "__main__":
    write_pool(demo_rows(), sys.argv[1] if len(sys.argv) > 1 else "scas_hub/data/demo")
