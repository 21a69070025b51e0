"""Where scoring runs: one process or many (`accelerate launch`), resumable through the score cache.

What is computed lives in `engine.py`; this module decides who computes which window:
- the corpus is cut into windows of whole questions (`plan_windows`, from the text alone);
- windows are dealt to ranks by size (largest first, to the least loaded rank), so all candidates
  of a question stay on one rank and a window is scored identically whatever the world size;
- each rank writes every scored window to the score cache atomically, then results are gathered
  on the main process, which applies them to its records and does the accounting.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from ..atomic import write_text_atomic
from ..constants import score_cache_dir
from ..distributed import distributed_state
from ..progress import progress_bars_enabled
from ..records import Question
from ..schema import candidate_digest, outcome_schema
from ..stats import PipelineStats
from ..student.chat import chat_template_sha256
from ..student.config import StudentConfig
from ..student.loading import load_student, load_tokenizer, resolve_dtype, resolve_student, tokenizer_digest
from ..verify.table import CandidateTable
from .cache import (
    SCORER_VERSION,
    ScoreCache,
    apply_outcome,
    outcomes_table,
    scoring_key,
    shard_name,
)
from .engine import ScoringConfig, StudentScorer

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    from accelerate import PartialState
    from transformers import PreTrainedTokenizerBase

    from ..student.loading import ResolvedStudent


@dataclass
class ScoreReport:
    """Facts for the card: the student as scored, cache use, and per-rank figures."""

    student: dict[str, Any]
    """name, repo_id, revision, dtype, device, processes, `chat_template_sha256` (of the template the
    candidates were rendered with, `student.chat.chat_template_sha256`) and `chat_template_override`."""
    from_cache: int = 0
    ranks: list[dict[str, Any]] = field(default_factory=list)
    scores: Any = None
    """One outcome per candidate-table row (`cache.outcome_schema`; null where set aside before scoring)."""


def assign_windows(sizes: list[int], world_size: int) -> list[list[int]]:
    """Window indices per rank: largest first to the least loaded rank (ties: lowest rank)."""
    loads = [0] * world_size
    out: list[list[int]] = [[] for _ in range(world_size)]
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        rank = min(range(world_size), key=lambda r: (loads[r], r))
        loads[rank] += sizes[i]
        out[rank].append(i)
    return [sorted(ix) for ix in out]


class _Progress:
    """One bar on the main process; other ranks report through small files in the cache folder."""

    def __init__(self, state: PartialState, folder: Path | None, total: int, enabled: bool):
        self.state, self.folder = state, folder
        self.start = time.perf_counter()
        self.bar = tqdm(
            total=total, unit="ans", desc="scoring", disable=not (enabled and state.is_main_process and total)
        )  # nothing to score: no bar
        self.done = self.tokens = 0
        self._write(finished=False)

    def _file(self, rank: int) -> Path | None:
        """Progress files exist only to show other ranks' work on rank 0's bar."""
        if self.folder is None or self.state.num_processes == 1:
            return None
        return self.folder / ".progress" / f"rank-{rank}.json"

    def _write(self, finished: bool) -> None:
        path = self._file(self.state.process_index)
        if path is None:
            return
        write_text_atomic(
            path,
            json.dumps({"done": self.done, "tokens": self.tokens, "finished": finished}),
            tmp=path.with_suffix(".tmp"),
        )

    def _others(self) -> list[dict]:
        out = []
        for r in range(self.state.num_processes):
            path = self._file(r)
            if r != self.state.process_index and path is not None and path.exists():
                try:
                    out.append(json.loads(path.read_text()))
                except (OSError, json.JSONDecodeError):
                    continue
        return out

    def update(self, done: int, tokens: int) -> None:
        self.done += done
        self.tokens += tokens
        self._write(finished=False)
        self.refresh()

    def refresh(self) -> list[dict]:
        others = self._others()
        n = self.done + sum(o["done"] for o in others)
        tokens = self.tokens + sum(o["tokens"] for o in others)
        self.bar.n = min(n, self.bar.total or n)
        rate = tokens / max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix(tok_s=f"{rate:,.0f}", refresh=True)
        return others

    def finish(self) -> None:
        self._write(finished=True)
        if self.state.is_main_process and self._file(0) is not None:
            # keep the bar moving while other ranks finish (their files live on the shared cache folder)
            while True:
                others = self.refresh()
                if len(others) < self.state.num_processes - 1 or all(o["finished"] for o in others):
                    break
                time.sleep(1.0)
        self.bar.close()


def plan_table_windows(question_chars: np.ndarray, window_chars: int) -> list[tuple[int, int]]:
    """Question ranges `[start, stop)` holding about `window_chars` characters of pending text
    each (as `engine.plan_windows` cuts a list of questions)."""
    windows, start, chars = [], 0, 0
    for q, n in enumerate(question_chars.tolist()):
        chars += n
        if chars >= window_chars:
            windows.append((start, q + 1))
            start, chars = q + 1, 0
    if start < len(question_chars):
        windows.append((start, len(question_chars)))
    return windows


def _lookup(digests: np.ndarray, known: pa.Table) -> np.ndarray:
    """Row of `known` (an outcome table) for each digest, -1 where it has none."""
    import numpy as np

    if not known.num_rows or not len(digests):
        return np.full(len(digests), -1, dtype=np.int64)
    keys = np.asarray(known.column("content_digest").to_numpy(zero_copy_only=False), dtype="S16")
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    at = np.searchsorted(sorted_keys, digests).clip(0, len(keys) - 1)
    return np.where(sorted_keys[at] == digests, order[at], -1)


@dataclass(frozen=True)
class ScoringPlan:
    """What a scoring run does, decided from the table and the cache alone (no model): which rows are
    usable, which the cache already holds, and the windows of whole questions each rank scores."""

    digests: Any
    """Content digest per table row (numpy `S16`)."""
    usable: Any
    """Per row: not set aside before scoring (numpy bool)."""
    pending: Any
    """Per row: usable and not in the cache, so scored by this run (numpy bool)."""
    from_cache: int
    windows: list[tuple[int, int]]
    """Question ranges `[start, stop)`, about `window_chars` pending characters each."""
    sizes: list[int]
    """Pending characters per window."""
    assignment: list[list[int]]
    """Window indices per rank."""


def plan_scoring(table: CandidateTable, known: pa.Table, window_chars: int, world_size: int) -> ScoringPlan:
    """Plan a scoring run over `table` given the cached outcomes `known`: pure, no model or process group."""
    import numpy as np

    columns = table.table.select(["skip_reason", "content_digest", "chars"])
    usable = columns.column("skip_reason").is_null().to_numpy(zero_copy_only=False)
    digests = np.asarray(columns.column("content_digest").to_numpy(zero_copy_only=False), dtype="S16")
    cached_row = _lookup(digests, known)
    cached = usable & (cached_row >= 0)
    pending = usable & ~cached
    # pending characters per question -> windows of whole questions, dealt to ranks by size
    chars = np.where(pending, columns.column("chars").to_numpy(), 0)
    n_assigned = int(table.question_starts[-1])
    per_question = (
        np.add.reduceat(chars[:n_assigned], table.question_starts[:-1])
        if table.n_questions
        else np.zeros(0, dtype=np.int64)
    )
    per_question = np.where(np.diff(table.question_starts) > 0, per_question, 0)
    windows = plan_table_windows(per_question, window_chars)
    sizes = [int(per_question[a:b].sum()) for a, b in windows]
    return ScoringPlan(
        digests=digests,
        usable=usable,
        pending=pending,
        from_cache=int(cached.sum()),
        windows=windows,
        sizes=sizes,
        assignment=assign_windows(sizes, world_size),
    )


def score_windows(
    plan: ScoringPlan,
    rank: int,
    table: CandidateTable,
    load_scorer: Callable[[], StudentScorer],
    cache: ScoreCache,
    progress: _Progress,
    scratch: PipelineStats,
) -> pa.Table:
    """Score this rank's windows of `plan` (the model is loaded by `load_scorer` on the first window
    with work); each window's outcomes are written to the cache as they finish. Returns them all."""
    import pyarrow as pa

    scorer, parts = None, []
    for index in plan.assignment[rank]:
        first_q, stop_q = plan.windows[index]
        if not plan.sizes[index]:
            continue
        first_row, _ = table.question_rows(first_q, stop_q)
        questions = table.questions(first_q, stop_q)
        todo: list = []
        offset = first_row
        for q in questions:  # keep only what this run scores (set-aside and cached rows drop out)
            keep = [c for i, c in enumerate(q.candidates, offset) if plan.pending[i]]
            offset += len(q.candidates)
            q.candidates = keep
            todo.extend(keep)
        if scorer is None:
            scorer = load_scorer()
        scored_before = scratch.rows_scored
        scorer.score_window([q for q in questions if q.candidates], scratch, progress.update)
        outcomes = outcomes_table(todo, [candidate_digest(c) for c in todo])
        cache.write(shard_name(outcomes.column("content_digest").to_pylist()), outcomes)
        parts.append(outcomes)
        progress.update(len(todo) - (scratch.rows_scored - scored_before), 0)  # candidates set aside
        del questions, todo
        table.release()
    if scorer is not None:
        scorer.close()
    return pa.concat_tables(parts) if parts else outcome_schema().empty_table()


