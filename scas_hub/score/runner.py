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
import os
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..constants import score_cache_dir
from ..progress import progress_bars_enabled
from ..records import Question
from ..stats import PipelineStats
from .cache import SCORER_VERSION, ScoreCache, apply_outcome, candidate_digest, outcome_of, scoring_key, shard_name
from .engine import ScoringConfig, StudentScorer, pending_candidates, pending_chars, plan_windows
from .regions import chat_template_sha256
from .students import load_student, load_tokenizer, resolve_dtype, resolve_student, tokenizer_digest


@dataclass
class ScoreReport:
    """Facts for the card: the student as scored, cache use, and per-rank figures."""

    student: dict[str, Any]
    """name, repo_id, revision, dtype, device, processes, `chat_template_sha256` (of the template the
    candidates were rendered with, `regions.chat_template_sha256`) and `chat_template_override`."""
    from_cache: int = 0
    ranks: list[dict[str, Any]] = field(default_factory=list)


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

    def __init__(self, state, folder: Path | None, total: int, enabled: bool):
        self.state, self.folder = state, folder
        self.start = time.perf_counter()
        self.bar = tqdm(total=total, unit="ans", desc="scoring",
                        disable=not (enabled and state.is_main_process))
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
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"done": self.done, "tokens": self.tokens, "finished": finished}))
        tmp.replace(path)

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


def score_corpus(
    questions: list[Question],
    student: str,
    stats: PipelineStats,
    *,
    dtype: str = "auto",
    device: str | None = None,
    scoring: ScoringConfig | None = None,
    revision: str | None = None,
    score_cache: str | Path | None | bool = True,
) -> ScoreReport | None:
    """Score every pending candidate, across all processes of an `accelerate launch` if any.

    Args:
        score_cache: `True` for the default folder under the scas-hub cache, a path, or
            `False`/`None` to disable caching (and resuming).

    Returns:
        On the main process, a `ScoreReport` (records updated, `stats` counted); `None` elsewhere.
    """
    from accelerate import PartialState

    scoring = scoring or ScoringConfig()
    # `accelerate launch` tells CPU ranks apart only through this flag (Accelerator reads it too)
    on_cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in {"1", "true", "yes"}
    state = PartialState(cpu=on_cpu, timeout=timedelta(hours=48))
    with state.main_process_first():  # the main process downloads or converts the student first
        resolved = resolve_student(student, revision)
    if device is None:
        device = str(state.device)
    dtype = resolve_dtype(dtype, device)
    truncate_to = scoring.max_length if scoring.truncate else None
    # the tokenizer is read up front: a missing chat template fails before any work, and the key
    # covers what renders the text (every tokenizer file and the template itself, override or not)
    tokenizer = load_tokenizer(resolved)
    template_sha = chat_template_sha256(tokenizer, scoring.chat_template)
    key = scoring_key(engine=SCORER_VERSION, repo_id=resolved.repo_id, revision=resolved.revision, dtype=dtype,
                      feature_module=scoring.feature_module, feature_layer=scoring.feature_layer,
                      truncate_to=truncate_to, tokenizer=tokenizer_digest(resolved.path),
                      chat_template_sha256=template_sha)
    if score_cache is True:
        folder: Path | None = score_cache_dir() / key
    elif score_cache:
        folder = Path(score_cache) / key
    else:
        folder = None
    cache = ScoreCache(folder)

    pending = [c for q in questions for c in pending_candidates(q)]
    known = cache.load()
    from_cache = 0
    for c in pending:
        outcome = known.get(candidate_digest(c, truncate_to))
        if outcome is not None:
            apply_outcome(c, outcome)
            from_cache += 1
    windows = list(plan_windows(questions, scoring.window_chars))
    mine = assign_windows([pending_chars(w) for w in windows], state.num_processes)[state.process_index]
    progress = _Progress(state, folder, total=len(pending) - from_cache,
                         enabled=scoring.progress and progress_bars_enabled())

    scorer, local, scratch = None, {}, PipelineStats()
    started = time.perf_counter()
    for index in mine:
        todo = [c for q in windows[index] for c in pending_candidates(q)]
        if not todo:
            continue
        if scorer is None:
            model, _, _, _ = load_student(resolved, dtype=dtype, device=device, tokenizer=tokenizer)
            scorer = StudentScorer(model, tokenizer, scoring)
        scored_before = scratch.rows_scored
        scorer.score_window(windows[index], scratch, progress.update)  # the bar moves per forward pass
        outcomes = {candidate_digest(c, truncate_to): outcome_of(c) for c in todo}
        cache.write(shard_name(outcomes), outcomes)
        local.update(outcomes)
        progress.update(len(todo) - (scratch.rows_scored - scored_before), 0)  # candidates set aside
    if scorer is not None:
        scorer.close()
    rank_facts = {"rank": state.process_index, "device": device, "candidates": len(local),
                  "tokens": scratch.tokens_scored, "seconds": round(time.perf_counter() - started, 3)}
    progress.finish()

    if state.num_processes > 1:
        from accelerate.utils import gather_object

        gathered = gather_object([{"outcomes": local, "facts": rank_facts}])
    else:
        gathered = [{"outcomes": local, "facts": rank_facts}]
    if not state.is_main_process:
        return None

    merged: dict[str, Any] = {}
    for part in gathered:
        merged.update(part["outcomes"])
    for c in pending:
        if c.score is None and c.skip_reason is None:
            apply_outcome(c, merged[candidate_digest(c, truncate_to)])
    for c in pending:  # accounting on the main process only, whatever the world size
        if c.score is not None:
            stats.rows_scored += 1
            stats.rows_truncated += c.truncated
        else:
            stats.skip(c.skip_reason, c.teacher)
    ranks = sorted((p["facts"] for p in gathered), key=lambda f: f["rank"])
    stats.tokens_scored += sum(f["tokens"] for f in ranks)
    stats.scoring_seconds += max((f["seconds"] for f in ranks), default=0.0)
    stats.scores_from_cache += from_cache
    return ScoreReport(
        student={"name": resolved.name, "repo_id": resolved.public_id, "revision": resolved.revision,
                 "weights": resolved.weights, "dtype": dtype, "device": device, "processes": state.num_processes,
                 "chat_template_sha256": template_sha, "chat_template_override": scoring.chat_template is not None},
        from_cache=from_cache, ranks=ranks,
    )

