"""Which student runs and how it is loaded: `StudentConfig`, the one home of the model options.

As TRL's `ModelConfig`: the model, its revision, the dtype and device it runs in, and the chat
template it reads conversations with. Importable without torch (the CLI builds flags from it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..constants import DEFAULT_STUDENT

DTYPE_NAMES = ("float32", "bfloat16", "float16")
"""The compute dtypes a student runs in (`score.engine.DTYPES` maps them to torch dtypes)."""


@dataclass(frozen=True)
class StudentConfig:
    """The student a workflow runs, and how it is loaded."""

    name: str = field(
        default=DEFAULT_STUDENT,
        metadata={"help": "alias, Hub model id or local folder", "flag": "--student", "dest": "student"},
    )
    """Alias (`scas-hub students`), Hub model id, or local model folder (e.g. a training checkpoint)."""
    revision: str | None = field(
        default=None,
        metadata={
            "help": "Hub revision of the student: tag, branch or commit (default: main)",
            "flag": "--student-revision",
            "dest": "student_revision",
            "metavar": "REV",
        },
    )
    """Hub revision (tag, branch or commit) of `name`; default: main."""
    dtype: str = field(
        default="auto",
        metadata={
            "help": "weights and activations while scoring; auto = bfloat16 on CUDA, float32 otherwise",
            "choices": ["auto", *DTYPE_NAMES],
        },
    )
    """`auto`: bfloat16 on CUDA, float32 elsewhere."""
    device: str | None = field(
        default=None,
        metadata={"help": "torch device, e.g. cpu, cuda, cuda:1 (default: cuda if available, else cpu)"},
    )
    """A torch device (`cpu`, `cuda`, `cuda:1`); default: cuda if available, else cpu."""
    chat_template: str | os.PathLike | None = field(
        default=None,
        metadata={
            "help": "Jinja chat template to render candidates with (default: the student's own; needed when "
            "its tokenizer has none); recorded in the card, part of the score cache key",
            "metavar": "FILE",
        },
    )
    """A Jinja chat template overriding the student's own: its text, or a path to a file (read here)."""

    def __post_init__(self) -> None:
        if self.chat_template is not None:  # read once, so every use renders with the same text
            from .chat import read_chat_template

            object.__setattr__(self, "chat_template", read_chat_template(self.chat_template))

    @classmethod
    def of(cls, student: str | os.PathLike | StudentConfig) -> StudentConfig:
        """`student` itself, or the `StudentConfig` of a name or folder with every other default."""
        return student if isinstance(student, StudentConfig) else cls(str(student))
