"""A deliberately naive SCAS scorer, written from shared/SCAS.md, to check the engine against.

Like the reference algorithm: one candidate per forward pass over the whole conversation,
full-vocabulary float32 logits, and the O(n^2) pairwise form of both similarities.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..constants import DEFAULT_SYSTEM_PROMPT

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@torch.inference_mode()
def naive_components(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    instruction: str,
    answer: str,
    system: str | None = None,
    feature_layer: int | None = None,
) -> dict[str, float]:
    system = system or DEFAULT_SYSTEM_PROMPT
    prompt = [{"role": "system", "content": system}, {"role": "user", "content": instruction}]
    full = [*prompt, {"role": "assistant", "content": answer}]
    prompt_ids = tokenizer(
        tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True), add_special_tokens=False
    )["input_ids"]
    ids = tokenizer(tokenizer.apply_chat_template(full, tokenize=False), add_special_tokens=False)["input_ids"]
    n_prompt = 0
    while n_prompt < min(len(prompt_ids), len(ids)) and prompt_ids[n_prompt] == ids[n_prompt]:
        n_prompt += 1
    special = set(tokenizer.all_special_ids)

    layer = feature_layer if feature_layer is not None else model.config.num_hidden_layers - 1
    captured: dict[str, torch.Tensor] = {}
    handle = model.model.layers[layer].mlp.up_proj.register_forward_hook(
        lambda m, a, out: captured.__setitem__("h", out)
    )
    try:
        logits = model(torch.tensor([ids], device=model.device)).logits[0].float()
    finally:
        handle.remove()
    feats = captured["h"][0].float()
    logp = torch.log_softmax(logits, dim=-1)

    q_pos = [t for t in range(0, n_prompt) if ids[t] not in special]
    a_pos = [t for t in range(n_prompt, len(ids)) if ids[t] not in special]
    q_nll = [-float(logp[t - 1, ids[t]]) for t in q_pos if t > 0]
    a_nll = [-float(logp[t - 1, ids[t]]) for t in a_pos]
    l_a, l_q = sum(a_nll) / len(a_nll), sum(q_nll) / len(q_nll)

    # every pair's cosine, materialised: the O(n^2) form the closed forms replace
    unit = feats / feats.norm(dim=-1, keepdim=True)
    cosine = unit @ unit.T
    sim_aa = float(cosine[a_pos][:, a_pos].mean())
    sim_aq = float(cosine[a_pos][:, q_pos].mean())
    return {
        "answer_mean_nll": l_a,
        "question_mean_nll": l_q,
        "sim_aa": sim_aa,
        "sim_aq": sim_aq,
        "n_answer_tokens": len(a_pos),
        "n_question_tokens": len(q_nll),
    }


def naive_score(components: dict[str, float], lam: float = 0.5) -> float:
    l_a, l_q = components["answer_mean_nll"], components["question_mean_nll"]
    return (1 - lam) * l_a**2 * components["sim_aa"] + lam * l_a * l_q * components["sim_aq"]