def merge_outcomes(
    plan: ScoringPlan, known: pa.Table, gathered: list[dict[str, Any]], table: CandidateTable, stats: PipelineStats
) -> tuple[pa.Table, list[dict[str, Any]]]:
    """One outcome per table row from the cache and every rank's outcomes (null where set aside
    before scoring), counted into `stats`; with the ranks' facts, by rank."""
    import numpy as np
    import pyarrow as pa

    usable = plan.usable
    merged = pa.concat_tables([known, *(part["outcomes"] for part in gathered)])
    row = _lookup(plan.digests, merged)
    if (usable & (row < 0)).any():
        raise RuntimeError(f"{int((usable & (row < 0)).sum())} candidates were neither cached nor scored by any rank")
    scores = merged.take(pa.array(np.where(usable, row, 0).clip(0), pa.int64())) if merged.num_rows else None
    scores = _null_unless(scores, usable, table.n_rows)
    skip = scores.column("skip").to_pylist()
    teachers = table.table.column("teacher")
    for i in np.flatnonzero(usable).tolist():  # accounting on the main process, whatever the world size
        if skip[i] is None:
            stats.rows_scored += 1
        else:
            stats.skip(skip[i], teachers[i].as_py())
    stats.rows_truncated += int(np.asarray(scores.column("truncated").to_numpy(zero_copy_only=False), dtype=bool).sum())
    ranks = sorted((p["facts"] for p in gathered), key=lambda f: f["rank"])
    stats.tokens_scored += sum(f["tokens"] for f in ranks)
    stats.scoring_seconds += max((f["seconds"] for f in ranks), default=0.0)
    stats.scores_from_cache += plan.from_cache
    return scores, ranks


