"""The output folder is a Hub dataset repo: parquet per config, the card, selection stats.

    README.md                                 card with YAML `configs`
    data/train-00000-of-00001.parquet         config `default`: the selection
    candidates/train-00000-of-00001.parquet   config `candidates`: every scored candidate
    selection_stats.json

Large configs are written as several shards (`train-00000-of-00003.parquet`, ...) of bounded size,
streamed question by question: no list of every row is ever built.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..constants import CANDIDATES_CONFIG, DEFAULT_CONFIG, STATS_FILENAME
from ..errors import PublishError
from ..records import Candidate

CONFIG_DIRS = {DEFAULT_CONFIG: "data", CANDIDATES_CONFIG: "candidates"}
SHARD_BYTES = 500 * 2**20
"""Upper bound of the (uncompressed Arrow) data in one parquet shard: files stay under ~500 MB."""
BATCH_ROWS = 1024


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


class ConfigWriter:
    """Rows of one config streamed into parquet shards of at most `shard_bytes` bytes of data:
    `train-00000-of-000NN.parquet`, named once the count is known."""

    def __init__(self, folder: Path, config: str, shard_bytes: int | None = None):
        folder.mkdir(parents=True, exist_ok=True)  # a fresh staging folder (see `publish.output`)
        self.folder, self.config = folder, config
        self.shard_bytes = shard_bytes or SHARD_BYTES
        self.schema = features(config).arrow_schema
        self.rows = 0
        self._buffer: list[dict[str, Any]] = []
        self._writer = None
        self._shards: list[Path] = []
        self._shard_bytes = 0

    def add(self, row: dict[str, Any]) -> None:
        self._buffer.append(row)
        if len(self._buffer) >= BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._buffer:
            return
        batch = pa.Table.from_pylist(self._buffer, schema=self.schema)
        self._buffer = []
        if self._writer is not None and self._shard_bytes + batch.nbytes > self.shard_bytes:
            self._writer.close()
            self._writer = None
        if self._writer is None:
            path = self.folder / f".train-{len(self._shards):05d}.parquet"
            self._shards.append(path)
            self._writer = pq.ParquetWriter(path, self.schema)
            self._shard_bytes = 0
        self._writer.write_table(batch, row_group_size=BATCH_ROWS)
        self._shard_bytes += batch.nbytes
        self.rows += batch.num_rows

    def close(self) -> list[Path]:
        """Finish the last shard and give every shard its final name; returns them."""
        import pyarrow.parquet as pq

        self._flush()
        if self._writer is not None:
            self._writer.close()
        if not self._shards:  # an empty config still has one file with the contract's columns
            path = self.folder / ".train-00000.parquet"
            pq.write_table(self.schema.empty_table(), path)
            self._shards.append(path)
        n = len(self._shards)
        final = [self.folder / f"train-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
        for tmp, path in zip(self._shards, final, strict=True):
            tmp.rename(path)
        return final


class DataFilesWriter:
    """Both configs of an output folder, written question by question as the selection streams."""

    def __init__(self, out: Path, lam: float, shard_bytes: int | None = None):
        self.lam = lam
        self.selected = ConfigWriter(out / CONFIG_DIRS[DEFAULT_CONFIG], DEFAULT_CONFIG, shard_bytes)
        self.candidates = ConfigWriter(out / CONFIG_DIRS[CANDIDATES_CONFIG], CANDIDATES_CONFIG, shard_bytes)

    def add(self, candidates: list[Candidate]) -> None:
        """One question's candidates: the scored ones go to `candidates`, the selected one to `default`."""
        for c in candidates:
            if c.score is None:
                continue
            self.candidates.add(candidate_row(c, self.lam))
            if c.selected:
                self.selected.add(selected_row(c, self.lam))

    def close(self) -> dict[str, int]:
        """Row counts per config."""
        self.selected.close()
        self.candidates.close()
        return {DEFAULT_CONFIG: self.selected.rows, CANDIDATES_CONFIG: self.candidates.rows}


def write_data_files(out: Path, candidates: list[Candidate], lam: float) -> dict[str, int]:
    """Write both configs' parquet shards; returns row counts per config."""
    writer = DataFilesWriter(out, lam)
    writer.add(candidates)
    return writer.close()


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
