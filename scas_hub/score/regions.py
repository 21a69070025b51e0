"""Token regions for scoring: which positions hold special tokens (neither question nor answer).

The chat template and the encoding of a candidate into question and answer regions live in
`scas_hub.student.chat`; `chat_template_sha256` stays importable from here (the README names it).
"""

from __future__ import annotations

import torch

from ..student.chat import (  # noqa: F401 (re-exported)
    ChatEncoder,
    EncodedCandidate,
    chat_template_sha256,
    read_chat_template,
    resolve_chat_template,
    special_token_ids,
)


def special_mask(input_ids: torch.Tensor, special_ids: torch.Tensor) -> torch.Tensor:
    """Boolean mask of positions holding a special token."""
    return torch.isin(input_ids, special_ids)
