"""Learned 2-D positions for image tokens (``ShowoConfig.image_position_embeddings``).

Show-o's image tokens know their place in the picture only through 1-D rotary phases, which
a model learns to read slowly. This adds a learned row embedding and a learned column
embedding to every token of an image block. An image block is a run of image-code or
``[MASK]`` ids; its k-th token sits at row ``k // side``, column ``k % side``. The block must
come whole in one forward call, as it does in every Show-o layout (the text prefix may be
cached; the ``<soi> image <eoi>`` segment is always run together).
"""

from __future__ import annotations

import torch
from torch import nn

from .layout import TokenLayout


def image_token_index(ids: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """(B, L) -> index of each token in its image block (0 .. N-1), -1 outside images."""
    in_image = layout.is_image_slot(ids)
    positions = torch.arange(ids.shape[-1], device=ids.device).expand_as(ids)
    last_outside = torch.where(in_image, torch.full_like(positions, -1), positions).cummax(dim=-1).values
    return torch.where(in_image, positions - last_outside - 1, torch.full_like(positions, -1))


class ImagePositionEmbedding(nn.Module):
    def __init__(self, grid_side: int, hidden_size: int, layout: TokenLayout) -> None:
        super().__init__()
        self.grid_side, self.layout = grid_side, layout
        self.rows = nn.Embedding(grid_side, hidden_size)
        self.cols = nn.Embedding(grid_side, hidden_size)
        for table in (self.rows, self.cols):  # row + column together have the token embeddings' scale
            nn.init.normal_(table.weight, std=2**-0.5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, L) ids -> (B, L, D): the row + column embedding of image tokens, zero elsewhere."""
        index = image_token_index(ids, self.layout)
        in_image = index >= 0
        cell = index.clamp(min=0) % (self.grid_side**2)
        added = self.rows(cell // self.grid_side) + self.cols(cell % self.grid_side)
        return added * in_image[..., None].to(added.dtype)
