"""Train stage: SFT of the student on a curated dataset with TRL, beside the curation pipeline.

    from scas_hub.train import TrainConfig, train
    result = train("out/scas-smollm2-135m", student="smollm2-135m", out="ckpt", config=TrainConfig(max_steps=10))
    result.checkpoint  # a folder transformers loads, and `curate(student=...)` scores with
"""

from .config import TrainConfig
from .data import DatasetRef, encode_for_training, open_training_data, to_prompt_completion
from .run import TrainResult, train

__all__ = ["DatasetRef", "TrainConfig", "TrainResult", "encode_for_training", "open_training_data",
           "to_prompt_completion", "train"]
