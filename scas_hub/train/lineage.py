"""Where a checkpoint's weights come from, through every round, and where its turns end.

A checkpoint written by `train` records its base model (`training_facts.json` -> `base_model`):
the student the first round started from (Hub id, revision, and what its weights are, e.g. the
embedded student's de-quantised GGUF). Training a checkpoint again keeps that base model, so round
r's card still names it; the immediate parent is the run's `student`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..student.loading import ResolvedStudent
from .card import read_facts

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def student_facts(resolved: ResolvedStudent) -> dict[str, Any]:
    """What a card shows of one student: name, id, revision, and what its weights are when they are not
    the model as published."""
    return {
        "name": resolved.name,
        "repo_id": resolved.public_id,
        "revision": resolved.revision,
        "weights": resolved.weights,
    }


def base_model(resolved: ResolvedStudent) -> dict[str, Any]:
    """The model a student's weights descend from: its own base model when it is a scas-hub checkpoint,
    else the student itself."""
    facts = read_facts(Path(resolved.path)) if Path(resolved.path).is_dir() else None
    if facts:
        return facts.get("base_model") or facts["student"]
    return student_facts(resolved)


def end_of_turn_id(tokenizer: PreTrainedTokenizerBase) -> int | None:
    """The special token the chat template writes after an assistant turn (`<|im_end|>` for ChatML,
    `<|eot_id|>` for Llama 3): the token training teaches the student to end its answers with.

    Found as scoring and training render: the first special token after the answer's text."""
    from ..records import Candidate
    from ..student.chat import ChatEncoder, special_token_ids

    probe = Candidate(question_id="probe", teacher="", instruction="?", answer="scas-hub probe answer")
    enc = ChatEncoder(tokenizer).encode([probe])[0]
    special = special_token_ids(tokenizer)  # the probe's text holds none: the first one ends the turn
    return next((t for t in enc.answer_ids if t in special), None)


def write_stop_ids(folder: Path, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Put the template's end-of-turn token first among the eos ids of `folder`'s `generation_config.json`,
    so vLLM, lighteval and lm-evaluation-harness stop where the checkpoint was taught to; returns them."""
    from transformers import GenerationConfig

    try:
        config = GenerationConfig.from_pretrained(folder)
    except OSError:
        config = GenerationConfig()
    existing = config.eos_token_id
    ids = [] if existing is None else [existing] if isinstance(existing, int) else list(existing)
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    end = end_of_turn_id(tokenizer)
    ids = list(dict.fromkeys([end, *ids] if end is not None else ids))
    if ids:
        config.eos_token_id = ids
        if config.pad_token_id is None and tokenizer.pad_token_id is not None:
            config.pad_token_id = tokenizer.pad_token_id
        config.save_pretrained(folder)
    return ids
