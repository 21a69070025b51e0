"""Evaluation questions from any source the project reads, each distinct question once.

A source yields candidate rows (one per teacher answer); evaluation needs only the question: its
text, system prompt, reference answer and, where the corpus has one, a reference solution. Rows are
grouped by question id, then by normalised question text (two ids with the same text are the same
question), and every row or question set aside is counted by reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, SourceError
from ..records import Candidate
from ..source import CorpusRecipe, SourceInfo, open_source
from ..source.columns import normalise_question

QUESTION_SKIP_REASONS = ("missing_instruction", "empty_instruction", "wrong_type_instruction", "missing_question_id")
"""Row problems that make the question itself unusable (answer and teacher problems do not matter here)."""


@dataclass(frozen=True)
class EvalQuestion:
    """One held-out question: what the student sees and what its answer is checked against."""

    question_id: str
    instruction: str
    reference_answer: str
    system: str | None = None
    reference_solution: str | None = None
    source_dataset: str | None = None

    @property
    def normalised(self) -> str:
        """The question text two copies share (see `normalise_question`): the key of overlap checks."""
        return normalise_question(self.instruction)

    def as_candidate(self, answer: str, teacher: str = "reference") -> Candidate:
        """The question with `answer` as a candidate record, rendered exactly as training and scoring render it."""
        return Candidate(
            question_id=self.question_id,
            teacher=teacher,
            instruction=self.instruction,
            answer=answer,
            system=self.system,
            source_dataset=self.source_dataset,
            reference_answer=self.reference_answer,
        )

    def prompt_messages(self, system_prompt: str | None = None) -> list[dict[str, str]]:
        """`[system, user]` with `system_prompt`, else the row's own, else the default one (as in training
        and scoring)."""
        messages = self.as_candidate("").prompt_messages()
        if system_prompt is not None:
            messages[0] = {"role": "system", "content": system_prompt}
        return messages


@dataclass
class EvalSet:
    """The questions an evaluation runs on, where they came from, and what was set aside."""

    questions: list[EvalQuestion]
    source: SourceInfo
    rows_in: int = 0
    questions_in: int = 0
    """Distinct question ids in the source."""
    skipped: Counter = field(default_factory=Counter)
    """Questions set aside, by reason (`no_reference_answer`, `duplicate_question_text`, `beyond_limit`, ...)."""
    limit: int | None = None
    sample_seed: int | None = None
    content_sha256: str | None = None
    """SHA-256 of the source's data files, for a source without a Hub revision (local file, folder, builder)."""

    @property
    def questions_sha256(self) -> str:
        """SHA-256 of what is evaluated: each question's id, system prompt, text and reference answer, in order."""
        payload = [[q.question_id, q.system, q.instruction, q.reference_answer] for q in self.questions]
        return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode("utf-8")).hexdigest()

    def to_dict(self) -> dict:
        return {
            "rows_in": self.rows_in,
            "questions_in": self.questions_in,
            "questions_evaluated": len(self.questions),
            "skipped": dict(sorted(self.skipped.items())),
            "limit": self.limit,
            "sample_seed": self.sample_seed,
            "content_sha256": self.content_sha256,
            "questions_sha256": self.questions_sha256,
        }


def files_sha256(paths: list[Path]) -> str:
    """One SHA-256 over data files: each file's name and bytes, in the order given."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode("utf-8") + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def load_eval_questions(
    source: str | os.PathLike[str] | CorpusRecipe,
    *,
    subset: str | None = None,
    revision: str | None = None,
    limit: int | None = None,
    sample_seed: int = 42,
) -> EvalSet:
    """Read the distinct questions with a reference answer from a source.

    Args:
        source: builder, recipe file or `CorpusRecipe`, local folder, or Hub dataset id (`open_source`).
        subset, revision: as for `open_source`.
        limit: keep N questions, drawn uniformly with `sample_seed` and kept in source order.
        sample_seed: the seed of that draw (recorded in the report).

    Raises:
        SourceError: the source cannot be read, or holds no question with a reference answer.
    """
    opened = open_source(source, subset=subset, revision=revision)
    first_row: dict[str, Candidate] = {}
    reference: dict[str, Candidate] = {}
    rows_in = 0
    for cand in opened.candidates():
        rows_in += 1
        if cand.skip_reason in QUESTION_SKIP_REASONS or not cand.question_id:
            continue
        first_row.setdefault(cand.question_id, cand)
        if not (cand.reference_answer and cand.reference_answer.strip()):
            continue
        kept = reference.get(cand.question_id)
        # the first row with a reference answer, or a later one that also has a reference solution
        if kept is None or (not kept.reference_solution and cand.reference_solution):
            reference[cand.question_id] = cand

    skipped: Counter[str] = Counter()
    questions: list[EvalQuestion] = []
    seen_text: set[str] = set()
    for qid in first_row:
        row = reference.get(qid)
        if row is None:
            skipped["no_reference_answer"] += 1
            continue
        assert row.reference_answer is not None, "only rows with a reference answer are kept"
        question = EvalQuestion(
            question_id=qid,
            instruction=row.instruction,
            reference_answer=row.reference_answer,
            system=row.system,
            reference_solution=row.reference_solution,
            source_dataset=row.source_dataset,
        )
        # one question under two system prompts is still one question
        if question.normalised in seen_text:
            skipped["duplicate_question_text"] += 1
            continue
        seen_text.add(question.normalised)
        questions.append(question)
    if not questions:
        raise SourceError(
            f"the eval source {opened.info.name!r} holds no question with a reference answer "
            f"({rows_in} rows read); evaluation needs one to check the student's answers against"
        )
    if limit is not None:
        if limit < 1:
            raise ConfigError(f"--limit must be at least 1, not {limit}")
        if limit < len(questions):
            keep = set(random.Random(sample_seed).sample(range(len(questions)), limit))
            skipped["beyond_limit"] += len(questions) - limit
            questions = [q for i, q in enumerate(questions) if i in keep]
    local = opened.info.repo_id is None and not opened.info.datasets  # a Hub source is pinned by its commit
    content = files_sha256([f.path for f in opened.files]) if local and opened.files else None
    return EvalSet(
        questions=questions,
        source=opened.info,
        rows_in=rows_in,
        questions_in=len(first_row),
        skipped=skipped,
        limit=limit,
        sample_seed=sample_seed if limit is not None else None,
        content_sha256=content,
    )
