"""The system prompt a student was trained with, read from the curated dataset it was trained on.

A curated dataset's rows carry the system prompt each was scored and trained with (the corpus row's
own, else the project's default). Evaluating under that prompt asks the student the way it learned.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path


def training_system_prompts(dataset: str | Path, revision: str | None = None) -> Counter:
    """`Counter({system prompt: rows})` of a curated dataset (an output folder or a Hub dataset id).

    Raises:
        TrainError: the dataset is not a scas-hub dataset.
    """
    from ..train.data import open_training_data

    data = open_training_data(dataset, revision)
    return Counter(row["prompt"][0]["content"] for row in data.rows)


def training_system_prompt(folder: str | Path) -> str | None:
    """The one system prompt every row of a curated dataset folder was trained with; None when rows
    differ or the folder does not exist."""
    if not Path(folder).expanduser().exists():
        return None
    prompts = training_system_prompts(folder)
    return next(iter(prompts)) if len(prompts) == 1 else None
