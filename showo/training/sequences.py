"""Training rows for the four flows: token ids plus the target of every position.

``labels[i]`` is what the logits at position ``i`` must predict (-100: no loss there):
* t2i (mask-token prediction, the paper's "Training Objectives"): the true code at each [MASK]ed image
  position, nothing else; the caption is dropped with probability ``caption_dropout``;
* lm: the next token at every text position (``<sot> text <eot>``);
* mmu: the next token over each answer and its ``<eot>`` only (every turn of a conversation,
  or one drawn turn: ``mmu_turns``);
* mixed (``<lvg>``): the next token over the text, and mask-token prediction on one image,
  after which the row ends (later text never sees a masked image).

Every random choice comes from a generator seeded by (seed, flow, the sample's position in the
global stream), so a row is the same whatever the number of processes or restarts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..generation.prompting import mmu_sequence, t2i_text_block
from ..model.layout import TokenLayout
from .config import FLOWS

IGNORE = -100


class SampleTooLong(ValueError):
    """A sample that does not fit the sequence budget (reported as bad data by the trainer)."""


@dataclass(frozen=True)
class Row:
    ids: list[int]
    labels: list[int]
    mask_ratio: float | None = None  # t2i / mixed: the drawn masking rate


def sample_generator(seed: int, flow: str, position: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, FLOWS.index(flow), position]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


def masking_ratio(generator: torch.Generator, min_masking_rate: float) -> float:
    t = float(torch.rand((), generator=generator))
    return max(math.cos(math.pi / 2 * t), min_masking_rate)


def mask_image(codes: torch.Tensor, layout: TokenLayout, ratio: float, generator: torch.Generator):
    """(image ids with [MASK]s, targets with -100 at unmasked positions)."""
    image = layout.image_ids(codes.long().flatten()).tolist()
    count = max(1, round(len(image) * ratio))
    chosen = torch.randperm(len(image), generator=generator)[:count].tolist()
    targets = [IGNORE] * len(image)
    for i in chosen:
        targets[i], image[i] = image[i], layout.mask_id
    return image, targets


def next_token_labels(ids: list[int], start: int, end: int) -> list[int]:
    """Targets ``ids[i + 1]`` for positions ``start <= i < end``, -100 elsewhere."""
    labels = [IGNORE] * len(ids)
    for i in range(max(start, 0), min(end, len(ids) - 1)):
        labels[i] = ids[i + 1]
    return labels


def t2i_row(codes, caption_ids, layout, max_text_length, generator, min_masking_rate, caption_dropout) -> Row:
    if len(caption_ids) > max_text_length - 2:
        raise SampleTooLong(f"caption of {len(caption_ids)} tokens, budget {max_text_length - 2}")
    if float(torch.rand((), generator=generator)) < caption_dropout:
        caption_ids = []  # the empty prompt: what classifier-free guidance needs
    ratio = masking_ratio(generator, min_masking_rate)
    image, targets = mask_image(codes, layout, ratio, generator)
    text = t2i_text_block(caption_ids, layout, max_text_length)
    ids = text + [layout.soi_id, *image, layout.eoi_id]
    return Row(ids, [IGNORE] * (len(text) + 1) + targets + [IGNORE], ratio)


def lm_row(text_ids, layout, max_length) -> Row:
    ids = [layout.sot_id, *text_ids, layout.eot_id][:max_length]
    return Row(ids, next_token_labels(ids, 0, len(ids)))


def mmu_row(codes, turns, layout, max_length) -> Row:
    """``turns``: (question ids, answer ids) pairs, a conversation about one image.

    The first question follows ``<sot>`` as at inference; each answer ends with ``<eot>``
    and the next question follows it, as the released code lays out LLaVA conversations.
    Turns that would pass ``max_length`` are left out; the first one must fit."""
    if not turns:
        raise ValueError("an understanding row needs at least one (question, answer) turn")
    question_ids, answer_ids = turns[0]
    prompt = mmu_sequence(layout.image_ids(codes.long().flatten()).tolist(), question_ids, layout)
    ids = prompt + list(answer_ids) + [layout.eot_id]
    if len(ids) > max_length:
        raise SampleTooLong(f"understanding row of {len(ids)} tokens, budget {max_length}")
    answers = [(len(prompt) - 1, len(ids))]
    for question_ids, answer_ids in turns[1:]:
        turn = list(question_ids) + list(answer_ids) + [layout.eot_id]
        if len(ids) + len(turn) > max_length:
            break
        answers.append((len(ids) + len(question_ids) - 1, len(ids) + len(turn)))
        ids += turn
    labels = [IGNORE] * len(ids)
    for start, end in answers:
        labels[start:end - 1] = ids[start + 1:end]
    return Row(ids, labels)


def mixed_row(segments, layout, max_length, generator, min_masking_rate) -> Row:
    """``segments``: token-id lists (text) and code tensors (images), in order."""
    images = [i for i, s in enumerate(segments) if isinstance(s, torch.Tensor)]
    # Which image to learn to generate; len(images) = none, so the closing text is learned too.
    pick = int(torch.randint(len(images) + 1, (), generator=generator))
    target = images[pick] if pick < len(images) else None
    ids, labels, ratio = [layout.lvg_id, layout.sot_id], [IGNORE, IGNORE], None
    for index, segment in enumerate(segments):
        if isinstance(segment, torch.Tensor):
            labels[-1] = layout.soi_id  # the text before an image learns to open it
            if index == target:
                ratio = masking_ratio(generator, min_masking_rate)
                image, targets = mask_image(segment, layout, ratio, generator)
            else:
                image, targets = layout.image_ids(segment.long().flatten()).tolist(), [IGNORE] * segment.numel()
            ids += [layout.soi_id, *image, layout.eoi_id]
            labels += [IGNORE, *targets, IGNORE]
            if index == target:
                break
        else:
            for token in segment:
                labels[-1] = token
                ids.append(token)
                labels.append(IGNORE)
    if target is None:
        labels[-1] = layout.eot_id
        ids.append(layout.eot_id)
        labels.append(IGNORE)
    if len(ids) > max_length:
        raise SampleTooLong(f"mixed-modality row of {len(ids)} tokens, budget {max_length}")
    return Row(ids, labels, ratio)


def collate_by_length(rows: list[Row], pad_id: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The rows as two padded batches (one for a single row): sorted by length and cut where
    that leaves the least padding (understanding rows of one to three turns differ in length by
    up to 2x). The loss is a sum over rows, so the cut changes nothing; it is always two so that
    every process runs the same number of forward passes (DDP synchronises at each)."""
    ordered = sorted(rows, key=lambda r: len(r.ids))
    if len(ordered) == 1:
        return [collate(ordered, pad_id)]
    lengths = [len(r.ids) for r in ordered]
    _, cut = min((k * lengths[k - 1] + (len(rows) - k) * lengths[-1], k) for k in range(1, len(rows)))
    return [collate(ordered[:cut], pad_id), collate(ordered[cut:], pad_id)]


def collate(rows: list[Row], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest row: (ids, labels), both (B, L) long."""
    length = max(len(r.ids) for r in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE, dtype=torch.long)
    for b, row in enumerate(rows):
        ids[b, : len(row.ids)] = torch.tensor(row.ids)
        labels[b, : len(row.labels)] = torch.tensor(row.labels)
    return ids, labels


def question_and_answer(processor, question: str, answer: str) -> tuple[list[int], list[int]]:
    """The question in the processor's chat template (the released one), the answer after a space."""
    return processor.question_ids(question), processor.tokenizer.encode(" " + answer.strip())
