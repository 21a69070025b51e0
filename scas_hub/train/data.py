"""The curated dataset as training data: the `default` config in TRL's prompt-completion format.

A selected row holds `messages` = [system, user, assistant]. Training splits it into `prompt` =
[system, user] and `completion` = [assistant], and the loss is on the completion's tokens only,
which works with any chat template (no generation markers needed).

`encode_for_training` tokenizes the rows with the scorer's own `ChatEncoder`, into the columns of
TRL's tokenized prompt-completion form (`input_ids`, `completion_mask`): training sees exactly
the tokens that were scored, by construction. TRL, given the `prompt`/`completion` rows itself,
tokenizes them to the same ids and mask (tests/train/test_train.py checks both); encoding here also
spares `datasets` from hashing the whole tokenizer to fingerprint TRL's tokenizing `map`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..constants import DEFAULT_CONFIG, DEFAULT_SYSTEM_PROMPT, STATS_FILENAME
from ..errors import TrainError
from ..publish.folder import CONFIG_DIRS, load_hub_config, load_stats
from ..run_record import RunRecord

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class DatasetRef:
    """Which dataset, exactly, a checkpoint was trained on."""

    id: str
    """Hub dataset id, or `local:<folder name>` for an output folder."""
    version: str | None
    """The `vN` tag: the revision asked for, else the version the folder was published as."""
    commit: str
    """The Hub commit SHA, or `local-<hash of the data files>` for a folder."""
    path: str | None = None
    """The folder on this machine (not shown in cards)."""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "commit": self.commit}

    def __str__(self) -> str:
        return f"{self.id}@{self.version or self.commit}"


@dataclass
class TrainingData:
    """Rows in prompt-completion form and the dataset's `selection_stats.json`."""

    ref: DatasetRef
    rows: list[dict[str, Any]]
    record: RunRecord

    @property
    def chat_template_sha256(self) -> str | None:
        """The hash of the chat template the dataset was scored with (None for older datasets)."""
        return self.record.student.chat_template_sha256

    @property
    def scored_max_length(self) -> int | None:
        """The tokens per conversation the dataset was scored at (longer candidates were set aside as
        `too_long`, or cut there with `--truncate`); None for datasets written before it was recorded."""
        return self.record.student.max_length


