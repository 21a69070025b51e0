"""Selection as a group-by over question ids: the rules of `scas_hub.select`, on columns.

A run selects window by window: each window is an Arrow table of whole questions (their rows
contiguous; see `scas_hub.score.scored_table.WINDOW_COLUMNS`). `ScoredWindow` turns its scored rows
into numpy arrays once; every rule is then one `np.lexsort` plus a pass over the first row (or the
chosen group) of each question. The picks are exactly those of the per-question reference
`select.pick` (a test checks every strategy on random corpora), ties and NaN costs included. The
only Python loop left is one seeded draw per question of `scas` and `random`, on integers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import SelectionError
from ..proxy import scas_score
from ..schema import COMPONENTS
from ..stats import PipelineStats
from . import SelectionConfig, question_rng

if TYPE_CHECKING:
    import pyarrow as pa


def _count(counter: Counter[str], key: str, n: int | np.integer) -> None:
    """Add `n` to `counter[key]`, leaving the key out while it is 0 (as the per-question rules count)."""
    if n:
        counter[key] += int(n)


def _floats(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


@dataclass
class ScoredWindow:
    """The scored rows of a window of whole questions, one array entry per scored row."""

    rows: np.ndarray
    """Positions of the scored rows in the window table."""
    question: np.ndarray
    """Question ordinal (0-based, window order) of each scored row."""
    n_questions: int
    """Questions in the window, with or without a scored row."""
    question_ids: list[str]
    """Id of each question of the window."""
    teacher: np.ndarray
    """Teacher code per scored row: an index into `teachers` (first-seen order)."""
    teachers: list[str]
    name_rank: np.ndarray
    """Per teacher code, its rank among `teachers` by name (the tie-break after the cost)."""
    sample: np.ndarray
    cost: np.ndarray
    """SCAS score at the run's lambda."""
    answer_nll: np.ndarray
    answer_tokens: np.ndarray

    @classmethod
    def of(cls, window: pa.Table, lam: float) -> ScoredWindow:
        """From a window table (`question_id`, `teacher`, `sample`, `scored` and the proxy components)."""
        import pyarrow.compute as pc

        n = window.num_rows
        qid = window.column("question_id").combine_chunks()
        change = pc.not_equal(qid.slice(1), qid.slice(0, max(n - 1, 0))).to_numpy(zero_copy_only=False)
        question_of_row = np.concatenate([[0], np.cumsum(change)]).astype(np.int64) if n else np.zeros(0, np.int64)
        starts = np.flatnonzero(np.concatenate([[True], change])) if n else np.zeros(0, np.int64)
        scored = window.column("scored").to_numpy(zero_copy_only=False).astype(bool)
        rows = np.flatnonzero(scored)
        picked = window.select(["teacher", "sample", *COMPONENTS]).take(rows)
        encoded = picked.column("teacher").combine_chunks().dictionary_encode()
        teachers = encoded.dictionary.to_pylist()
        name_rank = np.empty(len(teachers), np.int64)
        name_rank[sorted(range(len(teachers)), key=teachers.__getitem__)] = np.arange(len(teachers))
        nll = _floats(picked, "answer_mean_nll")
        return cls(
            rows=rows,
            question=question_of_row[rows],
            n_questions=len(starts),
            question_ids=qid.take(starts).to_pylist(),
            teacher=encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64),
            teachers=teachers,
            name_rank=name_rank,
            sample=picked.column("sample").to_numpy(zero_copy_only=False).astype(np.int64),
            cost=scas_score(
                nll, _floats(picked, "question_mean_nll"), _floats(picked, "sim_aa"), _floats(picked, "sim_aq"), lam
            ),
            answer_nll=nll,
            answer_tokens=picked.column("n_answer_tokens").to_numpy(zero_copy_only=False).astype(np.int64),
        )

    # ---- orderings ------------------------------------------------------------------------------

    def _cost_keys(self, cost: np.ndarray) -> list[np.ndarray]:
        """`select.cost_key` as lexsort keys, most significant first: NaN last, cost, teacher name, sample."""
        nan = np.isnan(cost)
        return [nan, np.where(nan, 0.0, cost), self.name_rank[self.teacher], self.sample]

    def _firsts(self, subset: np.ndarray, keys: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Within each question, the first of the scored rows `subset` by `keys` (most significant
        first): `(question ordinals, scored-row indices)`."""
        q = self.question[subset]
        perm = np.lexsort([k[subset] for k in reversed(keys)] + [q]) if len(keys) else np.argsort(q, kind="stable")
        sq = q[perm]
        first = np.flatnonzero(np.concatenate([[True], sq[1:] != sq[:-1]])) if len(sq) else perm[:0]
        return sq[first], subset[perm[first]]

    def _groups(self, keys: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scored rows sorted by (question, `keys`): `(permutation, start of each question's run, run lengths)`."""
        perm = np.lexsort([*reversed(keys), self.question])
        sq = self.question[perm]
        starts = np.flatnonzero(np.concatenate([[True], sq[1:] != sq[:-1]])) if len(sq) else perm[:0]
        counts = np.diff(np.concatenate([starts, [len(sq)]]))
        return perm, starts, counts

    def _draw(self, question: np.ndarray, counts: np.ndarray, seed: int) -> np.ndarray:
        """One seeded draw in `range(count)` per question, as `select.pick`'s `rng.choice(members)`."""
        out = np.zeros(len(counts), np.int64)
        for i in np.flatnonzero(counts > 1):  # a draw among one is always 0
            out[i] = question_rng(seed, self.question_ids[question[i]]).choice(range(int(counts[i])))
        return out

    # ---- rules ------------------------------------------------------------------------------------

    def all_rows(self) -> np.ndarray:
        return np.arange(len(self.rows))

    def lowest_cost(self) -> tuple[np.ndarray, np.ndarray]:
        """`argmin`: per question with a scored row, the lowest SCAS score."""
        return self._firsts(self.all_rows(), self._cost_keys(self.cost))

    def lowest_nll(self) -> tuple[np.ndarray, np.ndarray]:
        """`lowest-nll`: the lowest answer mean NLL (ties as for the cost)."""
        return self._firsts(self.all_rows(), self._cost_keys(self.answer_nll))

    def first_teacher(self, order: Sequence[str], others_by_name: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The lowest-score answer of the first teacher in `order` that answered; with
        `others_by_name`, teachers outside `order` follow it by name (else they are never picked)."""
        position = {t: i for i, t in enumerate(order)}
        outside = len(order)
        by_code = [
            position.get(t, outside + int(self.name_rank[i]) if others_by_name else outside)
            for i, t in enumerate(self.teachers)
        ]
        rank = np.array(by_code, np.int64)[self.teacher]
        subset = np.arange(len(self.rows)) if others_by_name else np.flatnonzero(rank < len(order))
        return self._firsts(subset, [rank, *self._cost_keys(self.cost)])

    def uniform(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """`random`: a seeded draw among a question's rows ordered by (teacher name, sample)."""
        perm, starts, counts = self._groups([self.name_rank[self.teacher], self.sample])
        questions = self.question[perm[starts]]
        return questions, perm[starts + self._draw(questions, counts, seed)]

    def group_sample(self, config: SelectionConfig, stats: PipelineStats) -> tuple[np.ndarray, np.ndarray]:
        """`scas`: rank k of M falls in group ceil(k*G/M); a seeded draw in the chosen group, with
        the small-question policy where that group is empty (M < G)."""
        perm, starts, counts = self._groups(self._cost_keys(self.cost))
        questions = self.question[perm[starts]]
        if not len(starts):
            return questions, perm
        runs = np.repeat(np.arange(len(starts)), counts)
        k = np.arange(len(perm)) - starts[runs] + 1
        m = counts[runs]
        g = config.groups
        group = (k * g + m - 1) // m  # ceil(k * G / M), in integers
        if config.small_policy == "nearest":
            # the non-empty group nearest to the one asked for; the lower one on a tie
            distance = np.abs(group - config.group) * (g + 1) + group
            best = np.minimum.reduceat(distance, starts)
            member = distance == best[runs]
            _count(stats.policy_applied, "nearest_group", np.count_nonzero(best != config.group))
        else:
            member = group == config.group
        n_members = np.add.reduceat(member.astype(np.int64), starts)
        first = np.minimum.reduceat(np.where(member, np.arange(len(perm)), len(perm)), starts)
        keep = n_members > 0
        _count(stats.questions_dropped, "fewer_candidates_than_groups", np.count_nonzero(~keep))
        questions, first, n_members = questions[keep], first[keep], n_members[keep]
        return questions, perm[first + self._draw(questions, n_members, config.seed)]


@dataclass
class WindowSelection:
    """What selection chose in one window: one scored-row index per selected question (question order)."""

    window: ScoredWindow
    winners: np.ndarray
    """Indices into the window's scored rows."""

    @property
    def selected_rows(self) -> np.ndarray:
        """Positions of the selected rows in the window table."""
        return self.window.rows[self.winners]


def select_window(
    window: ScoredWindow, config: SelectionConfig, stats: PipelineStats, order: Sequence[str] | None = None
) -> WindowSelection:
    """Select one candidate per question of `window`, counting every question and drop in `stats`.

    Args:
        order: for `teacher:<name>` and `strongest`, the teachers to pick from, best first
            (`select.teacher_order`).
    """
    base, _, arg = config.strategy.partition(":")
    stats.questions_in += window.n_questions
    with_scored = len(np.unique(window.question))
    _count(stats.questions_dropped, "no_valid_candidate", window.n_questions - with_scored)
    if base == "scas":
        _, winners = window.group_sample(config, stats)
    elif base == "argmin":
        _, winners = window.lowest_cost()
    elif base == "lowest-nll":
        _, winners = window.lowest_nll()
    elif base == "random":
        _, winners = window.uniform(config.seed)
    elif base in {"teacher", "strongest"}:
        _, winners = window.first_teacher(list(order or [arg]))
        _count(stats.questions_dropped, "teacher_has_no_valid_answer", with_scored - len(winners))
    else:
        raise SelectionError(f"unknown strategy {config.strategy!r}")
    stats.questions_selected += len(winners)
    return WindowSelection(window, winners)
