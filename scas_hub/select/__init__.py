"""Selection among scored candidates: one answer per question.

`scas_hub.testing.reference.pick` states each rule for one question, as plain Python: it is the
reference. Runs select with
`select.columnar`, the same rules as a group-by over question ids on Arrow/numpy columns; a test
holds the two to the same picks on random corpora.

Strategies (all deterministic for a seed):
- `scas` (paper default, "group sampling"): rank candidates by (score, teacher, sample); rank k of M
  (1-based) falls in group ceil(k * G / M); draw one uniformly (seeded) from the chosen group.
- `argmin`: the lowest score. `lowest-nll`: the lowest answer mean NLL (GRAPE's rule).
- `teacher:<name>`: that teacher's answer (questions it did not answer are dropped, counted); of
  several samples, the lowest-score one (ties: sample number).
- `strongest`: the answer of the highest-ranked teacher that answered the question (of its
  samples, the lowest-score one). Teachers are ranked by verified answers in the corpus (every
  sample counts; rows set aside by scoring, e.g. `too_long`, still count, so the ranking does not
  depend on the student), ties by name; a user-given `teacher_ranking` comes first, unlisted
  teachers follow in that order.
- `random`: uniform (seeded).

Ties: candidates are ordered by (cost, teacher name, sample number), so equal scores never depend
on input order; a NaN cost sorts last. Draws use one RNG per (seed, question id): a question's
pick depends on nothing but its own candidates.

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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..constants import DEFAULT_GROUP, DEFAULT_GROUPS, DEFAULT_LAMBDA, DEFAULT_SEED, DEFAULT_STRATEGY, MAX_GROUPS
from ..errors import SelectionError
from ..proxy import ProxyComponents
from ..records import SCORING_SKIP_REASONS, Candidate, Question
from ..stats import PipelineStats

SMALL_POLICIES = ("nearest", "drop")
STRATEGIES = ("scas", "argmin", "lowest-nll", "teacher:<name>", "strongest", "random")


@dataclass(frozen=True)
class SelectionConfig:
    """How one answer per question is chosen (see the module docstring for each strategy)."""

    strategy: str = field(
        default=DEFAULT_STRATEGY,
        metadata={"help": "scas (group sampling), argmin, lowest-nll, teacher:<name>, strongest, random"},
    )
    groups: int = field(
        default=DEFAULT_GROUPS,
        metadata={
            "help": "scas: split each question's candidates, ranked by score, into G groups",
            "metavar": "G",
            "range": (1, MAX_GROUPS),
        },
    )
    group: int = field(
        default=DEFAULT_GROUP,
        metadata={"help": "scas: draw from group K (1 = lowest cost)", "metavar": "K", "range": (1, MAX_GROUPS)},
    )
    seed: int = field(default=DEFAULT_SEED, metadata={"help": "seed of the per-question draws (scas, random)"})
    lam: float = field(
        default=DEFAULT_LAMBDA,
        metadata={"help": "weight of the answer-question term: score = (1 - λ)·AA + λ·AQ", "flag": "--lambda"},
    )
    small_policy: str = field(
        default="nearest",
        metadata={
            "help": "questions with fewer candidates than groups: nearest non-empty group, or drop",
            "choices": list(SMALL_POLICIES),
        },
    )
    teacher_ranking: tuple[str, ...] | None = field(
        default=None,
        metadata={
            "help": "for --strategy strongest: teachers best first (default: most verified answers)",
            "metavar": "A,B,C",
            "append": True,
        },
    )
    """For `strongest`: teachers best first; unlisted ones follow by verified answers in the corpus."""

    def __post_init__(self) -> None:
        # any sequence of names is accepted; an empty one means "no ranking"
        object.__setattr__(self, "teacher_ranking", tuple(self.teacher_ranking) if self.teacher_ranking else None)

    def validate(self) -> SelectionConfig:
        """Return self, or raise `SelectionError` naming the bad setting."""
        base = self.strategy.split(":", 1)[0]
        if base not in {s.split(":", 1)[0] for s in STRATEGIES}:
            raise SelectionError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if base == "teacher" and not self.strategy.partition(":")[2].strip():
            raise SelectionError("strategy teacher:<name> needs a teacher name, e.g. teacher:gpt-4o")
        if not 1 <= self.groups <= MAX_GROUPS:
            raise SelectionError(f"--groups must be in [1, {MAX_GROUPS}], got {self.groups}")
        if not 1 <= self.group <= self.groups:
            raise SelectionError(f"--group must be in [1, {self.groups}], got {self.group}")
        if self.small_policy not in SMALL_POLICIES:
            raise SelectionError(f"unknown small-question policy {self.small_policy!r}; choose {SMALL_POLICIES}")
        if not 0.0 <= self.lam <= 1.0:
            raise SelectionError(f"lambda must be in [0, 1], got {self.lam}")
        if self.teacher_ranking and base != "strongest":
            raise SelectionError("a teacher ranking only applies to --strategy strongest")
        return self

    def to_dict(self) -> dict:
        """The settings as recorded in `selection_stats.json` and the card."""
        out = {
            "strategy": self.strategy,
            "lam": self.lam,
            "groups": self.groups,
            "group": self.group,
            "seed": self.seed,
            "small_policy": self.small_policy,
        }
        if self.teacher_ranking:
            out["teacher_ranking"] = list(self.teacher_ranking)
        return out


def cost_key(cost: float, c: Candidate) -> tuple[bool, float, str, int]:
    """Sort key: lowest `cost` first, then teacher name, then sample number (NaN costs last)."""
    # NaN compares false with everything and would make the order depend on the input order
    nan = math.isnan(cost)
    return (nan, 0.0 if nan else cost, c.teacher, c.sample)


def _components(c: Candidate) -> ProxyComponents:
    assert c.score is not None, "only scored candidates are ranked"
    return c.score


def rank(candidates: list[Candidate], lam: float) -> list[Candidate]:
    """Sort scored candidates by (score, teacher name, sample): lowest cost first."""
    return sorted(candidates, key=lambda c: cost_key(_components(c).scas_score(lam), c))


def lowest_nll(candidates: list[Candidate]) -> Candidate:
    """The candidate with the lowest answer mean NLL (GRAPE's rule; ties as in `rank`)."""
    return min(candidates, key=lambda c: cost_key(_components(c).answer_mean_nll, c))


def first_teacher_answer(candidates: list[Candidate], order: list[str], lam: float) -> Candidate | None:
    """The answer of the first teacher in `order` that has one: its lowest-score sample."""
    best: dict[str, Candidate] = {}
    for c in rank(candidates, lam):
        best.setdefault(c.teacher, c)
    return next((best[t] for t in order if t in best), None)


def group_of(rank_1based: int, n: int, groups: int) -> int:
    """The paper's group index ceil(k * G / M)."""
    return math.ceil(rank_1based * groups / n)


def question_rng(seed: int, question_id: str) -> random.Random:
    """One RNG per question, so a draw does not depend on order, sharding or other questions."""
    return random.Random(f"{seed}:{question_id}")


def verified_answers(candidates: Iterable[Candidate]) -> Counter:
    """Per teacher, the answers (every sample) that passed verification (scored, or set aside only by scoring)."""
    counts: Counter = Counter()
    for c in candidates:
        # += 0 still lists a teacher without verified answers (so `teacher:<name>` knows it)
        usable = c.skip_reason is None or c.skip_reason in SCORING_SKIP_REASONS
        counts[c.teacher] += c.verified is not False and usable
    return counts


def strongest_teacher(verified: Mapping[str, int], ranking: Iterable[str] | None = None) -> list[str]:
    """Teachers best first: the given `ranking`, then the others with verified answers, by count, then name.

    Raises:
        SelectionError: the ranking names a teacher absent from the corpus, or one twice.
    """
    ranking = list(ranking or ())
    unknown = [t for t in ranking if t not in verified]
    if unknown:
        raise SelectionError(
            f"teacher ranking names {', '.join(unknown)}, not in the corpus; teachers: {', '.join(sorted(verified))}"
        )
    if len(set(ranking)) != len(ranking):
        raise SelectionError(f"teacher ranking lists a teacher twice: {', '.join(ranking)}")
    # teachers without a verified answer can never be picked: leave them out of the order
    rest = sorted((t for t in verified if t not in ranking and verified[t] > 0), key=lambda t: (-verified[t], t))
    return ranking + rest


def teacher_order(
    questions: list[Question], config: SelectionConfig, verified: Mapping[str, int] | None = None
) -> list[str] | None:
    """The order `teacher:<name>` and `strongest` pick from (None for the other strategies).

    Args:
        verified: verified answers per teacher; default: counted from the questions' candidates
            (pass it when rows set aside before scoring are not in `questions`, as when re-selecting).

    Raises:
        SelectionError: the named or ranked teachers are not in the corpus.
    """
    base, _, arg = config.strategy.partition(":")
    if base not in {"teacher", "strongest"}:
        return None
    if verified is None:
        verified = verified_answers(c for q in questions for c in q.candidates)
    if base == "teacher":
        if arg not in verified:
            raise SelectionError(f"teacher {arg!r} is not in the corpus; teachers: {', '.join(sorted(verified))}")
        return [arg]
    return strongest_teacher(verified, config.teacher_ranking)


def select(
    questions: Iterable[Question],
    config: SelectionConfig,
    stats: PipelineStats,
    verified: Mapping[str, int] | None = None,
) -> list[Candidate]:
    """Select one candidate per question of a corpus held as objects; marks `selected` and counts
    every drop. Runs the columnar rules (`select.columnar`), as a streamed run does.

    Args:
        verified: see `teacher_order` (only `strongest` uses it).

    Raises:
        SelectionError: invalid settings, or `teacher:<name>` / the ranking names a teacher absent
            from the corpus.
    """
    from ..score.scored_table import window_of
    from .columnar import ScoredWindow, select_window

    config.validate()
    questions = list(questions)
    order = teacher_order(questions, config, verified)
    picked = select_window(ScoredWindow.of(window_of(questions), config.lam), config, stats, order)
    scored = [c for q in questions for c in q.candidates if c.score is not None]
    chosen = [scored[i] for i in picked.winners]
    for c in chosen:
        c.selected = True
    return chosen
