"""`evaluate`: generate the student's answers to held-out questions, check them, write `report.json`."""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..constants import DEFAULT_SYSTEM_PROMPT
from ..errors import ConfigError, StudentError
from ..facts import api_call, hardware, library_versions, now
from ..source import CorpusRecipe, source_record
from ..student.chat import chat_template_sha256, read_chat_template
from ..student.loading import check_student, load_student, resolve_dtype, resolve_student
from ..train.card import read_facts
from .config import QuestionsConfig
from .generate import DecodingConfig, Generation, Generator, TransformersGenerator, VLLMGenerator, resolve_backend
from .grading import grade
from .questions import EvalSet
from .reference_nll import reference_solution_nll
from .report import EvalReport, QuestionResult

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


def evaluate(
    student: str,
    eval_questions: str | CorpusRecipe | QuestionsConfig,
    out: str | Path | None = None,
    *,
    student_revision: str | None = None,
    decoding: DecodingConfig | None = None,
    device: str | None = None,
    reference_nll: bool = True,
    progress: bool = True,
    generator: Generator | None = None,
    command: str | None = None,
    system_prompt: str | None = None,
    chat_template: str | Path | None = None,
) -> EvalReport:
    """Evaluate a student on the distinct questions of a source, checked with math-verify.

    Args:
        student: alias, Hub model id or local folder (e.g. a trained checkpoint).
        eval_questions: the held-out questions: a `QuestionsConfig` (source, subset, revision, and a
            seeded draw of `limit` of them), or just its source (builder, recipe file or
            `CorpusRecipe`, local folder, or Hub dataset id: every question); each distinct question
            with a reference answer is evaluated once.
        out: where to write `report.json` (a `.json` path, or a folder to hold `report.json`).
        decoding: greedy decoding settings (max new tokens, batch size, backend, dtype).
        reference_nll: also report the mean NLL of reference solutions where the source has them.
        generator: answers conversations instead of the student's own decoding (tests, custom
            backends); the student is then loaded only for the reference NLL.
        command: the command recorded in the report (the CLI passes its command line).
        system_prompt: the system prompt of every question (default: for a scas-hub checkpoint, the
            one its training rows shared (`training_facts.json`); else each row's own, else the
            project's default, as training and scoring render rows).
        chat_template: Jinja template (text or file) to render prompts with (default: the student's
            own: a checkpoint's is the one its dataset was scored with).

    Raises:
        SourceError, StudentError, ConfigError: with what to do.
    """
    check_backend_template(generator, decoding, chat_template)
    check_student(student)
    questions = QuestionsConfig.of(eval_questions)
    eval_set = questions.load()
    command = command or api_call(
        "scas_hub.evaluate",
        student=student,
        eval_source=str(questions.source),
        subset=questions.subset,
        limit=questions.limit,
        decoding=decoding,
        system_prompt=system_prompt,
        chat_template=str(chat_template) if chat_template is not None else None,
    )
    return evaluate_student(
        student,
        eval_set,
        out,
        student_revision=student_revision,
        decoding=decoding,
        device=device,
        reference_nll=reference_nll,
        progress=progress,
        generator=generator,
        command=command,
        system_prompt=system_prompt,
        chat_template=chat_template,
    )


def check_backend_template(
    generator: Generator | None, decoding: DecodingConfig | None, chat_template: str | Path | None
) -> None:
    """Refuse a chat template the backend would not use: an OpenAI-compatible server renders with its own.

    Raises:
        ConfigError: `chat_template` with the openai backend.
    """
    openai = getattr(generator, "backend", None) == "openai" or (decoding is not None and decoding.backend == "openai")
    if chat_template is not None and openai:
        raise ConfigError(
            "--chat-template cannot be used with --backend openai: the server renders prompts with its own "
            "template (serve the student with the template you want, e.g. `vllm serve --chat-template`)"
        )


def report_path(out: str | Path) -> Path:
    """`x.json` stays; a folder gets `report.json` inside."""
    out = Path(out)
    return out if out.suffix == ".json" else out / "report.json"


