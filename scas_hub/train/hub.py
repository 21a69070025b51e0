"""Push a trained checkpoint to a Hub model repo: one commit of the folder (weights, tokenizer, card)."""

from __future__ import annotations

from pathlib import Path

from ..errors import PublishError
from ..hub_access import RetryPolicy, with_retries

TRAINER_DIR = "trainer"
"""Trainer checkpoints (optimizer state) inside the checkpoint folder while a run is unfinished."""


def push_checkpoint(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    message: str | None = None,
    retry: RetryPolicy | None = None,
) -> str:
    """Upload a checkpoint folder to the model repo `repo_id` (created if needed); returns the commit SHA.

    Raises:
        PublishError: the Hub refused the push; running the same command again retries it.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    try:
        with_retries(
            api.create_repo,
            repo_id,
            repo_type="model",
            private=private,
            exist_ok=True,
            what=f"create {repo_id}",
            policy=retry,
        )
        info = with_retries(
            api.upload_folder,
            repo_id=repo_id,
            repo_type="model",
            folder_path=str(folder),
            commit_message=message or "scas-hub: trained checkpoint",
            ignore_patterns=[f"{TRAINER_DIR}/*", "*.tmp"],
            what="upload",
            policy=retry,
        )
    except (HfHubHTTPError, OSError, ValueError) as err:
        raise PublishError(
            f"pushing the checkpoint {folder} to the model repo {repo_id} failed: "
            f"{type(err).__name__}: {err}; run the same command again to retry"
        ) from err
    return info.oid
