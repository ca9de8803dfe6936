"""Understanding with the CLIP-ViT variant (``show-o-w-clip-vit``).

This variant reads an image as continuous CLIP ViT features instead of MAGVIT-v2 codes.
A prompt is a sequence of embeddings (B, L, D):

    <mmu>  system prompt  <soi>  mm_projector(features)  <eoi>  "USER: " question " ASSISTANT:"

The attention is causal, except that every column from ``<mmu>`` to the last feature (the
"prefix") is visible to every row, as in the released mask. The features are the vision
tower's penultimate hidden states without the CLS token: (B, 576, 1024) for ViT-L/14-336.

``transformers`` is needed only for the vision tower (``pip install "showo[clip]"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from .generate_text import decode_answers, generate_text
from .image_processing import ImageLike, load_image
from .model import ShowoModel

SYSTEM_PROMPT = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
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
    def from_folder(cls, folder: str | Path, dtype: torch.dtype | None = None) -> "ClipVisionEncoder":
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


def clip_understanding_inputs(
    model: ShowoModel, tokenizer, features: torch.Tensor, questions: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompt embeddings (B, L, D) and attention mask (B, 1, L, L) bool for ``questions``.

    ``features`` (B, N, clip_hidden_size) come from :class:`ClipVisionEncoder`. Prompts of
    different lengths are left-padded with the [PAD] embedding; no real row sees a pad column
    and a pad row sees only itself. Rotary positions are not returned: a padded row matches
    its unpadded self only if the caller counts positions from its first real column."""
    _check_clip_inputs(model, features, questions)
    layout = model.layout
    head = [layout.mmu_id, *tokenizer.encode(SYSTEM_PROMPT), layout.soi_id]
    batch, num_features = features.shape[:2]
    prefix = len(head) + num_features  # columns visible to every row
    rows = [  # the feature slots hold [PAD] ids until the projected features replace them
        head + [layout.pad_id] * num_features + [layout.eoi_id] + tokenizer.encode(_user_text(q))
        for q in questions
    ]
    lengths = torch.tensor([len(row) for row in rows], device=model.device)  # (B,)
    length = int(lengths.max())
    ids = torch.full((batch, length), layout.pad_id, dtype=torch.long, device=model.device)
    for i, row in enumerate(rows):  # left padding
        ids[i, length - len(row) :] = torch.tensor(row, device=model.device)
    start = (length - lengths)[:, None]  # (B, 1) first real column of each row
    cols = torch.arange(length, device=model.device)[None]  # (1, L)
    is_feature = (cols >= start + len(head)) & (cols < start + prefix)  # (B, L), N per row
    projected = model.mm_projector(features.to(model.device, model.dtype))  # (B, N, D)
    embeds = model.embed(ids).masked_scatter(is_feature[..., None], projected)  # (B, L, D)
    return embeds, _clip_mask(start[:, 0], prefix, length)


def _clip_mask(start: torch.Tensor, prefix: int, length: int) -> torch.Tensor:
    """(B, 1, L, L) bool: causal, prefix columns visible to every real row, pads isolated."""
    idx = torch.arange(length, device=start.device)
    real = idx[None] >= start[:, None]  # (B, L)
    in_prefix = real & (idx[None] < start[:, None] + prefix)  # (B, L)
    causal = idx[None, :] <= idx[:, None]  # (L, L)
    mask = (causal[None] | in_prefix[:, None, :]) & real[:, None, :] & real[:, :, None]  # (B, L, L)
    return (mask | torch.eye(length, dtype=torch.bool, device=start.device))[:, None]


def _user_text(question: str) -> str:
    return "USER: " + question + " ASSISTANT:"


def _check_clip_inputs(model: ShowoModel, features: torch.Tensor, questions: Sequence[str]) -> None:
    config = model.config
    if not config.clip_vit:
        raise ValueError("this checkpoint has no mm_projector: not the CLIP-ViT variant")
    if features.dim() != 3 or features.shape[1] == 0:
        raise ValueError(f"features must be (batch, patches, hidden), got shape {tuple(features.shape)}")
    if features.shape[-1] != config.clip_hidden_size:
        raise ValueError(
            f"features have width {features.shape[-1]} but the mm_projector expects "
            f"clip_hidden_size={config.clip_hidden_size}: wrong CLIP vision tower?"
        )
    if isinstance(questions, str) or len(questions) != features.shape[0]:
        count = "a string" if isinstance(questions, str) else len(questions)
        raise ValueError(f"need one question per image: {features.shape[0]} images, questions: {count}")


@torch.no_grad()
def answer_with_clip(
    model: ShowoModel,
    tokenizer,
    vision: ClipVisionEncoder,
    images: Sequence[ImageLike] | torch.Tensor,
    questions: Sequence[str],
    max_new_tokens: int = 100,
    **sampling,
) -> list[str]:
    """Answer one question per image; ``sampling``: top_k, top_p, temperature, eot_id, generator.

    ``generate_text`` counts rotary positions from the first column of ``inputs_embeds``, so
    left padding would shift them. Questions are therefore grouped by prompt length and each
    group runs as an unpadded batch: every answer equals the one its question gets alone
    (with a ``generator``, the random draws are taken group after group)."""
    features = vision.features(images)  # (B, N, H)
    _check_clip_inputs(model, features, questions)
    eot_id = sampling.get("eot_id", model.layout.eot_id)
    answers: list[str] = [""] * len(questions)
    for rows in _groups_by_length(tokenizer, questions):
        embeds, mask = clip_understanding_inputs(model, tokenizer, features[rows], [questions[i] for i in rows])
        new_ids = generate_text(
            model, max_new_tokens=max_new_tokens, inputs_embeds=embeds, prefill_mask=mask, **sampling
        )
        for i, answer in zip(rows, decode_answers(tokenizer, new_ids, eot_id)):
            answers[i] = answer
    return answers


def _groups_by_length(tokenizer, questions: Sequence[str]) -> list[list[int]]:
    """Indices of the questions, grouped by the token count of their user text (first-seen order)."""
    groups: dict[int, list[int]] = {}
    for i, question in enumerate(questions):
        groups.setdefault(len(tokenizer.encode(_user_text(question))), []).append(i)
    return list(groups.values())
