"""The scoring engine: batching, shared question prefixes, chunked LM head, feature hook.

Work runs in windows of questions. Within a window:
1. every distinct question prefix (the rendered prompt) runs once, in length-sorted token-budget
   batches; its Q-region NLL and features, its KV cache, and the log-probs of the first answer
   token are kept, since they are identical for every candidate of the question;
2. all answers of the window, sorted by length across questions (little padding), run in
   token-budget batches on top of their own question's cached prefix (per-row prefix lengths,
   masked prefix padding, explicit positions);
3. NLL is computed only at target positions, the LM head applied in chunks of bounded bytes, so
   full-vocabulary logits for a batch never exist; features are reduced to per-region means.
The proxy formula itself lives in `proxy.py`.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import torch
from tqdm.auto import tqdm

from ..errors import ConfigError, StudentError
from ..records import Candidate, Question
from ..stats import PipelineStats
from .proxy import RegionSummary, combine, unit_features
from .regions import ChatEncoder, EncodedCandidate, special_token_ids

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class ScoringConfig:
    """How to run the student; none of these change the proxy's definition."""

    token_budget: int = 8192
    """Padded tokens per forward pass (a single longer sequence still runs, alone)."""
    window_chars: int = 262_144
    """Characters of candidate text per scheduling window (about 64k tokens); answers are
    length-sorted across a window's questions. Windows depend on the corpus alone, so a window
    is scored the same way whatever the number of processes or the cache state."""
    max_length: int | None = None
    """Skip (and count) candidates whose rendered conversation has more tokens than this."""
    truncate: bool = False
    """With `max_length`: score a longer candidate's first `max_length` tokens instead (counted)."""
    feature_module: str | None = None
    """Dotted path of the feature module; `{layer}` is replaced by `feature_layer`."""
    feature_layer: int | None = None
    """Decoder layer whose MLP up-projection gives the features (default: the last)."""
    full_pass_ratio: float = 4.0
    """Answers this many times longer than their prompt run as whole sequences (plain causal
    attention, which fused kernels handle best) instead of on the cached prefix, which would save
    little there; shorter answers reuse their question's cached prefix."""
    max_padding: float = 0.1
    """Largest share of a row that may be padding: a shorter sequence starts a new batch."""
    lm_head_chunk_bytes: int = 64 * 2**20
    """Float32 logits held at once by the chunked LM head."""
    progress: bool = True

    def __post_init__(self) -> None:
        if self.truncate and self.max_length is None:
            raise ConfigError("--truncate needs --max-length N: the number of tokens to keep")
        if self.token_budget < 1 or self.window_chars < 1:
            raise ConfigError("--token-budget and --window-chars must be positive")


def pending_candidates(question: Question) -> list[Candidate]:
    """Candidates still to score: not set aside, not scored (e.g. from a cache)."""
    return [c for c in question.candidates if c.skip_reason is None and c.score is None]


def pending_chars(questions: Iterable[Question]) -> int:
    """Characters of text still to score: the size measure of windows and of rank shares."""
    return sum(len(c.system_prompt) + len(c.instruction) + len(c.answer)
               for q in questions for c in pending_candidates(q))


def plan_windows(questions: Iterable[Question], window_chars: int) -> Iterator[list[Question]]:
    """Consecutive runs of questions holding about `window_chars` characters of pending text."""
    window: list[Question] = []
    chars = 0
    for q in questions:
        window.append(q)
        chars += pending_chars([q])
        if chars >= window_chars:
            yield window
            window, chars = [], 0
    if window:
        yield window


class _FeatureCapture:
    """Forward hook that keeps the output of the feature module of the latest forward pass."""

    def __init__(self, module: torch.nn.Module):
        self.output: torch.Tensor | None = None
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        self.output = output

    def pop(self) -> torch.Tensor:
        out, self.output = self.output, None
        if out is None:
            raise StudentError("the feature module did not run during the forward pass")
        return out

    def remove(self) -> None:
        self._handle.remove()


def resolve_feature_module(model: torch.nn.Module, config: ScoringConfig) -> torch.nn.Module:
    """Find `model.layers[L-1].mlp.up_proj` (or the configured module) inside a causal LM."""
    n_layers = getattr(model.config, "num_hidden_layers", None)
    layer = config.feature_layer if config.feature_layer is not None else (
        n_layers - 1 if n_layers is not None else None)
    path = config.feature_module or "model.layers.{layer}.mlp.up_proj"
    if "{layer}" in path:
        if layer is None:
            raise StudentError("cannot tell the number of decoder layers; pass --feature-layer")
        path = path.format(layer=layer)
    try:
        return model.get_submodule(path)
    except AttributeError as err:
        raise StudentError(
            f"the student has no module {path!r}; pass --feature-module for this architecture "
            f"(a dotted path such as 'model.layers.{{layer}}.mlp.up_proj')"
        ) from err


