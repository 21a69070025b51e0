"""The scoring engine: padding-free packs, shared question prefixes, blocked LM head, feature hook.

Work runs in windows of questions. Within a window, candidates are laid out in packs: rows of at
most `token_budget` tokens, no padding. A pack holds units `[prompt, answer_1, ..., answer_k]`:
each question prompt once, followed by the answer tokens of its candidates, with the positions
each answer has in its own conversation. Attention (`attention.py`) lets every answer see its
prompt and itself, causally, and nothing else, so each candidate gets exactly the numbers of its
own forward pass while the prompt is computed once. Q-region statistics come from the prompt's
first appearance. NLL is computed only at target positions, by the blocked LM head (`head.py`),
so full-vocabulary logits never exist; features are reduced to per-region means. The proxy formula
itself lives in `proxy.py`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import StudentError
from ..progress import progress_bars_enabled
from ..records import Candidate, Question
from ..stats import PipelineStats
from ..student.chat import ChatEncoder, EncodedCandidate, special_token_ids
from ..student.config import DTYPE_NAMES
from . import attention
from .attention import ATTENTION, Call, FlexPlan, flex_plan, sdpa_calls
from .config import ScoringConfig
from .fusion import fused, fusible_modules
from .head import BlockedHead, measure_transform
from .proxy import RegionSummary, combine, unit_features

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase
    from transformers.modeling_outputs import BaseModelOutputWithPast

logger = logging.getLogger(__name__)

DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}


def special_mask(input_ids: torch.Tensor, special_ids: torch.Tensor) -> torch.Tensor:
    """Boolean mask of positions holding a special token (neither question nor answer)."""
    return torch.isin(input_ids, special_ids)


def pending_candidates(question: Question) -> list[Candidate]:
    """Candidates still to score: not set aside, not scored (e.g. from a cache)."""
    return [c for c in question.candidates if c.skip_reason is None and c.score is None]


def pending_chars(questions: Iterable[Question]) -> int:
    """Characters of text still to score: the size measure of windows and of rank shares."""
    return sum(
        len(c.system_prompt) + len(c.instruction) + len(c.answer) for q in questions for c in pending_candidates(q)
    )


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


# ---- packs -----------------------------------------------------------------------------------


class _FeatureCapture:
    """Forward hook that keeps the output of the feature module of the latest forward pass."""

    def __init__(self, module: torch.nn.Module):
        self.output: torch.Tensor | None = None
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, module: torch.nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
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
    layer = (
        config.feature_layer if config.feature_layer is not None else (n_layers - 1 if n_layers is not None else None)
    )
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
class _Prompt:
    """One distinct question prompt and what all its candidates share."""

    ids: tuple[int, ...]
    items: list[tuple[Candidate, EncodedCandidate]] = field(default_factory=list)
    question: RegionSummary | None = None


@dataclass
class _Unit:
    """A prompt followed by some of its answers, as laid out in a pack."""

    prompt: _Prompt
    items: list[tuple[Candidate, EncodedCandidate]] = field(default_factory=list)
    with_question: bool = False
    """The Q-region statistics come from this unit (the prompt's first appearance)."""


@dataclass
class _Pack:
    """One forward pass: token ids, positions, segments (for the attention plan) and the regions to reduce."""

    ids: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    segments: list[tuple[int, int, int]] = field(default_factory=list)
    """(rows, prompt start, prompt stop) per prompt or answer, in row order (prompts: no prompt range)"""
    questions: list[tuple[_Prompt, int]] = field(default_factory=list)  # (prompt, start row)
    answers: list[tuple[Candidate, _Prompt, int, int, int]] = field(default_factory=list)
    """(candidate, prompt, prompt start row, answer start row, answer length)"""


def _layout(units: list[_Unit]) -> _Pack:
    """Lay units out in one row: each prompt, then its answers at the positions they have in their
    own conversations; one segment per prompt and per answer."""
    pack = _Pack()
    for unit in units:
        start, p = len(pack.ids), len(unit.prompt.ids)
        pack.ids += unit.prompt.ids
        pack.positions += range(p)
        pack.segments.append((p, 0, 0))
        if unit.with_question:
            pack.questions.append((unit.prompt, start))
        for cand, enc in unit.items:  # shortest first
            n = len(enc.answer_ids)
            pack.answers.append((cand, unit.prompt, start, len(pack.ids), n))
            pack.ids += enc.answer_ids
            pack.positions += range(p, p + n)
            pack.segments.append((n, start, start + p))
    return pack


class StudentScorer:
    """Scores candidates with one student model (see `score_questions`)."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        config: ScoringConfig | None = None,
        chat_template: str | None = None,
    ):
        """`chat_template`: template text overriding both the tokenizer's and `config.chat_template`."""
        self.model = model.eval()
        self.config = config or ScoringConfig()
        self.encoder = ChatEncoder(
            tokenizer, chat_template if chat_template is not None else self.config.chat_template_text
        )
        self.decoder = model.get_decoder()
        self.lm_head = model.get_output_embeddings()
        self.device = next(model.parameters()).device
        self._special = frozenset(special_token_ids(tokenizer))
        self._special_on_device = torch.tensor(sorted(self._special), dtype=torch.long, device=self.device)
        self._capture = _FeatureCapture(resolve_feature_module(model, self.config))
        attention.register()
        on_cpu = self.device.type == "cpu"
        self._budget = self.config.token_budget or (4096 if on_cpu else 16384)
        self.head = BlockedHead(
            self.lm_head,
            rows=1024 if on_cpu else 16384,
            block_bytes=self.config.lm_head_block_bytes or (4 if on_cpu else 512) * 2**20,
            transform=measure_transform(model, self.decoder, self.lm_head),
        )
        self._fusion = fusible_modules(model) if self.config.compile else []

    def close(self) -> None:
        """Remove the feature hook."""
        self._capture.remove()

    # ---- public API -------------------------------------------------------------------------

    def score_questions(
        self, questions: Iterable[Question], stats: PipelineStats, total_rows: int | None = None
    ) -> Iterator[Question]:
        """Attach a `ProxyComponents` to every scorable candidate; count the others in `stats`.

        Questions are yielded in input order once their window is scored.
        """
        bar = tqdm(
            total=total_rows, unit="ans", desc="scoring", disable=not (self.config.progress and progress_bars_enabled())
        )
        start, tokens = time.perf_counter(), 0

        def advance(answers: int, pack_tokens: int) -> None:
            nonlocal tokens
            tokens += pack_tokens
            bar.update(answers)
            bar.set_postfix(tok_s=f"{tokens / max(time.perf_counter() - start, 1e-9):,.0f}", refresh=False)

        try:
            for window in plan_windows(questions, self.config.window_chars):
                pending = sum(len(pending_candidates(q)) for q in window)
                scored_before = stats.rows_scored
                self.score_window(window, stats, advance)
                bar.update(pending - (stats.rows_scored - scored_before))  # the skipped ones
                yield from window
        finally:
            stats.scoring_seconds += time.perf_counter() - start
            bar.close()

    def score_window(
        self, questions: list[Question], stats: PipelineStats, on_pack: Callable[[int, int], None] | None = None
    ) -> int:
        """Score the pending candidates of these questions as one schedule; returns tokens scored.

        `on_pack(candidates, tokens)` is called after each forward pass (for progress bars)."""
        return self._score_window([(q, self._encode(q, stats)) for q in questions], stats, on_pack)

    # ---- scheduling ---------------------------------------------------------------------------

    def _encode(self, question: Question, stats: PipelineStats) -> list[tuple[Candidate, EncodedCandidate]]:
        pending = pending_candidates(question)
        encoded = self.encoder.encode(pending)
        self.encoder.clear_cache()
        valid = []
        for cand, enc in zip(pending, encoded, strict=True):
            reason = self._invalid_reason(enc)
            max_length = self.config.max_length
            if reason == "too_long" and self.config.truncate and max_length is not None and enc.n_prompt < max_length:
                enc = replace(enc, input_ids=enc.input_ids[:max_length])
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
        if all(t in self._special for t in enc.prefix[1:]):  # position 0 has no NLL
            return "no_question_tokens"
        return None

    def _units(self, prompts: list[_Prompt]) -> Iterator[list[_Unit]]:
        """Packs of units, filled in order up to the token budget (no padding to minimise, so
        order does not matter); a prompt whose answers overflow a pack starts again in the next."""
        budget = self._budget
        pack: list[_Unit] = []
        used = 0
        for g in prompts:
            unit, unit_tokens = _Unit(g, with_question=True), len(g.ids)
            for item in sorted(g.items, key=lambda it: len(it[1].answer_ids)):
                size = len(item[1].answer_ids)
                if used + unit_tokens + size > budget and (pack or unit.items):
                    if unit.items:
                        pack.append(unit)
                        unit, unit_tokens = _Unit(g), len(g.ids)
                    yield pack
                    pack, used = [], 0
                unit.items.append(item)
                unit_tokens += size
            pack.append(unit)
            used += unit_tokens
        if pack:
            yield pack

    @torch.inference_mode()
    def _score_window(
        self,
        window: list[tuple[Question, list[tuple[Candidate, EncodedCandidate]]]],
        stats: PipelineStats,
        on_pack: Callable[[int, int], None] | None = None,
    ) -> int:
        prompts: dict[tuple[str, tuple[int, ...]], _Prompt] = {}
        for q, items in window:
            for cand, enc in items:
                prompts.setdefault((q.question_id, enc.prefix), _Prompt(enc.prefix)).items.append((cand, enc))
        tokens = 0
        for units in self._units(list(prompts.values())):
            pack = _layout(units)
            self._run(pack)
            stats.rows_scored += len(pack.answers)
            # conversation tokens, as a per-candidate forward pass would count them
            pack_tokens = sum(len(enc.input_ids) for u in units for _, enc in u.items)
            tokens += pack_tokens
            if on_pack is not None:
                on_pack(len(pack.answers), pack_tokens)
        stats.tokens_scored += tokens
        return tokens

    # ---- forward passes -----------------------------------------------------------------------

    def _forward(
        self, ids: torch.Tensor, positions: torch.Tensor, layout: list[Call] | FlexPlan
    ) -> BaseModelOutputWithPast:
        """The decoder over one pack, with packed attention (and fused kernels) for this forward
        only: the model stays usable as it was."""
        config = self.model.config
        implementation, config._attn_implementation = config._attn_implementation, ATTENTION
        try:
            if self._fusion:
                try:
                    with fused(self._fusion):
                        return self.decoder(
                            input_ids=ids[None], position_ids=positions[None], use_cache=False, scas_layout=layout
                        )
                except torch._dynamo.exc.TorchDynamoException as err:
                    logger.warning("torch.compile failed, scoring goes on without fused kernels: %s", err)
                    self._fusion = []
            return self.decoder(input_ids=ids[None], position_ids=positions[None], use_cache=False, scas_layout=layout)
        finally:
            config._attn_implementation = implementation

    def _run(self, pack: _Pack) -> None:
        dev = self.device
        ids = torch.tensor(pack.ids, dtype=torch.long, device=dev)
        positions = torch.tensor(pack.positions, dtype=torch.long, device=dev)
        layout: list[Call] | FlexPlan
        if self.config.attention == "flex":  # padded to whole sparse blocks; padding rows see only themselves
            padded_rows = -(-len(pack.ids) // attention.FLEX_BLOCK) * attention.FLEX_BLOCK
            layout = flex_plan(pack.segments, padded_rows, dev)
            pad = (0, padded_rows - len(pack.ids))
            ids, positions = F.pad(ids, pad), F.pad(positions, pad)
        else:
            layout = sdpa_calls(pack.segments, self.config.causal_ratio, dev)
        out = self._forward(ids, positions, layout)
        assert out.last_hidden_state is not None, "a decoder's output holds its last hidden state"
        hidden, features = out.last_hidden_state[0], self._capture.pop()[0]
        del out

        # regions: questions first, then answers; (region, row predicting the target, target row)
        # for NLL, and (region, row) for features
        nll_parts: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        feat_parts: list[tuple[int, torch.Tensor]] = []
        for r, (g, s) in enumerate(pack.questions):
            target = torch.arange(s + 1, s + len(g.ids))
            nll_parts.append((r, target - 1, target))
            feat_parts.append((r, torch.arange(s, s + len(g.ids))))
        n_q = len(pack.questions)
        for r, (_, g, s, b, n) in enumerate(pack.answers, start=n_q):
            target = torch.arange(b, b + n)
            predictor = target - 1
            predictor[0] = s + len(g.ids) - 1  # the first answer token is predicted by the prompt's last row
            nll_parts.append((r, predictor, target))
            feat_parts.append((r, target))
        n_regions = n_q + len(pack.answers)

        def flat(indices: Iterable[torch.Tensor]) -> torch.Tensor:
            return torch.cat(list(indices)).to(dev)

        def region_ids(parts: Iterable[tuple[int, torch.Tensor]]) -> torch.Tensor:
            return torch.cat([torch.full((len(indices),), r, dtype=torch.long) for r, indices in parts]).to(dev)

        target, predictor = flat(p[2] for p in nll_parts), flat(p[1] for p in nll_parts)
        nll_region = region_ids((r, t) for r, _, t in nll_parts)
        keep = ~special_mask(ids[target], self._special_on_device)
        target, predictor, nll_region = target[keep], predictor[keep], nll_region[keep]
        nll = self.head.nll(hidden[predictor], ids[target])
        nll_sum = torch.zeros(n_regions, dtype=torch.float32, device=dev).index_add_(0, nll_region, nll)
        nll_count = torch.bincount(nll_region, minlength=n_regions)

        rows, feat_region = flat(p[1] for p in feat_parts), region_ids(feat_parts)
        keep = ~special_mask(ids[rows], self._special_on_device)
        rows, feat_region = rows[keep], feat_region[keep]
        unit = unit_features(features[rows])
        mean_u = torch.zeros((n_regions, unit.shape[1]), dtype=torch.float32, device=dev).index_add_(
            0, feat_region, unit
        )
        mean_u /= torch.bincount(feat_region, minlength=n_regions).clamp_min(1)[:, None]

        mean_nll = (nll_sum / nll_count.clamp_min(1)).tolist()
        counts = nll_count.tolist()
        for r, (g, _) in enumerate(pack.questions):
            g.question = RegionSummary(mean_nll[r], mean_u[r], counts[r])
        for r, (cand, g, *_) in enumerate(pack.answers, start=n_q):
            assert g.question is not None, "a prompt's first appearance is laid out before its answers"
            cand.score = combine(RegionSummary(mean_nll[r], mean_u[r], counts[r]), g.question)
