"""The CLIP vision tower of the CLIP-ViT variant (``show-o-w-clip-vit``) and its preprocessing.

This variant reads an image as continuous CLIP ViT features instead of MAGVIT-v2 codes: the
vision tower's penultimate hidden states without the CLS token, (B, 576, 1024) for
ViT-L/14-336, which the model's ``mm_projector`` maps to token embeddings
(``showo.generation.clip_answer`` builds the prompt and answers).

``transformers`` is needed only for the vision tower (``pip install "showo[clip]"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from .image_processing import ImageLike, load_image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _clip_vision_model_class():
    try:
        from transformers import CLIPVisionModel
    except ImportError as e:
        raise ImportError(
            'the CLIP vision tower needs transformers; install it with: pip install "showo[clip]"'
        ) from e
    return CLIPVisionModel


class ClipVisionEncoder(nn.Module):
    """A ``transformers.CLIPVisionModel`` plus CLIP's image preprocessing."""

    def __init__(self, vision_model: nn.Module) -> None:
        super().__init__()
        self.vision = vision_model.eval()
        self.image_size = int(vision_model.config.image_size)

    @classmethod
    def from_folder(cls, folder: str | Path, dtype: torch.dtype | None = None) -> ClipVisionEncoder:
        """Load a local CLIP folder (a vision-only or a full CLIP checkpoint, e.g. ViT-L/14-336)."""
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder}: no CLIP config.json found")
        kwargs = {} if dtype is None else {"dtype": dtype}
        return cls(_clip_vision_model_class().from_pretrained(str(folder), **kwargs))

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.vision.config.patch_size) ** 2

    def preprocess(self, images: Sequence[ImageLike]) -> torch.Tensor:
        """Images (PIL or paths) -> CLIP pixel values (B, 3, S, S) float32, S = the tower's image size."""
        if len(images) == 0:
            raise ValueError("ClipVisionEncoder: got no images")
        return torch.stack([clip_pixels(load_image(image), self.image_size) for image in images])

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pixel values (B, 3, S, S) -> penultimate-layer patch features (B, num_patches, hidden)."""
        expected = (3, self.image_size, self.image_size)
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != expected:
            raise ValueError(
                f"expected CLIP pixel values of shape (B, {', '.join(map(str, expected))}), "
                f"got {tuple(pixel_values.shape)}; pass PIL images to have them preprocessed"
            )
        weight = next(self.vision.parameters())
        out = self.vision(pixel_values=pixel_values.to(weight.device, weight.dtype), output_hidden_states=True)
        return out.hidden_states[-2][:, 1:]  # drop CLS

    @torch.no_grad()
    def features(self, images: Sequence[ImageLike] | torch.Tensor) -> torch.Tensor:
        """Images, or already preprocessed pixel values, -> features (B, num_patches, hidden)."""
        pixels = images if isinstance(images, torch.Tensor) else self.preprocess(images)
        return self(pixels)


def clip_pixels(image: Image.Image, size: int) -> torch.Tensor:
    """CLIP's preprocessing of one RGB image: (3, size, size) float32, normalised.

    The shorter side becomes ``size`` (bicubic, long side truncated), the centre is cropped
    with the offset rounded down, values are scaled to [0, 1] and normalised with CLIP's mean
    and std."""
    w, h = image.size
    new_w, new_h = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    image = image.resize((new_w, new_h), resample=Image.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    image = image.crop((left, top, left + size, top + size))
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)  # (3, S, S)
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    return (pixels - mean) / std
