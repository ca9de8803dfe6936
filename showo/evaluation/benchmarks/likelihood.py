"""How likely the model finds a given answer: the log-probability of a continuation after a
question about an image, in the chat template ``pipe.answer`` uses, and whether greedy decoding
would have written it (what lmms-eval's ``loglikelihood`` requests ask, for multiple-choice tasks).

The context is ``<mmu> <soi> image <eoi> <sot> USER: \\n{question} ASSISTANT:`` and the continuation
the tokens that follow it: the whole text ``template(question) + continuation`` is tokenized and
split where the template's own tokens end (as lm-evaluation-harness splits context and
continuation); when the two do not tokenize apart, the continuation is tokenized alone. Rows are
left-padded and run in one forward pass per batch, so each score is what the row gets alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ...generation.generate_text import left_pad
from ...generation.prompting import mmu_sequence, understanding_text
from ...model.image_processing import ImageLike
from ...model.omni_attention import omni_attention_mask
from ...pipeline import ShowoPipeline


def split_continuation(pipe: ShowoPipeline, question: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) of ``continuation`` after ``question`` in the chat template."""
    if not isinstance(continuation, str) or not continuation:
        raise ValueError(f"the continuation to score must be a non-empty string, got {continuation!r}")
    template = understanding_text(question)
    context = pipe.tokenizer.encode(template)
    whole = pipe.tokenizer.encode(template + continuation)
    if len(whole) > len(context) and whole[:len(context)] == context:
        return context, whole[len(context):]
    return context, pipe.tokenizer.encode(continuation)


@torch.no_grad()
def continuation_logprobs(pipe: ShowoPipeline, images: Sequence[ImageLike], questions: Sequence[str],
                          continuations: Sequence[str]) -> list[tuple[float, bool]]:
    """(sum of the continuation's token log-probabilities, whether each of its tokens is the
    model's most likely one) for each (image, question, continuation), batched."""
    if not (len(images) == len(questions) == len(continuations)) or not images:
        raise ValueError(f"give one question and one continuation per image: {len(images)} images, "
                         f"{len(questions)} questions, {len(continuations)} continuations")
    layout, config = pipe.model.layout, pipe.config
    split = [split_continuation(pipe, q, c) for q, c in zip(questions, continuations)]
    limit = config.llm.max_position_embeddings
    for i, (context, continuation) in enumerate(split):
        length = 4 + config.num_image_tokens + len(context) + len(continuation)
        if length > limit:
            raise ValueError(f"question {i} and its continuation take {length} positions, more than the model's "
                             f"{limit}; shorten them")
    image_ids = layout.image_ids(pipe.encode_images(list(images))).tolist()
    rows = [mmu_sequence(codes, context + continuation, layout) for codes, (context, continuation)
            in zip(image_ids, split)]
    ids = left_pad(rows, layout.pad_id).to(pipe.device)
    visible = ids != layout.pad_id
    positions = (visible.long().cumsum(dim=1) - 1).clamp(min=0)  # as generate_text counts them
    hidden = pipe.model.hidden_states(ids, omni_attention_mask(ids, layout), positions)
    longest = max(len(continuation) for _, continuation in split)
    length = ids.shape[1]
    # the logits that predict the last `longest` tokens of every row (rows end together: left padding)
    logits = pipe.model.lm_head(hidden[:, length - longest - 1:length - 1]).float()
    logprobs = torch.log_softmax(logits, dim=-1)
    results = []
    for row, (_, continuation) in enumerate(split):
        n = len(continuation)
        scores = logprobs[row, longest - n:]  # (n, V)
        tokens = ids[row, length - n:]
        total = scores.gather(1, tokens[:, None])[:, 0].sum()
        results.append((float(total), bool((scores.argmax(dim=-1) == tokens).all())))
    return results
