"""The scoring engine: batching, shared question prefixes, chunked LM head, feature hook.

Per question, the prompt prefix is run once (its KV cache, Q-region NLL and features are shared by
every candidate); answers then run in token-budget batches on top of the cached prefix, sorted by
length to keep padding small. NLL is computed only at target positions, with the LM head applied
in chunks, so full-vocabulary logits for a whole batch never exist. The math lives in `proxy`.
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

import torch
from tqdm.auto import tqdm

from ..errors import StudentError
from ..records import Candidate, Question
from ..stats import PipelineStats
from .proxy import RegionSummary, combine, unit_features
from .regions import ChatEncoder, EncodedCandidate, special_token_ids

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class ScoringConfig:
    """How to run the student; none of these change the proxy's definition."""

    token_budget: int = 8192
    """Padded answer tokens per forward pass (a single longer answer still runs, alone)."""
    max_length: int | None = None
    """Skip (and count) candidates whose rendered conversation has more tokens than this."""
    truncate: bool = False
    """With `max_length`: score a longer candidate's first `max_length` tokens instead (counted)."""
    feature_module: str | None = None
    """Dotted path of the feature module; `{layer}` is replaced by `feature_layer`."""
    feature_layer: int | None = None
    """Decoder layer whose MLP up-projection gives the features (default: the last)."""
    lm_head_chunk: int = 2048
    progress: bool = True


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
    if config.feature_layer is not None:
        layer = config.feature_layer
    elif n_layers is not None:
        layer = n_layers - 1
    else:
        layer = None
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


