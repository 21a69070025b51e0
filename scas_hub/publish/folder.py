"""The output folder is a Hub dataset repo: parquet per config, the card, selection stats.

    README.md                                 card with YAML `configs`
    data/train-00000-of-00001.parquet         config `default`: the selection
    candidates/train-00000-of-00001.parquet   config `candidates`: every scored candidate
    selection_stats.json

Large configs are written as several shards (`train-00000-of-00003.parquet`, ...) of bounded size,
streamed window by window as Arrow tables: no Python object per row is ever built.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import write_json_atomic
from ..constants import CANDIDATES_CONFIG, DEFAULT_CONFIG, DEFAULT_SYSTEM_PROMPT, STATS_FILENAME
from ..errors import PublishError, ScasHubError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset, Features

    from ..select.columnar import WindowSelection

CONFIG_DIRS = {DEFAULT_CONFIG: "data", CANDIDATES_CONFIG: "candidates"}
SHARD_BYTES = 500 * 2**20
"""Upper bound of the (uncompressed Arrow) data in one parquet shard: files stay under ~500 MB."""
BATCH_ROWS = 1024


SELECTED_COLUMNS = (
    "question_id",
    "source_dataset",
    "messages",
    "teacher",
    "sample",
    "scas_score",
    "answer_mean_nll",
    "n_answer_tokens",
    "reference_answer",
)


def messages_array(system: pa.ChunkedArray, instruction: pa.ChunkedArray, answer: pa.ChunkedArray) -> pa.ListArray:
    """`[system, user, assistant]` conversations (TRL's conversational format) from three string
    columns; an empty or missing system prompt becomes the fixed default, as `Candidate.messages`."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(instruction)
    system = pc.if_else(pc.fill_null(pc.not_equal(system, ""), False), system, DEFAULT_SYSTEM_PROMPT)
    contents = pa.concat_arrays(
        [pa.chunked_array(c, pa.string()).combine_chunks() for c in (system, instruction, answer)]
    )
    interleaved = (np.arange(n)[:, None] + np.array([0, n, 2 * n])[None, :]).ravel()
    roles = pa.array(["system", "user", "assistant"]).take(pa.array(np.tile(np.arange(3), n)))
    turns = pa.StructArray.from_arrays([roles, contents.take(pa.array(interleaved))], names=["role", "content"])
    return pa.ListArray.from_arrays(pa.array(np.arange(0, 3 * n + 1, 3, dtype=np.int32)), turns)


def config_tables(window: pa.Table, picked: WindowSelection) -> tuple[pa.Table, pa.Table]:
    """The rows one window adds to each config: `(default, candidates)` Arrow tables.

    Args:
        window: a window table (`scas_hub.score.scored_table.WINDOW_COLUMNS`).
        picked: what selection chose in it (`select.columnar.select_window`); its scored rows and
            their SCAS scores are reused, not computed again.
    """
    import numpy as np
    import pyarrow as pa

    from ..proxy import aa_term, aq_term

    scored = picked.window
    rows = window.take(pa.array(scored.rows, pa.int64()))

    def floats(name: str) -> np.ndarray:
        return rows.column(name).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)

    nll, q_nll, sim_aa, sim_aq = (floats(n) for n in ("answer_mean_nll", "question_mean_nll", "sim_aa", "sim_aq"))
    selected = np.zeros(len(scored.rows), bool)
    selected[picked.winners] = True
    columns = {name: rows.column(name) for name in rows.column_names}
    columns.update(
        scas_score=scored.cost,
        aa_term=aa_term(nll, sim_aa),
        aq_term=aq_term(nll, q_nll, sim_aq),
        selected=selected,
        messages=messages_array(columns["system"], columns["instruction"], columns["answer"]),
    )
    candidates = pa.table(
        {name: columns[name] for name in features(CANDIDATES_CONFIG)}, schema=features(CANDIDATES_CONFIG).arrow_schema
    )
    chosen = candidates.filter(pa.array(selected))
    return (
        pa.table(
            {name: chosen.column(name) for name in SELECTED_COLUMNS}, schema=features(DEFAULT_CONFIG).arrow_schema
        ),
        candidates,
    )