@dataclass
class _Prefix:
    """One distinct question prefix and what all its candidates share."""

    ids: tuple[int, ...]
    items: list[tuple[Candidate, EncodedCandidate]] = field(default_factory=list)
    reused: bool = False
    """Some answer runs on this prefix's cache (the others run as whole sequences)."""
    question: RegionSummary | None = None
    first_nll: dict[int, float] = field(default_factory=dict)  # NLL of each first answer token used
    kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None  # per layer, (1, heads, P, dim)


class StudentScorer:
    """Scores candidates with one student model (see `score_questions`)."""

    def __init__(self, model, tokenizer, config: ScoringConfig | None = None, chat_template: str | None = None):
        self.model = model.eval()
        self.config = config or ScoringConfig()
        self.encoder = ChatEncoder(tokenizer, chat_template)
        self.decoder = model.get_decoder()
        self.lm_head = model.get_output_embeddings()
        self.device = next(model.parameters()).device
        self._special = frozenset(special_token_ids(tokenizer))
        self._special_on_device = torch.tensor(sorted(self._special), dtype=torch.long, device=self.device)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._capture = _FeatureCapture(resolve_feature_module(model, self.config))
        # transformers >= 5.2x renamed `past_key_values` to `cache`; support both
        params = inspect.signature(self.decoder.forward).parameters
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"

    def close(self) -> None:
        self._capture.remove()

    # ---- public API -------------------------------------------------------------------------

    def score_questions(
        self, questions: Iterable[Question], stats: PipelineStats, total_rows: int | None = None
    ) -> Iterator[Question]:
        """Attach a `ProxyComponents` to every scorable candidate; count the others in `stats`.

        Questions are yielded in input order once their window is scored.
        """
        bar = tqdm(total=total_rows, unit="ans", desc="scoring", disable=not self.config.progress)
        start, tokens = time.perf_counter(), 0
        try:
            for window in plan_windows(questions, self.config.window_chars):
                pending = sum(len(pending_candidates(q)) for q in window)
                tokens += self.score_window(window, stats)
                bar.update(pending)
                elapsed = time.perf_counter() - start
                bar.set_postfix(tok_s=f"{tokens / max(elapsed, 1e-9):,.0f}", refresh=False)
                yield from window
        finally:
            stats.scoring_seconds += time.perf_counter() - start
            bar.close()

    def score_window(self, questions: list[Question], stats: PipelineStats) -> int:
        """Score the pending candidates of these questions as one schedule; returns tokens scored."""
        return self._score_window([(q, self._encode(q, stats)) for q in questions], stats)

    # ---- scheduling ---------------------------------------------------------------------------

    def _encode(self, question: Question, stats: PipelineStats) -> list[tuple[Candidate, EncodedCandidate]]:
        pending = pending_candidates(question)
        encoded = self.encoder.encode(pending)
        self.encoder.clear_cache()
        valid = []
        for cand, enc in zip(pending, encoded, strict=True):
            reason = self._invalid_reason(enc)
            if reason == "too_long" and self.config.truncate and enc.n_prompt < self.config.max_length:
                enc = replace(enc, input_ids=enc.input_ids[: self.config.max_length])
                reason = self._invalid_reason(enc)
                cand.truncated = reason is None
                stats.rows_truncated += reason is None
            if reason:
                cand.skip_reason = reason
                stats.skip(reason, cand.teacher)
            else:
                valid.append((cand, enc))
        return valid

    def _invalid_reason(self, enc: EncodedCandidate) -> str | None:
        if self.config.max_length is not None and len(enc.input_ids) > self.config.max_length:
            return "too_long"
        if not self._special.isdisjoint(enc.answer_content_ids):
            # e.g. a literal "<|im_end|>" inside the answer would end the turn early
            return "control_tokens_in_answer"
        if not enc.answer_content_ids:
            return "no_answer_tokens"
        return None

    def _batches(self, items: list, length) -> Iterator[list]:
        """Consecutive runs of length-sorted `items` whose padded size fits the token budget and
        whose rows are at most `max_padding` padding (padded tokens are compute thrown away)."""
        batch: list = []
        for item in items:
            width = length(batch[0]) if batch else length(item)
            too_big = (len(batch) + 1) * width > self.config.token_budget
            too_short = length(item) < (1.0 - self.config.max_padding) * width
            if batch and (too_big or too_short):
                yield batch
                batch = []
            batch.append(item)
        if batch:
            yield batch

    def _whole(self, enc: EncodedCandidate) -> bool:
        """Run as one causal sequence: the answer is so much longer than its prompt that reusing
        the cached prompt would save little and cost the masked (slower) attention path."""
        return len(enc.answer_ids) >= self.config.full_pass_ratio * enc.n_prompt

    @torch.inference_mode()
    def _score_window(self, window: list[tuple[Question, list]], stats: PipelineStats) -> int:
        prefixes: dict[tuple[str, tuple[int, ...]], _Prefix] = {}
        for q, items in window:
            for cand, enc in items:
                g = prefixes.setdefault((q.question_id, enc.prefix), _Prefix(enc.prefix))
                g.items.append((cand, enc))
                g.reused |= not self._whole(enc)
        groups = sorted(prefixes.values(), key=lambda g: len(g.ids), reverse=True)
        for batch in self._batches(groups, lambda g: len(g.ids)):
            self._run_prefixes(batch)
        answers = [(cand, enc, g) for g in groups if g.question is not None for cand, enc in g.items]
        for g in groups:
            if g.question is None:
                for cand, _ in g.items:
                    cand.skip_reason = "no_question_tokens"
                    stats.skip("no_question_tokens", cand.teacher)
        tokens = 0
        for whole, run, length in [(True, self._run_whole, lambda x: len(x[1].input_ids)),
                                   (False, self._run_answers, lambda x: len(x[1].answer_ids))]:
            items = sorted((a for a in answers if self._whole(a[1]) == whole), key=length, reverse=True)
            for batch in self._batches(items, length):
                for (cand, _, _), comps in zip(batch, run(batch), strict=True):
                    cand.score = comps
                stats.rows_scored += len(batch)
                tokens += sum(len(enc.input_ids) for _, enc, _ in batch)
        stats.tokens_scored += tokens
        return tokens

    # ---- forward passes -----------------------------------------------------------------------

    def _target_nll(self, hidden_rows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """NLL of `targets` given the final hidden states that predict them; LM head in chunks."""
        out = torch.empty(targets.shape[0], dtype=torch.float32, device=hidden_rows.device)
        vocab = self.lm_head.weight.shape[0]
        step = max(1, self.config.lm_head_chunk_bytes // (4 * vocab))
        for i in range(0, targets.shape[0], step):
            logits = self.lm_head(hidden_rows[i : i + step]).float()
            target_logit = logits.gather(1, targets[i : i + step, None]).squeeze(1)
            out[i : i + step] = torch.logsumexp(logits, dim=-1) - target_logit
        return out

    def _pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.bool)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = True
        return ids.to(self.device), mask.to(self.device)

    def _region_means(self, features: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
        """Per-row mean unit feature over the positions in `region` (b, t) -> (b, d), float32."""
        weights = region.float() / region.sum(dim=1).clamp_min(1)[:, None]
        return torch.einsum("bt,btd->bd", weights, unit_features(features))

    def _run_prefixes(self, groups: list[_Prefix]) -> None:
        ids, valid = self._pad([list(g.ids) for g in groups])
        out = self.decoder(input_ids=ids, attention_mask=valid.long(), use_cache=True)
        hidden, features = out.last_hidden_state, self._capture.pop()
        cache = out.get("cache", None)
        if cache is None:
            cache = out.past_key_values
        in_q = valid & ~torch.isin(ids, self._special_on_device)
        has_nll = in_q.clone()
        has_nll[:, 0] = False  # position 0 has no NLL
        rows, cols = has_nll.nonzero(as_tuple=True)
        nll = self._target_nll(hidden[rows, cols - 1], ids[rows, cols])
        nll_sum = torch.zeros(len(groups), dtype=torch.float32, device=self.device).index_add_(0, rows, nll)
        counts = has_nll.sum(dim=1)
        mean_u = self._region_means(features, in_q)
        lengths = valid.sum(dim=1)
        last = hidden[torch.arange(len(groups), device=self.device), lengths - 1]
        first_logp = torch.log_softmax(self.lm_head(last).float(), dim=-1)
        layers = [(layer.keys, layer.values) for layer in cache.layers]
        for i, g in enumerate(groups):
            if int(counts[i]) == 0:
                continue
            p = int(lengths[i])
            g.question = RegionSummary(float(nll_sum[i] / counts[i]), mean_u[i], int(counts[i]))
            if g.reused:
                firsts = sorted({enc.answer_ids[0] for _, enc in g.items})
                g.first_nll = dict(zip(firsts, (-first_logp[i, firsts]).tolist(), strict=True))
                g.kv = [(k[i : i + 1, :, :p].clone(), v[i : i + 1, :, :p].clone()) for k, v in layers]

    def _batched_cache(self, groups: list[_Prefix]):
        """Stack the rows' prefix caches, right-padded to the longest prefix."""
        from transformers import DynamicCache

        width = max(len(g.ids) for g in groups)
        data = []
        for layer in range(len(groups[0].kv)):
            k0, v0 = groups[0].kv[layer]
            keys = k0.new_zeros((len(groups), k0.shape[1], width, k0.shape[3]))
            values = v0.new_zeros((len(groups), v0.shape[1], width, v0.shape[3]))
            for i, g in enumerate(groups):
                k, v = g.kv[layer]
                keys[i, :, : k.shape[2]] = k[0]
                values[i, :, : v.shape[2]] = v[0]
            data.append((keys, values))
        return DynamicCache(data), width

    def _run_whole(self, batch: list[tuple[Candidate, EncodedCandidate, _Prefix]]):
        """Answers run with their prompt as one causal sequence; only A-region targets get NLL."""
        ids, valid = self._pad([enc.input_ids for _, enc, _ in batch])
        mask = None if bool(valid.all()) else valid.long()  # no mask: the fused causal kernel
        out = self.decoder(input_ids=ids, attention_mask=mask)
        hidden, features = out.last_hidden_state, self._capture.pop()
        del out
        n_prompt = torch.tensor([enc.n_prompt for _, enc, _ in batch], device=self.device)
        positions = torch.arange(ids.shape[1], device=self.device)[None, :]
        in_a = valid & (positions >= n_prompt[:, None]) & ~torch.isin(ids, self._special_on_device)
        rows, cols = in_a.nonzero(as_tuple=True)
        nll = self._target_nll(hidden[rows, cols - 1], ids[rows, cols])
        nll_sum = torch.zeros(len(batch), dtype=torch.float32, device=self.device).index_add_(0, rows, nll)
        counts = in_a.sum(dim=1)
        mean_u = self._region_means(features, in_a)
        for i, (_, _, g) in enumerate(batch):
            answer = RegionSummary(float(nll_sum[i] / counts[i]), mean_u[i], int(counts[i]))
            yield combine(answer, g.question)

    def _run_answers(self, batch: list[tuple[Candidate, EncodedCandidate, _Prefix]]):
        groups = [g for _, _, g in batch]
        answers, valid = self._pad([enc.answer_ids for _, enc, _ in batch])
        cache, width = self._batched_cache(groups)
        prefix_len = torch.tensor([len(g.ids) for g in groups], device=self.device)
        prefix_mask = torch.arange(width, device=self.device)[None, :] < prefix_len[:, None]
        attention = torch.cat([prefix_mask, valid], dim=1).long()
        positions = prefix_len[:, None] + torch.arange(answers.shape[1], device=self.device)[None, :]
        out = self.decoder(input_ids=answers, attention_mask=attention, position_ids=positions, use_cache=True,
                           **{self._cache_kwarg: cache})
        hidden, features = out.last_hidden_state, self._capture.pop()
        del cache, out

        in_a = valid & ~torch.isin(answers, self._special_on_device)
        counts = in_a.sum(dim=1)
        # first answer token: predicted by the prefix's last position
        first_nll = torch.tensor([g.first_nll[enc.answer_ids[0]] for _, enc, g in batch], device=self.device)
        nll_sum = torch.where(in_a[:, 0], first_nll, torch.zeros_like(first_nll))
        # the rest: predicted by the previous answer position
        rows, cols = in_a[:, 1:].nonzero(as_tuple=True)
        if rows.numel():
            nll_sum = nll_sum.index_add(0, rows, self._target_nll(hidden[rows, cols], answers[rows, cols + 1]))
        mean_u = self._region_means(features, in_a)
        for i, g in enumerate(groups):
            answer = RegionSummary(float(nll_sum[i] / counts[i]), mean_u[i], int(counts[i]))
            yield combine(answer, g.question)
