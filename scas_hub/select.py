"""Per-question selection among scored candidates.

Strategies (all deterministic for a seed):
- `scas` (paper default, "group sampling"): rank candidates by (score, teacher); rank k of M
  (1-based) falls in group ceil(k * G / M); draw one uniformly (seeded) from the chosen group.
- `argmin`: the lowest score. `lowest-nll`: the lowest answer mean NLL (GRAPE's rule).
- `teacher:<name>`: that teacher's answer. `strongest`: the teacher with the highest verified
  accuracy over the corpus. `random`: uniform (seeded).

Questions with fewer candidates than groups (M < G) leave low groups empty under the paper's
formula; the reference code then drops them silently. `small_policy` decides instead:
- `nearest` (default): draw from the non-empty group nearest to the requested one (for group 1
  that is the lowest-cost candidate); counted as `policy_applied["nearest_group"]`;
- `drop`: the reference behaviour, counted in `questions_dropped["fewer_candidates_than_groups"]`.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import SelectionError
from .records import Candidate, Question
from .stats import PipelineStats

SMALL_POLICIES = ("nearest", "drop")
STRATEGIES = ("scas", "argmin", "lowest-nll", "teacher:<name>", "strongest", "random")


@dataclass(frozen=True)
class SelectionConfig:
    strategy: str = "scas"
    groups: int = 5
    group: int = 1
    seed: int = 42
    lam: float = 0.5
    small_policy: str = "nearest"
    teacher_ranking: tuple[str, ...] | None = None
    """For `strongest`: an explicit ranking, best first (else verified accuracy in the corpus)."""

    def validate(self) -> SelectionConfig:
        base = self.strategy.split(":", 1)[0]
        if base not in {s.split(":", 1)[0] for s in STRATEGIES}:
            raise SelectionError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if base == "teacher" and not self.strategy.split(":", 1)[1:]:
            raise SelectionError("strategy teacher:<name> needs a teacher name, e.g. teacher:gpt-4o")
        if self.groups < 1:
            raise SelectionError(f"--groups must be >= 1, got {self.groups}")
        if not 1 <= self.group <= self.groups:
            raise SelectionError(f"--group must be in [1, {self.groups}], got {self.group}")
        if self.small_policy not in SMALL_POLICIES:
            raise SelectionError(f"unknown small-question policy {self.small_policy!r}; choose {SMALL_POLICIES}")
        if not 0.0 <= self.lam <= 1.0:
            raise SelectionError(f"lambda must be in [0, 1], got {self.lam}")
        return self


def rank(candidates: list[Candidate], lam: float) -> list[Candidate]:
    """Sort scored candidates by (score, teacher name): lowest cost first, ties broken by name."""
    return sorted(candidates, key=lambda c: (c.score.scas_score(lam), c.teacher))


def group_of(rank_1based: int, n: int, groups: int) -> int:
    """The paper's group index ceil(k * G / M)."""
    return math.ceil(rank_1based * groups / n)


def question_rng(seed: int, question_id: str) -> random.Random:
    """One RNG per question, so a draw does not depend on order, sharding or other questions."""
    return random.Random(f"{seed}:{question_id}")


def strongest_teacher(candidates: Iterable[Candidate], ranking: tuple[str, ...] | None = None) -> list[str]:
    """Teachers ordered best first: by the given ranking, else verified accuracy then count then name."""
    total, verified = Counter(), Counter()
    for c in candidates:
        total[c.teacher] += 1
        if c.verified is not False and c.skip_reason is None:
            verified[c.teacher] += 1
    if ranking:
        return list(ranking)
    return sorted(total, key=lambda t: (-verified[t] / total[t], -verified[t], t))


def pick(question: Question, config: SelectionConfig, stats: PipelineStats,
         teacher_order: list[str] | None = None) -> Candidate | None:
    """Choose one candidate of a question (or None, with the reason counted in `stats`)."""
    scored = question.scored
    if not scored:
        stats.drop_question("no_valid_candidate")
        return None
    base, _, arg = config.strategy.partition(":")
    rng = question_rng(config.seed, question.question_id)
    if base == "scas":
        ranked = rank(scored, config.lam)
        m, g = len(ranked), config.groups
        members = [c for k, c in enumerate(ranked, 1) if group_of(k, m, g) == config.group]
        if not members:
            if config.small_policy == "drop":
                stats.drop_question("fewer_candidates_than_groups")
                return None
            groups = {group_of(k, m, g) for k in range(1, m + 1)}
            nearest = min(groups, key=lambda x: (abs(x - config.group), x))
            members = [c for k, c in enumerate(ranked, 1) if group_of(k, m, g) == nearest]
            stats.policy_applied["nearest_group"] += 1
        return rng.choice(members)
    if base == "argmin":
        return rank(scored, config.lam)[0]
    if base == "lowest-nll":
        return min(scored, key=lambda c: (c.score.answer_mean_nll, c.teacher))
    if base == "random":
        return rng.choice(sorted(scored, key=lambda c: c.teacher))
    if base in {"teacher", "strongest"}:
        order = [arg] if base == "teacher" else (teacher_order or [])
        by_teacher = {c.teacher: c for c in scored}
        for teacher in order:
            if teacher in by_teacher:
                return by_teacher[teacher]
        stats.drop_question("teacher_has_no_valid_answer")
        return None
    raise SelectionError(f"unknown strategy {config.strategy!r}")


def select(questions: list[Question], config: SelectionConfig, stats: PipelineStats) -> list[Candidate]:
    """Select one candidate per question; marks `selected` and counts every drop.

    Raises:
        SelectionError: invalid settings, or `teacher:<name>` names a teacher absent from the corpus.
    """
    config.validate()
    all_candidates = [c for q in questions for c in q.candidates]
    teacher_order = None
    base, _, arg = config.strategy.partition(":")
    if base == "teacher" and arg not in {c.teacher for c in all_candidates}:
        known = sorted({c.teacher for c in all_candidates})
        raise SelectionError(f"teacher {arg!r} is not in the corpus; teachers: {', '.join(known)}")
    if base == "strongest":
        teacher_order = strongest_teacher(all_candidates, config.teacher_ranking)
    chosen = []
    for question in questions:
        stats.questions_in += 1
        winner = pick(question, config, stats, teacher_order)
        if winner is not None:
            winner.selected = True
            stats.questions_selected += 1
            chosen.append(winner)
    return chosen