def score_table(
    table: CandidateTable,
    student: str | StudentConfig,
    stats: PipelineStats,
    *,
    scoring: ScoringConfig | None = None,
) -> ScoreReport | None:
    """Score every usable candidate of a candidate table, across all processes of an
    `accelerate launch` if any. A rank reads its windows as row ranges of the (memory-mapped)
    table and holds Python objects only for the window it scores; only scores cross ranks.

    Steps: `_settle` (the student, dtype, length and cache folder); `plan_scoring` (no model);
    `score_windows` (this rank's share); `_gather`; `merge_outcomes` on the main process.

    Args:
        student: a name or a `StudentConfig`; its chat template, when set, renders instead of
            `scoring.chat_template`.
        scoring: how to score; `scoring.score_cache` is `True` for the default folder under the
            scas-hub cache, a path, or `False`/`None` to disable caching (and resuming).

    Returns:
        On the main process, a `ScoreReport` whose `scores` hold one outcome per table row (null
        for rows set aside before scoring), with `stats` counted; `None` elsewhere.
    """
    state = distributed_state()
    run = _settle(StudentConfig.of(student), scoring or ScoringConfig(), state)
    cache = ScoreCache(run.cache_folder)
    known = cache.load()
    plan = plan_scoring(table, known, run.scoring.window_chars, state.num_processes)

    def load_scorer() -> StudentScorer:
        model, _, _, _ = load_student(run.resolved, dtype=run.dtype, device=run.device, tokenizer=run.tokenizer)
        return StudentScorer(model, run.tokenizer, run.scoring)

    progress = _Progress(
        state,
        run.cache_folder,
        total=int(plan.pending.sum()),
        enabled=run.scoring.progress and progress_bars_enabled(),
    )
    scratch = PipelineStats()
    started = time.perf_counter()
    local = score_windows(plan, state.process_index, table, load_scorer, cache, progress, scratch)
    rank_facts = {
        "rank": state.process_index,
        "device": run.device,
        "candidates": local.num_rows,
        "tokens": scratch.tokens_scored,
        "seconds": round(time.perf_counter() - started, 3),
    }
    progress.finish()
    gathered = _gather(state, {"outcomes": local, "facts": rank_facts})
    if gathered is None:
        return None
    scores, ranks = merge_outcomes(plan, known, gathered, table, stats)
    return ScoreReport(
        student=run.facts(state.num_processes),
        from_cache=plan.from_cache,
        ranks=ranks,
        scores=scores,
    )


@dataclass
class _ScoringRun:
    """What one scoring run settled before any window: the student, how it runs, and where its
    scores are cached (the key covers everything that changes a score)."""

    resolved: ResolvedStudent
    tokenizer: PreTrainedTokenizerBase
    scoring: ScoringConfig
    dtype: str
    device: str
    context: int | None
    template_sha: str
    cache_folder: Path | None

    def facts(self, processes: int) -> dict[str, Any]:
        """The student as scored, for the card (`ScoreReport.student`)."""
        return {
            "name": self.resolved.name,
            "repo_id": self.resolved.public_id,
            "revision": self.resolved.revision,
            "weights": self.resolved.weights,
            "dtype": self.dtype,
            "device": self.device,
            "processes": processes,
            "chat_template_sha256": self.template_sha,
            "chat_template_override": self.scoring.chat_template is not None,
            "max_length": self.scoring.max_length,
            "truncate": self.scoring.truncate,
            "context_length": self.context,
            **_lineage(self.resolved),
        }