def to_prompt_completion(messages: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    """[system, user, assistant] -> `prompt` = [system, user], `completion` = [assistant].

    A conversation without a system turn gets the scorer's default one, as scoring rendered it.

    Raises:
        TrainError: the conversation lacks a user or an assistant turn.
    """
    by_role = {m["role"]: m["content"] for m in messages}
    if "user" not in by_role or "assistant" not in by_role:
        raise TrainError("a row's messages lack a user or assistant turn: pass a dataset written by `scas-hub curate`")
    system = by_role.get("system") or DEFAULT_SYSTEM_PROMPT
    return {
        "prompt": [{"role": "system", "content": system}, {"role": "user", "content": by_role["user"]}],
        "completion": [{"role": "assistant", "content": by_role["assistant"]}],
    }


def encode_for_training(
    rows: list[dict[str, list[dict[str, str]]]], tokenizer: PreTrainedTokenizerBase, *, batch_size: int = 256
) -> Dataset:
    """Prompt-completion rows -> a `datasets.Dataset` with `input_ids` and `completion_mask`
    (1 on the answer's tokens: the scorer's A region plus the template's end-of-turn tokens)."""
    from datasets import Dataset

    from ..records import Candidate
    from ..student.chat import ChatEncoder

    encoder = ChatEncoder(tokenizer)
    input_ids, completion_mask = [], []
    for start in range(0, len(rows), batch_size):
        batch = [
            Candidate(
                question_id=str(start + i),
                teacher="",
                instruction=r["prompt"][1]["content"],
                answer=r["completion"][0]["content"],
                system=r["prompt"][0]["content"],
            )
            for i, r in enumerate(rows[start : start + batch_size])
        ]
        for enc in encoder.encode(batch):
            input_ids.append(enc.input_ids)
            completion_mask.append([0] * enc.n_prompt + [1] * (len(enc.input_ids) - enc.n_prompt))
    return Dataset.from_dict({"input_ids": input_ids, "completion_mask": completion_mask})


def over_length(encoded: Dataset, max_length: int) -> tuple[int, int]:
    """`(cut, left_out)`: conversations TRL cuts at `max_length`, and those it leaves out because
    the prompt alone fills `max_length` (no answer token would carry loss)."""
    cut = left_out = 0
    for mask in encoded["completion_mask"]:
        cut += len(mask) > max_length
        left_out += 1 not in mask[:max_length]
    return cut, left_out


def _files_tag(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return "local-" + h.hexdigest()[:12]


def _open_folder(folder: Path) -> TrainingData:
    import pyarrow.parquet as pq

    files = sorted((folder / CONFIG_DIRS[DEFAULT_CONFIG]).glob("*.parquet"))
    stats = folder / STATS_FILENAME
    if not files or not stats.exists():
        raise TrainError(
            f"{folder} holds no scas-hub dataset (data/*.parquet and {STATS_FILENAME}); "
            "pass the --out folder of `scas-hub curate` or a Hub dataset id"
        )
    record = RunRecord.from_dict(load_stats(stats, TrainError))
    rows = pq.ParquetDataset([str(f) for f in files]).read(columns=["messages"]).to_pylist()
    ref = DatasetRef(f"local:{folder.resolve().name}", record.version, _files_tag(files), str(folder))
    return TrainingData(ref, [to_prompt_completion(r["messages"]) for r in rows], record)


def _open_hub(repo_id: str, revision: str | None) -> TrainingData:
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        sha = HfApi().dataset_info(repo_id, revision=revision).sha
        assert sha is not None, "the Hub names the commit a revision resolves to"
    except RepositoryNotFoundError as err:
        raise TrainError(
            f"dataset {repo_id!r} not found on the Hub (if it is private, log in with `hf auth login`)"
        ) from err
    except RevisionNotFoundError as err:
        raise TrainError(
            f"dataset {repo_id!r} has no revision {revision!r}; pass a tag (v1, v2, ...), a branch or a commit SHA"
        ) from err
    try:
        record = RunRecord.from_dict(
            load_stats(
                Path(hf_hub_download(repo_id, STATS_FILENAME, repo_type="dataset", revision=sha)),
                TrainError,
                f"{STATS_FILENAME} of {repo_id}@{sha[:10]}",
            )
        )
    except EntryNotFoundError as err:
        raise TrainError(f"{repo_id}@{sha[:10]} has no {STATS_FILENAME}: is it a dataset written by scas-hub?") from err
    rows = load_hub_config(repo_id, DEFAULT_CONFIG, sha, TrainError)  # never a dataset script
    tags = {t.name: t.target_commit for t in HfApi().list_repo_refs(repo_id, repo_type="dataset").tags}
    version: str | None
    if revision in tags:
        version = revision
    else:  # the version tag on this commit, if any
        version = next(
            (name for name, commit in sorted(tags.items()) if commit == sha),
            record.version,
        )
    ref = DatasetRef(repo_id, version, sha)
    return TrainingData(ref, [to_prompt_completion(m) for m in rows["messages"]], record)


def open_training_data(dataset: str | Path, revision: str | None = None) -> TrainingData:
    """Open a curated dataset for training: an output folder, or a Hub dataset id at `revision`.

    Raises:
        TrainError: not found, not a scas-hub dataset, or a revision given for a local folder.
    """
    local = Path(dataset).expanduser()
    if local.exists():
        if revision is not None:
            raise TrainError(f"{dataset} is a local folder: --revision applies to Hub datasets only")
        return _open_folder(local)
    text = str(dataset)
    from ..hub_access import is_local_path, missing_path_message

    if not is_local_path(text):  # `out/typo` beside an existing `out/` is a folder, never asked of the Hub
        from ..hub_access import with_retries

        return with_retries(_open_hub, text, revision, what=f"read {text} on the Hub")  # reads retried as pushes
    raise TrainError(
        f"{missing_path_message(text)}; --dataset takes an output folder of `scas-hub curate` "
        "or a Hub dataset id (org/name)"
    )
