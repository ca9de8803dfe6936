"""Understanding with the CLIP-ViT variant (``show-o-w-clip-vit``).

A prompt is a sequence of embeddings (B, L, D):

    <mmu>  system prompt  <soi>  mm_projector(features)  <eoi>  "USER: " question " ASSISTANT:"

The attention is causal, except that every column from ``<mmu>`` to the last feature (the
"prefix") is visible to every row, as in the released mask. The features come from
``showo.model.clip_vit.ClipVisionEncoder``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..model.clip_vit import ClipVisionEncoder
from ..model.image_processing import ImageLike
from ..model.transformer import ShowoModel
from . import arguments
from .generate_text import decode_answers, generate_text
from .sampling import check_sampling_args

SYSTEM_PROMPT = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


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
    (with a ``generator``, the random draws are taken group after group).

    The questions and arguments are checked, and every prompt measured against the model's
    positions, before the vision tower or the model runs."""
    _check_questions_fit(model, tokenizer, vision, questions, max_new_tokens, sampling)
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


def _check_questions_fit(model: ShowoModel, tokenizer, vision, questions, max_new_tokens, sampling: dict) -> None:
    if isinstance(questions, str) or not isinstance(questions, Sequence):
        raise ValueError(f"questions must be a list of strings, one per image, got {type(questions).__name__}")
    arguments.integer("max_new_tokens", max_new_tokens, 1)
    check_sampling_args(sampling.get("temperature", 1.0), sampling.get("top_k"), sampling.get("top_p"))
    fixed = 1 + len(tokenizer.encode(SYSTEM_PROMPT)) + 1 + vision.num_patches + 1  # <mmu> system <soi> N <eoi>
    available = arguments.positions(model)
    parts = [(fixed, "system prompt and image tokens"), (None, "question tokens"), (max_new_tokens, "new tokens")]
    for i, question in enumerate(questions):
        arguments.measured_text(f"questions[{i}]", question, tokenizer, f"question {i}", parts, available,
                                "shorten the question or ask for fewer new tokens",
                                encode=lambda q: tokenizer.encode(_user_text(q)))


def _groups_by_length(tokenizer, questions: Sequence[str]) -> list[list[int]]:
    """Indices of the questions, grouped by the token count of their user text (first-seen order)."""
    groups: dict[int, list[int]] = {}
    for i, question in enumerate(questions):
        groups.setdefault(len(tokenizer.encode(_user_text(question))), []).append(i)
    return list(groups.values())