def _settle(student: StudentConfig, scoring: ScoringConfig, state: PartialState) -> _ScoringRun:
    """Step 1 of `score_table`: resolve the student (the main process downloads or converts it
    first), its dtype and device, the scoring length, the tokenizer, and the cache folder."""
    with state.main_process_first():
        resolved = resolve_student(student.name, student.revision)
    device = student.device if student.device is not None else str(state.device)
    dtype = resolve_dtype(student.dtype, device)
    context = context_length(resolved.path)
    if student.chat_template is not None:
        scoring = replace(scoring, chat_template=student.chat_template)
    scoring = at_most(scoring, context)
    # the tokenizer is read up front: a missing chat template fails before any work, and the key
    # covers what renders the text (every tokenizer file and the template itself, override or not)
    tokenizer = load_tokenizer(resolved)
    template_sha = chat_template_sha256(tokenizer, scoring.chat_template_text)
    key = scoring_key(
        engine=SCORER_VERSION,
        repo_id=resolved.repo_id,
        revision=resolved.revision,
        dtype=dtype,
        feature_module=scoring.feature_module,
        feature_layer=scoring.feature_layer,
        truncate_to=scoring.max_length if scoring.truncate else None,
        max_length=scoring.max_length,
        tokenizer=tokenizer_digest(resolved.path),
        chat_template_sha256=template_sha,
    )
    cache = scoring.score_cache
    folder = score_cache_dir() / key if cache is True else Path(cache) / key if cache else None
    return _ScoringRun(resolved, tokenizer, scoring, dtype, device, context, template_sha, folder)


def _gather(state: PartialState, mine: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Every rank's outcomes and facts, on the main process (`None` elsewhere)."""
    if state.num_processes == 1:
        return [mine]
    from accelerate.utils import gather_object

    gathered = gather_object([mine])
    return gathered if state.is_main_process else None


def context_length(model_path: str | Path) -> int | None:
    """The positions the student was trained for (`max_position_embeddings` in its config.json), if stated."""
    try:
        config = json.loads((Path(model_path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    text_config = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    value = config.get("max_position_embeddings") or text_config.get("max_position_embeddings")
    return int(value) if isinstance(value, int) and value > 0 else None


def at_most(scoring: ScoringConfig, context: int | None) -> ScoringConfig:
    """Scoring at one max length: the one asked for (`--max-length`), at most the student's context
    length. Longer candidates are set aside as `too_long`, or cut there with `--truncate`."""
    limits = [n for n in (scoring.max_length, context) if n is not None]
    limit = min(limits) if limits else None
    return scoring if limit == scoring.max_length else replace(scoring, max_length=limit)


def _lineage(resolved: ResolvedStudent) -> dict[str, Any]:
    """For a checkpoint written by `scas-hub train`: the model its weights descend from and the round it
    was trained on, so cards name the base model rather than the checkpoint's folder."""
    facts_path = Path(resolved.path) / "training_facts.json"
    if not facts_path.is_file():
        return {}
    try:
        facts = json.loads(facts_path.read_text(encoding="utf-8"))
        base = facts.get("base_model") or facts["student"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {
        "base_model": {k: base.get(k) for k in ("name", "repo_id", "revision", "weights")},
        "trained_round": facts.get("round"),
    }


def _null_unless(scores: pa.Table | None, usable: np.ndarray, n_rows: int) -> pa.Table:
    """Outcome rows for the usable rows, nulls elsewhere (rows set aside before scoring)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    schema = outcome_schema()
    if scores is None:
        return pa.table({f.name: pa.nulls(n_rows, f.type) for f in schema}, schema=schema)
    mask = pa.array(~usable)
    return pa.table(
        {
            f.name: pc.if_else(mask, pa.scalar(None, f.type), scores.column(f.name))
            if f.name != "truncated"
            else pc.and_(pa.array(usable), scores.column(f.name))
            for f in schema
        },
        schema=schema,
    )


def score_corpus(
    questions: list[Question],
    student: str | StudentConfig,
    stats: PipelineStats,
    *,
    scoring: ScoringConfig | None = None,
) -> ScoreReport | None:
    """`score_table` for questions already held as objects: their candidates get their scores
    (or the reason the student set them aside)."""
    table = CandidateTable.from_questions(questions)
    report = score_table(table, student, stats, scoring=scoring)
    if report is None:
        return None
    outcomes = report.scores.to_pylist()
    for c, outcome in zip((c for q in questions for c in q.candidates), outcomes, strict=True):
        if c.skip_reason is None and c.score is None:
            apply_outcome(c, outcome)
    return report
