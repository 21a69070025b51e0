"""Hold-out hygiene: eval questions that are also in a training corpus, matched by normalised text.

Two copies of a question match when their texts agree after NFKC normalisation, case folding and
whitespace collapsing (`normalise_question`), whatever their ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..records import Candidate
from ..source.columns import normalise_question
from .questions import EvalQuestion


@dataclass(frozen=True)
class Overlap:
    """What a training corpus shares with an eval set."""

    eval_question_ids: tuple[str, ...]
    """Eval questions whose text is in the corpus, in eval order."""
    corpus_question_ids: tuple[str, ...]
    """Corpus questions whose text is an eval question's."""
    corpus_rows: int
    """Corpus rows (candidate answers) of those questions."""
    texts: frozenset[str] = field(default_factory=frozenset, repr=False)
    """Their normalised texts: the key `--exclude-overlap` removes from training."""

    @property
    def n_eval_questions(self) -> int:
        return len(self.eval_question_ids)

    def to_dict(self) -> dict:
        return {
            "eval_questions": self.n_eval_questions,
            "corpus_questions": len(self.corpus_question_ids),
            "corpus_rows": self.corpus_rows,
            "eval_question_ids": list(self.eval_question_ids),
            "matched_by": "normalised question text (NFKC, case-folded, whitespace collapsed)",
        }


def find_overlap(corpus: Iterable[Candidate], eval_questions: Sequence[EvalQuestion]) -> Overlap:
    """Stream a corpus's candidate rows and find the eval questions among them."""
    eval_texts = {q.normalised: q.question_id for q in eval_questions}
    shared: set[str] = set()
    corpus_ids: dict[str, None] = {}
    rows = 0
    for cand in corpus:
        text = normalise_question(cand.instruction)
        if text in eval_texts:
            shared.add(text)
            corpus_ids.setdefault(cand.question_id or text, None)
            rows += 1
    eval_ids = tuple(q.question_id for q in eval_questions if q.normalised in shared)
    return Overlap(
        eval_question_ids=eval_ids, corpus_question_ids=tuple(corpus_ids), corpus_rows=rows, texts=frozenset(shared)
    )