def evaluate_student(
    student: str,
    eval_set: EvalSet,
    out: str | Path | None = None,
    *,
    student_revision: str | None = None,
    decoding: DecodingConfig | None = None,
    device: str | None = None,
    reference_nll: bool = True,
    progress: bool = True,
    generator: Generator | None = None,
    command: str | None = None,
    system_prompt: str | None = None,
    chat_template: str | Path | None = None,
) -> EvalReport:
    """`evaluate` on questions already loaded (an ablation evaluates every arm on the same `EvalSet`)."""
    check_backend_template(generator, decoding, chat_template)
    import torch
    from transformers import AutoTokenizer

    decoding = decoding or DecodingConfig()
    started = time.perf_counter()
    resolved = resolve_student(student, student_revision)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    backend = (
        getattr(generator, "backend", "custom") if generator is not None else resolve_backend(decoding.backend, device)
    )
    dtype = resolve_dtype(decoding.dtype, device)
    needs_nll = reference_nll and any(q.reference_solution for q in eval_set.questions)
    template_text = read_chat_template(chat_template) if chat_template is not None else None
    prompt_source = "--system-prompt"
    if system_prompt is None:  # a scas-hub checkpoint is asked with the system prompt it was trained with
        system_prompt = trained_system_prompt(resolved.path)
        prompt_source = "the checkpoint's training rows (training_facts.json)"
    model = tokenizer = None
    if backend == "transformers" or needs_nll:
        model, tokenizer, dtype, device = load_student(resolved, dtype, device)
    tokenizer = tokenizer or AutoTokenizer.from_pretrained(resolved.path)
    if generator is None and backend == "vllm":
        generator = VLLMGenerator(
            resolved.path, tokenizer, decoding, dtype, progress=progress, chat_template=template_text
        )
    elif generator is None:
        assert model is not None, "the transformers backend loads the student"
        generator = TransformersGenerator(model, tokenizer, decoding, progress=progress, chat_template=template_text)

    nll: dict[str, float] = {}
    if needs_nll:
        assert model is not None, "a reference NLL loads the student"
        nll = reference_solution_nll(
            model,
            tokenizer,
            eval_set.questions,
            progress=progress,
            chat_template=template_text,
            system_prompt=system_prompt,
        )
    conversations = [q.prompt_messages(system_prompt) for q in eval_set.questions]
    gen_started = time.perf_counter()
    outputs = list(generator(conversations))
    generation_seconds = time.perf_counter() - gen_started
    if len(outputs) != len(eval_set.questions):
        raise RuntimeError(f"the generator answered {len(outputs)} of {len(eval_set.questions)} questions")

    results = []
    for question, output in zip(eval_set.questions, outputs, strict=True):
        output = output if isinstance(output, Generation) else Generation(str(output))
        correct, outcome = grade(output.text, question.reference_answer, finished=output.stopped)
        results.append(
            QuestionResult(
                question_id=question.question_id,
                generated=output.text,
                correct=correct,
                outcome=outcome,
                reference_answer=question.reference_answer,
                n_generated_tokens=output.n_tokens,
                stopped=output.stopped,
                reference_nll=nll.get(question.question_id),
            )
        )
    report = EvalReport(
        per_question=results,
        student={
            "name": resolved.name,
            "repo_id": resolved.public_id,
            "revision": resolved.revision,
            "dtype": dtype,
            "device": str(device),
        },
        eval={"source": source_record(eval_set.source), **eval_set.to_dict()},
        decoding={
            **decoding.to_dict(),
            "backend": backend,
            "dtype": dtype,
            "backend_parameters": getattr(generator, "parameters", None),
            "stop_token_ids": getattr(generator, "stop_ids", None),
            "pad_token_id": getattr(generator, "pad_id", None),
            "system_prompt": prompt_record(conversations, system_prompt, prompt_source),
            "chat_template": template_record(tokenizer, template_text, resolved.path),
        },
        run={
            "created": now(),
            "command": command or "",
            "versions": library_versions(),
            "hardware": hardware(str(device)),
            "generation_seconds": round(generation_seconds, 3),
            "wall_seconds": round(time.perf_counter() - started, 3),
        },
    )
    if out is not None:
        report.write(report_path(out))
    return report


def prompt_record(
    conversations: list[list[dict[str, str]]], override: str | None, override_source: str = "--system-prompt"
) -> dict[str, Any]:
    """The system prompts the student saw: each distinct text with its number of questions."""
    counts = Counter(c[0]["content"] for c in conversations)
    return {
        "source": override_source
        if override is not None
        else f"each row's own, else the default ({DEFAULT_SYSTEM_PROMPT!r})",
        "texts": [{"text": text, "questions": n} for text, n in counts.most_common()],
    }


def trained_system_prompt(student_path: str | Path) -> str | None:
    """The one system prompt a scas-hub checkpoint's training rows shared (`training_facts.json`)."""
    facts = read_facts(Path(student_path)) if Path(student_path).is_dir() else None
    if facts and facts.get("system_prompt"):
        logger.info("asking with the system prompt %s was trained with (training_facts.json)", student_path)
        return facts["system_prompt"]
    return None


def template_record(tokenizer: PreTrainedTokenizerBase, template_text: str | None, student_path: str) -> dict[str, Any]:
    """The chat template's SHA-256 and origin, and whether it is the one the checkpoint was trained with."""
    try:
        sha = chat_template_sha256(tokenizer, template_text)
    except StudentError:  # a custom generator may render prompts without one
        sha = None
    facts = read_facts(Path(student_path)) if Path(student_path).is_dir() else None
    trained = (facts or {}).get("chat_template_sha256")
    if trained is not None and trained != sha:
        logger.warning(
            "the prompts are rendered with chat template sha256 %s, but the student was trained with %s "
            "(training_facts.json); pass the training template with --chat-template",
            sha,
            trained,
        )
    return {
        "sha256": sha,
        "source": "--chat-template" if template_text is not None else "the student's own",
        "training_sha256": trained,
        "matches_training": None if trained is None else trained == sha,
    }
