"""The student's LM head as the scorer applies it: NLL of target tokens only, in vocabulary blocks.

Full-vocabulary logits never exist for a whole pack: the head runs over blocks of rows and
vocabulary entries with an online log-sum-exp in float32 (running max, rescaled sum), and each
target's logit is a float32 dot product. Some architectures post-process the head's output in
their forward (Cohere and Granite scale it, Gemma soft-caps it); `measure_transform` finds which
transform reproduces the model's own logits, and refuses a model it cannot reproduce.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..errors import StudentError

if TYPE_CHECKING:
    from transformers import PreTrainedConfig, PreTrainedModel


@dataclass(frozen=True)
class LogitTransform:
    """What a model's forward does to `lm_head(h)`: `softcap * tanh(scale * x / softcap)`."""

    scale: float = 1.0
    softcap: float | None = None

    def apply_(self, logits: torch.Tensor) -> torch.Tensor:
        """Transform float32 logits in place (an elementwise, increasing map)."""
        if self.scale != 1.0:
            logits.mul_(self.scale)
        if self.softcap is not None:
            logits.div_(self.softcap).tanh_().mul_(self.softcap)
        return logits


def candidate_transforms(config: PreTrainedConfig) -> list[LogitTransform]:
    """Transforms the config suggests: `logit_scale` multiplies (Cohere); `logits_scaling` divides
    (Granite) or multiplies (HyperCLOVA X); `final_logit_softcapping` caps (Gemma 2/3/4)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    scales = [1.0]
    if getattr(text, "logit_scale", None):
        scales.append(float(text.logit_scale))
    if getattr(text, "logits_scaling", None):
        scales += [1 / float(text.logits_scaling), float(text.logits_scaling)]
    softcap = getattr(text, "final_logit_softcapping", None)
    caps = [float(softcap), None] if softcap else [None]
    return [LogitTransform(s, c) for c, s in itertools.product(caps, dict.fromkeys(scales))]


def head_parameters(lm_head: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The weight and the bias (None without one) of a linear LM head."""
    weight = lm_head.weight
    assert isinstance(weight, torch.Tensor), f"{type(lm_head).__name__} is not a linear LM head"
    return weight, getattr(lm_head, "bias", None)


class BlockedHead:
    """`nll(hidden_rows, targets)`: the NLL of each target given the final hidden state predicting it."""

    def __init__(self, lm_head: torch.nn.Module, rows: int, block_bytes: int, transform: LogitTransform | None = None):
        self.weight, self.bias = head_parameters(lm_head)
        self.rows, self.block_bytes = rows, block_bytes
        self.transform = transform or LogitTransform()

    def logits(self, hidden: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Float32 logits of vocabulary entries `[start, stop)`, transformed as the model does."""
        bias = None if self.bias is None else self.bias[start:stop]
        return self.transform.apply_(F.linear(hidden, self.weight[start:stop], bias).float())

    def nll(self, hidden_rows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        vocab = self.weight.shape[0]
        out = torch.empty(targets.shape[0], dtype=torch.float32, device=hidden_rows.device)
        block = max(128, self.block_bytes // (4 * min(self.rows, max(1, targets.shape[0]))))
        for i in range(0, targets.shape[0], self.rows):
            h = hidden_rows[i : i + self.rows]
            running_max: torch.Tensor | None = None
            total: torch.Tensor | None = None
            for j in range(0, vocab, block):
                logits = self.logits(h, j, j + block)
                block_max = logits.amax(dim=1)
                if running_max is None or total is None:
                    running_max, total = block_max, logits.sub_(block_max[:, None]).exp_().sum(dim=1)
                else:
                    new_max = torch.maximum(running_max, block_max)
                    total = total * (running_max - new_max).exp_() + logits.sub_(new_max[:, None]).exp_().sum(dim=1)
                    running_max = new_max
            assert running_max is not None and total is not None, "the vocabulary has at least one entry"
            out[i : i + self.rows] = running_max + total.log()
        target_logit = (hidden_rows.float() * self.weight[targets].float()).sum(dim=1)
        if self.bias is not None:
            target_logit += self.bias[targets].float()
        return out - self.transform.apply_(target_logit)


@torch.inference_mode()
def measure_transform(
    model: PreTrainedModel, decoder: torch.nn.Module, lm_head: torch.nn.Module, probe_tokens: int = 16
) -> LogitTransform:
    """The transform under which `lm_head(decoder(x))` reproduces `model(x).logits` on a short
    probe; a `StudentError` when none of the config's candidates does (the scorer would compute
    the wrong NLL for this architecture)."""
    device = next(model.parameters()).device
    weight, bias = head_parameters(lm_head)
    vocab = weight.shape[0]
    ids = ((torch.arange(1, probe_tokens + 1) * 7919) % vocab)[None].to(device)
    want = model(input_ids=ids, use_cache=False).logits[0].float()
    hidden = decoder(input_ids=ids, use_cache=False).last_hidden_state[0]
    raw = F.linear(hidden, weight, bias).float()
    rtol = 1e-4 if hidden.dtype == torch.float32 else 2e-2
    tolerance = 1e-5 + rtol * float(want.abs().max())
    candidates = candidate_transforms(model.config)
    for transform in candidates:
        if float((transform.apply_(raw.clone()) - want).abs().max()) <= tolerance:
            return transform
    raise StudentError(
        f"{type(model).__name__}: its logits are not lm_head(last hidden state) under any transform the scorer "
        f"knows ({', '.join(map(str, candidates))}); its NLL would be wrong, so it is not scored"
    )