class StudentScorer:
    """Scores candidates with one student model (see `score_questions`)."""

    def __init__(self, model, tokenizer, config: ScoringConfig | None = None, chat_template: str | None = None):
        self.model = model.eval()
        self.config = config or ScoringConfig()
        self.encoder = ChatEncoder(tokenizer, chat_template)
        self.decoder = model.get_decoder()
        self.lm_head = model.get_output_embeddings()
        self.device = next(model.parameters()).device
        self.special_ids = torch.tensor(sorted(special_token_ids(tokenizer)), dtype=torch.long)
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
        """Attach a `ProxyComponents` to every scorable candidate; count the others in `stats`."""
        bar = tqdm(total=total_rows, unit="ans", desc="scoring", disable=not self.config.progress)
        start, tokens = time.perf_counter(), 0
        try:
            for question in questions:
                pending = sum(c.skip_reason is None and c.score is None for c in question.candidates)
                tokens += self.score_question(question.candidates, stats)
                bar.update(pending)
                elapsed = time.perf_counter() - start
                bar.set_postfix(tok_s=f"{tokens / max(elapsed, 1e-9):,.0f}", refresh=False)
                yield question
        finally:
            stats.scoring_seconds += time.perf_counter() - start
            bar.close()

    @torch.inference_mode()
    def score_question(self, candidates: list[Candidate], stats: PipelineStats) -> int:
        """Score the pending candidates of one question in place; returns tokens scored."""
        pending = [c for c in candidates if c.skip_reason is None and c.score is None]
        encoded = self.encoder.encode(pending)
        self.encoder.clear_cache()
        by_prefix: dict[tuple[int, ...], list[tuple[Candidate, EncodedCandidate]]] = {}
        for cand, enc in zip(pending, encoded, strict=True):
            reason = self._invalid_reason(enc)
            if reason == "too_long" and self.config.truncate and enc.n_prompt < self.config.max_length:
                enc = replace(enc, input_ids=enc.input_ids[: self.config.max_length])
                reason = self._invalid_reason(enc)
                stats.rows_truncated += reason is None
            if reason:
                cand.skip_reason = reason
                stats.skip(reason, cand.teacher)
                continue
            by_prefix.setdefault(enc.prefix, []).append((cand, enc))
        tokens = 0
        for prefix, group in by_prefix.items():
            tokens += self._score_prefix_group(prefix, group, stats)
        return tokens

    # ---- internals ----------------------------------------------------------------------------

    def _invalid_reason(self, enc: EncodedCandidate) -> str | None:
        if self.config.max_length is not None and len(enc.input_ids) > self.config.max_length:
            return "too_long"
        content = torch.tensor(enc.answer_content_ids, dtype=torch.long)
        is_special = torch.isin(content, self.special_ids)
        if bool(is_special.any()):
            # e.g. a literal "<|im_end|>" inside the answer would end the turn early
            return "control_tokens_in_answer"
        if content.numel() == 0:
            return "no_answer_tokens"
        return None

    def _target_nll(self, hidden_rows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """NLL of `targets` given the final hidden states that predict them; LM head in chunks."""
        out = torch.empty(targets.shape[0], dtype=torch.float32, device=hidden_rows.device)
        step = self.config.lm_head_chunk
        for i in range(0, targets.shape[0], step):
            logits = self.lm_head(hidden_rows[i : i + step]).float()
            logp = torch.log_softmax(logits, dim=-1)
            out[i : i + step] = -logp.gather(1, targets[i : i + step, None]).squeeze(1)
        return out

    def _score_prefix_group(
        self, prefix: tuple[int, ...], group: list[tuple[Candidate, EncodedCandidate]], stats: PipelineStats
    ) -> int:
        ids = torch.tensor([prefix], dtype=torch.long, device=self.device)
        out = self.decoder(input_ids=ids, use_cache=True)
        features = self._capture.pop()[0]
        hidden = out.last_hidden_state[0]
        not_special = ~torch.isin(ids[0], self.special_ids.to(self.device))
        nll_targets = not_special.clone()
        nll_targets[0] = False  # position 0 has no NLL
        if not bool(nll_targets.any()):
            for cand, _ in group:
                cand.skip_reason = "no_question_tokens"
                stats.skip("no_question_tokens", cand.teacher)
            return 0
        q_pos = nll_targets.nonzero().squeeze(1)
        q_nll = self._target_nll(hidden[q_pos - 1], ids[0, q_pos])
        question = RegionSummary(
            mean_nll=float(q_nll.mean()),
            mean_unit_feature=unit_features(features[not_special]).mean(dim=0),
            n_tokens=int(q_nll.numel()),
        )
        last_logp = torch.log_softmax(self.lm_head(hidden[-1:]).float(), dim=-1)[0]
        cache = out.get("cache", None)
        if cache is None:
            cache = out.past_key_values

        group = sorted(group, key=lambda ce: len(ce[1].answer_ids), reverse=True)
        tokens = 0
        for batch in self._budget_batches(group):
            scores = self._score_answers(batch, cache, last_logp, question)
            for (cand, _), comps in zip(batch, scores, strict=True):
                cand.score = comps
                stats.rows_scored += 1
            tokens += sum(len(enc.input_ids) for _, enc in batch)
        stats.tokens_scored += tokens
        return tokens

    def _budget_batches(self, group):
        batch: list = []
        for item in group:
            width = len(batch[0][1].answer_ids) if batch else len(item[1].answer_ids)
            if batch and (len(batch) + 1) * width > self.config.token_budget:
                yield batch
                batch = []
            batch.append(item)
        if batch:
            yield batch

    def _score_answers(self, batch, prefix_cache, last_logp: torch.Tensor, question: RegionSummary):
        n_prefix = len(batch[0][1].prefix)
        width = max(len(enc.answer_ids) for _, enc in batch)
        answers = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        valid = torch.zeros((len(batch), width), dtype=torch.bool)
        for i, (_, enc) in enumerate(batch):
            answers[i, : len(enc.answer_ids)] = torch.tensor(enc.answer_ids)
            valid[i, : len(enc.answer_ids)] = True
        answers, valid = answers.to(self.device), valid.to(self.device)
        attention = torch.cat([torch.ones((len(batch), n_prefix), dtype=torch.long, device=self.device),
                               valid.long()], dim=1)
        cache = copy.deepcopy(prefix_cache)
        if len(batch) > 1:
            cache.batch_repeat_interleave(len(batch))
        out = self.decoder(input_ids=answers, attention_mask=attention, use_cache=True,
                           **{self._cache_kwarg: cache})
        hidden, features = out.last_hidden_state, self._capture.pop()
        del cache, out

        in_a = valid & ~torch.isin(answers, self.special_ids.to(self.device))  # (b, width)
        counts = in_a.sum(dim=1)
        nll_sum = torch.zeros(len(batch), dtype=torch.float32, device=self.device)
        # first answer token: predicted by the prefix's last position
        first = in_a[:, 0]
        nll_sum += torch.where(first, -last_logp[answers[:, 0]], torch.zeros_like(nll_sum))
        # the rest: predicted by the previous answer position
        rest = in_a[:, 1:]
        rows, cols = rest.nonzero(as_tuple=True)
        if rows.numel():
            nll = self._target_nll(hidden[rows, cols], answers[rows, cols + 1])
            nll_sum.index_add_(0, rows, nll)
        weights = in_a.float() / counts.clamp_min(1)[:, None]
        mean_u = torch.einsum("bt,btd->bd", weights, unit_features(features))
        for i in range(len(batch)):
            answer = RegionSummary(
                mean_nll=float(nll_sum[i] / counts[i]), mean_unit_feature=mean_u[i], n_tokens=int(counts[i])
            )
            yield combine(answer, question)

