"""The loss: one forward per flow through :class:`LossHead`, cross-entropy summed over the
positions that carry a label and divided by the number of such positions in the *global*
batch (all processes, all accumulation steps), so that N processes compute exactly the loss
and gradient of one process on the same global batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..model.omni_attention import omni_attention_mask
from ..model.transformer import ShowoModel
from .sequences import IGNORE


class LossHead(nn.Module):
    """Wraps the model so that distributed wrappers (DDP, FSDP) see one forward per batch and
    the vocabulary projection runs only at labelled positions."""

    def __init__(self, model: ShowoModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Summed cross-entropy (a float32 scalar) over positions with a label."""
        mask = omni_attention_mask(input_ids, self.model.layout)
        hidden = self.model.hidden_states(input_ids, attention_mask=mask)  # (B, L, D)
        picked = labels != IGNORE
        logits = self.model.lm_head(hidden[picked])  # (M, V): only where there is something to learn
        return F.cross_entropy(logits.float(), labels[picked], reduction="sum")


def labelled_count(labels: torch.Tensor) -> int:
    return int((labels != IGNORE).sum())