def configs_metadata() -> list[dict[str, Any]]:
    """The README YAML `configs` block that makes `load_dataset(dir)` and `(dir, "candidates")` work."""
    return [
        {
            "config_name": name,
            "data_files": [{"split": "train", "path": f"{folder}/train-*.parquet"}],
            **({"default": True} if name == DEFAULT_CONFIG else {}),
        }
        for name, folder in CONFIG_DIRS.items()
    ]


def load_hub_config(repo_id: str, config: str, sha: str, error: type[ScasHubError] = PublishError) -> Dataset:
    """One config of a scas-hub dataset on the Hub, at commit `sha`, as a memory-mapped `datasets.Dataset`.

    Only the config's parquet files (`configs_metadata`) are downloaded and read: a stray `<name>.py`
    in the repo is neither run nor a reason to refuse the repo (`load_dataset(repo_id)` would take
    it for a dataset script, which `datasets` no longer runs).

    Raises:
        error: the commit has no parquet files for that config.
    """
    from datasets import load_dataset
    from huggingface_hub import snapshot_download

    pattern = f"{CONFIG_DIRS[config]}/train-*.parquet"
    root = Path(snapshot_download(repo_id, repo_type="dataset", revision=sha, allow_patterns=[pattern]))
    files = sorted(str(f) for f in root.glob(pattern))
    if not files:
        raise error(f"{repo_id}@{sha[:10]} has no {config!r} config ({pattern}): is it a dataset written by scas-hub?")
    return load_dataset("parquet", data_files={"train": files}, split="train")


def features(config: str) -> Features:
    """Explicit schemas, so even an empty selection loads with the contract's columns."""
    from datasets import Features, List, Value

    messages = List({"role": Value("string"), "content": Value("string")})
    common = {"question_id": Value("string"), "source_dataset": Value("string")}
    if config == DEFAULT_CONFIG:
        return Features(
            {
                **common,
                "messages": messages,
                "teacher": Value("string"),
                "sample": Value("int64"),
                "scas_score": Value("float64"),
                "answer_mean_nll": Value("float64"),
                "n_answer_tokens": Value("int64"),
                "reference_answer": Value("string"),
            }
        )
    floats = ["scas_score", "answer_mean_nll", "question_mean_nll", "sim_aa", "sim_aq", "aa_term", "aq_term"]
    return Features(
        {
            **common,
            "teacher": Value("string"),
            "sample": Value("int64"),
            **{k: Value("float64") for k in floats},
            "n_answer_tokens": Value("int64"),
            "n_question_tokens": Value("int64"),
            "selected": Value("bool"),
            "messages": messages,
            "reference_answer": Value("string"),
        }
    )


