"""What an evaluation asks and how answers are decoded: `QuestionsConfig` and `DecodingConfig`,
importable without torch (the CLI builds flags from them)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..constants import DEFAULT_SEED
from ..errors import ConfigError
from ..student.config import DTYPE_NAMES

if TYPE_CHECKING:
    from ..source import CorpusRecipe
    from .questions import EvalSet

BACKENDS = ("auto", "transformers", "vllm", "openai")


@dataclass(frozen=True)
class QuestionsConfig:
    """The held-out questions an evaluation runs on: a source, and a seeded draw of N of its questions
    (`evaluate`, `ablate` and `run_rounds` take it)."""

    source: str | os.PathLike[str] | CorpusRecipe | None = field(
        default=None,
        metadata={
            "help": "held-out questions: builder, recipe file (.py), folder, or Hub dataset id",
            "flag": "--eval",
            "dest": "eval",
            "metavar": "SOURCE",
        },
    )
    """Builder, recipe file or `CorpusRecipe`, local folder, or Hub dataset id; each distinct question
    with a reference answer is evaluated once."""
    subset: str | None = field(
        default=None,
        metadata={"help": "subset of the eval source (default: the recipe's default)", "flag": "--eval-subset"},
    )
    revision: str | None = field(
        default=None,
        metadata={
            "help": "Hub revision of the eval source: tag, branch or commit (default: main)",
            "flag": "--eval-revision",
            "dest": "eval_revision",
            "metavar": "REV",
        },
    )
    limit: int | None = field(
        default=None, metadata={"help": "evaluate N questions, a seeded uniform draw (default: every question)"}
    )
    """Evaluate N questions, drawn uniformly with `sample_seed` (kept in source order)."""
    sample_seed: int = field(default=DEFAULT_SEED, metadata={"help": "seed of the --limit draw"})

    @classmethod
    def of(cls, questions: str | os.PathLike[str] | CorpusRecipe | QuestionsConfig) -> QuestionsConfig:
        """`questions` itself, or every question of the source `questions`."""
        return questions if isinstance(questions, QuestionsConfig) else cls(questions)

    def load(self) -> EvalSet:
        """Read the distinct questions with a reference answer, and draw `limit` of them (`load_eval_questions`).

        Raises:
            ConfigError: no `source`.
            SourceError: the source cannot be read, or holds no question with a reference answer.
        """
        from .questions import load_eval_questions

        if self.source is None:
            raise ConfigError("no eval source: pass --eval SOURCE, the held-out questions")
        return load_eval_questions(
            self.source, subset=self.subset, revision=self.revision, limit=self.limit, sample_seed=self.sample_seed
        )


@dataclass(frozen=True)
class DecodingConfig:
    """How answers are generated; recorded in every report so a run can be repeated exactly."""

    max_new_tokens: int = field(default=1024, metadata={"help": "most tokens generated per answer"})
    batch_size: int = field(default=16, metadata={"help": "prompts per generate call (transformers backend)"})
    """Prompts per `generate` call (transformers; vLLM schedules its own batches)."""
    backend: str = field(
        default="auto",
        metadata={"help": "auto: vLLM when installed and on a GPU, else transformers", "choices": list(BACKENDS)},
    )
    """`auto`: vLLM when it is installed and a GPU is there, else transformers."""
    dtype: str = field(
        default="auto",
        metadata={
            "help": "weights and activations while decoding; auto = bfloat16 on CUDA, float32 otherwise",
            "choices": ["auto", *DTYPE_NAMES],
        },
    )
    """`auto`: bfloat16 on CUDA, float32 elsewhere."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ConfigError("--max-new-tokens and --batch-size must be at least 1")

    def generation_kwargs(self) -> dict[str, Any]:
        """Every decoding parameter, explicit and backend-neutral: greedy, no penalty, no length floor.

        Each backend maps these onto its own parameters (transformers `GenerationConfig`, vLLM
        `SamplingParams`, ...) and takes nothing from the model's `generation_config.json`.
        """
        return {
            "max_new_tokens": self.max_new_tokens,
            "min_new_tokens": 0,
            "do_sample": False,
            "num_beams": 1,
            "temperature": 0.0,
            "top_p": 1.0,
            "top_k": None,
            "min_p": 0.0,
            "repetition_penalty": 1.0,
            "presence_penalty": 0.0,
            "frequency_penalty": 0.0,
            "no_repeat_ngram_size": 0,
            "length_penalty": 1.0,
        }

    def to_dict(self) -> dict:
        return {
            "strategy": "greedy",
            "do_sample": False,
            "num_beams": 1,
            **asdict(self),
            "padding_side": "left",
            "generation": self.generation_kwargs(),
        }
