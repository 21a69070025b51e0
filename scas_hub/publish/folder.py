"""The output folder is a Hub dataset repo: parquet per config, the card, selection stats.

    README.md                                 card with YAML `configs`
    data/train-00000-of-00001.parquet         config `default`: the selection
    candidates/train-00000-of-00001.parquet   config `candidates`: every scored candidate
    selection_stats.json
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from ..constants import CANDIDATES_CONFIG, DEFAULT_CONFIG, STATS_FILENAME
from ..errors import PublishError
from ..records import Candidate

CONFIG_DIRS = {DEFAULT_CONFIG: "data", CANDIDATES_CONFIG: "candidates"}
ROWS_PER_SHARD = 100_000


def selected_row(c: Candidate, lam: float) -> dict[str, Any]:
    s = c.score
    return {
        "question_id": c.question_id,
        "source_dataset": c.source_dataset,
        "messages": c.messages(),
        "teacher": c.teacher,
        "sample": c.sample,
        "scas_score": s.scas_score(lam),
        "answer_mean_nll": s.answer_mean_nll,
        "n_answer_tokens": s.n_answer_tokens,
        "reference_answer": c.reference_answer,
    }


def candidate_row(c: Candidate, lam: float) -> dict[str, Any]:
    s = c.score
    return {
        "question_id": c.question_id,
        "source_dataset": c.source_dataset,
        "teacher": c.teacher,
        "sample": c.sample,
        "scas_score": s.scas_score(lam),
        "answer_mean_nll": s.answer_mean_nll,
        "question_mean_nll": s.question_mean_nll,
        "sim_aa": s.sim_aa,
        "sim_aq": s.sim_aq,
        "aa_term": s.aa_term,
        "aq_term": s.aq_term,
        "n_answer_tokens": s.n_answer_tokens,
        "n_question_tokens": s.n_question_tokens,
        "selected": c.selected,
        "messages": c.messages(),
        "reference_answer": c.reference_answer,
    }


def configs_metadata() -> list[dict[str, Any]]:
    """The README YAML `configs` block that makes `load_dataset(dir)` and `(dir, "candidates")` work."""
    return [
        {"config_name": name, "data_files": [{"split": "train", "path": f"{folder}/train-*.parquet"}],
         **({"default": True} if name == DEFAULT_CONFIG else {})}
        for name, folder in CONFIG_DIRS.items()
    ]


def features(config: str):
    """Explicit schemas, so even an empty selection loads with the contract's columns."""
    from datasets import Features, List, Value

    messages = List({"role": Value("string"), "content": Value("string")})
    common = {"question_id": Value("string"), "source_dataset": Value("string")}
    if config == DEFAULT_CONFIG:
        return Features({**common, "messages": messages, "teacher": Value("string"), "sample": Value("int64"),
                         "scas_score": Value("float64"), "answer_mean_nll": Value("float64"),
                         "n_answer_tokens": Value("int64"), "reference_answer": Value("string")})
    floats = ["scas_score", "answer_mean_nll", "question_mean_nll", "sim_aa", "sim_aq", "aa_term", "aq_term"]
    return Features({**common, "teacher": Value("string"), "sample": Value("int64"),
                     **{k: Value("float64") for k in floats},
                     "n_answer_tokens": Value("int64"), "n_question_tokens": Value("int64"),
                     "selected": Value("bool"), "messages": messages, "reference_answer": Value("string")})


def _write_parquet(rows: list[dict[str, Any]], folder: Path, config: str) -> list[Path]:
    from datasets import Dataset

    folder.mkdir(parents=True, exist_ok=True)  # a fresh staging folder (see `publish.output`)
    n_shards = max(1, math.ceil(len(rows) / ROWS_PER_SHARD))
    paths = []
    for i in range(n_shards):
        part = rows[i * ROWS_PER_SHARD : (i + 1) * ROWS_PER_SHARD]
        path = folder / f"train-{i:05d}-of-{n_shards:05d}.parquet"
        Dataset.from_list(part, features=features(config)).to_parquet(str(path))
        paths.append(path)
    return paths


def write_data_files(out: Path, candidates: list[Candidate], lam: float) -> dict[str, int]:
    """Write both configs' parquet shards; returns row counts per config."""
    scored = [c for c in candidates if c.score is not None]
    selected = [c for c in scored if c.selected]
    _write_parquet([selected_row(c, lam) for c in selected], out / CONFIG_DIRS[DEFAULT_CONFIG], DEFAULT_CONFIG)
    _write_parquet([candidate_row(c, lam) for c in scored], out / CONFIG_DIRS[CANDIDATES_CONFIG], CANDIDATES_CONFIG)
    return {DEFAULT_CONFIG: len(selected), CANDIDATES_CONFIG: len(scored)}


def write_stats(out: Path, stats: dict[str, Any]) -> Path:
    """Write `selection_stats.json` through a temporary file, so a crash never leaves half of it."""
    path = out / STATS_FILENAME
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(stats, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_stats(out: Path) -> dict[str, Any]:
    """Read `selection_stats.json` back (the card and the push are rendered from it).

    Raises:
        PublishError: the folder is not a scas-hub output folder.
    """
    path = Path(out) / STATS_FILENAME
    if not path.is_file():
        raise PublishError(f"{out} has no {STATS_FILENAME}, so it is not a scas-hub output folder; "
                           "write one with `scas-hub curate --out DIR` first")
    return json.loads(path.read_text(encoding="utf-8"))