class ConfigWriter:
    """Rows of one config streamed into parquet shards of at most `shard_bytes` bytes of data:
    `train-00000-of-000NN.parquet`, named once the count is known."""

    def __init__(self, folder: Path, config: str, shard_bytes: int | None = None):
        folder.mkdir(parents=True, exist_ok=True)  # a fresh staging folder (see `publish.output`)
        self.folder, self.config = folder, config
        self.shard_bytes = shard_bytes or SHARD_BYTES
        self.schema = features(config).arrow_schema
        self.rows = 0
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._writer: pq.ParquetWriter | None = None
        self._shards: list[Path] = []
        self._shard_bytes = 0

    def add(self, table: pa.Table) -> None:
        """Append rows (an Arrow table with this config's schema), in batches of `BATCH_ROWS`."""
        import pyarrow as pa

        self._buffer.append(table)
        self._buffered += table.num_rows
        if self._buffered >= BATCH_ROWS:
            whole = pa.concat_tables(self._buffer)
            cut = self._buffered - self._buffered % BATCH_ROWS
            self._write(whole.slice(0, cut))
            self._buffer, self._buffered = [whole.slice(cut)], self._buffered - cut

    def _write(self, rows: pa.Table) -> None:
        for start in range(0, rows.num_rows, BATCH_ROWS):
            self._write_batch(rows.slice(start, BATCH_ROWS))

    def _write_batch(self, batch: pa.Table) -> None:
        import pyarrow.parquet as pq

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

    def _flush(self) -> None:
        import pyarrow as pa

        if self._buffered:
            self._write(pa.concat_tables(self._buffer))
        self._buffer, self._buffered = [], 0

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
    """Both configs of an output folder, written window by window as the selection streams."""

    def __init__(self, out: Path, shard_bytes: int | None = None):
        self.selected = ConfigWriter(out / CONFIG_DIRS[DEFAULT_CONFIG], DEFAULT_CONFIG, shard_bytes)
        self.candidates = ConfigWriter(out / CONFIG_DIRS[CANDIDATES_CONFIG], CANDIDATES_CONFIG, shard_bytes)

    def add(self, window: pa.Table, picked: WindowSelection) -> None:
        """One window and what selection chose in it: its scored rows go to `candidates`, the
        selected ones to `default`."""
        selected, candidates = config_tables(window, picked)
        self.candidates.add(candidates)
        self.selected.add(selected)

    def close(self) -> dict[str, int]:
        """Row counts per config."""
        self.selected.close()
        self.candidates.close()
        return {DEFAULT_CONFIG: self.selected.rows, CANDIDATES_CONFIG: self.candidates.rows}


def write_stats(out: Path, stats: dict[str, Any]) -> Path:
    """Write `selection_stats.json` through a temporary file, so a crash never leaves half of it."""
    return write_json_atomic(out / STATS_FILENAME, stats)


def load_stats(path: Path, error: type[ScasHubError] = PublishError, where: str | None = None) -> dict[str, Any]:
    """The record of a `selection_stats.json` file, which must be a JSON object.

    Args:
        error: the exception class raised (the calling command's, e.g. `TrainError`).
        where: how the file is named in messages (default: its path), e.g. `org/name@sha`.

    Raises:
        error: the file cannot be read, is not JSON, or is not a JSON object.
    """
    where = where or str(path)
    redo = (
        f"restore it, or write the output again with `scas-hub curate` (a {STATS_FILENAME} is written by "
        "scas-hub, never by hand)"
    )
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise error(f"cannot read {where}: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise error(f"{where} is not UTF-8 text (byte {err.start + 1}); {redo}") from err
    except json.JSONDecodeError as err:
        raise error(f"{where} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); {redo}") from err
    except RecursionError as err:
        raise error(f"{where} is nested too deeply to be a {STATS_FILENAME}; {redo}") from err
    if not isinstance(record, dict):
        raise error(f"{where} holds a JSON {type(record).__name__}, not the object of a {STATS_FILENAME}; {redo}")
    return record


STATS_FIELDS = {"student": dict, "source": dict, "selection": dict, "questions_selected": int, "rows_scored": int}
"""Fields of `selection_stats.json` the card and the push read, with their types."""


def read_stats(out: Path) -> dict[str, Any]:
    """Read `selection_stats.json` back (the card and the push are rendered from it).

    Raises:
        PublishError: the folder is not a scas-hub output folder, or its record is damaged.
    """
    path = Path(out) / STATS_FILENAME
    if not path.is_file():
        raise PublishError(
            f"{out} has no {STATS_FILENAME}, so it is not a scas-hub output folder; "
            "write one with `scas-hub curate --out DIR` first"
        )
    record = load_stats(path)
    wrong = [name for name, kind in STATS_FIELDS.items() if not isinstance(record.get(name), kind)]
    if wrong:
        raise PublishError(
            f"{path} lacks {', '.join(wrong)} (or holds another type), so it was not written by "
            "this scas-hub; write the output again with `scas-hub curate`"
        )
    return record
