"""Mixed-modality generation (``<lvg>``): text and images interleaved in one sequence.

Layout: ``<lvg> <sot> prompt`` and then whatever the model continues with: text tokens
until it opens an image with ``<soi>``; each image is decoded by MaskGIT (``N`` [MASK]
tokens between ``<soi>`` and ``<eoi>``, attending to the whole history), appended, and text
generation resumes. The sequence ends at ``<eot>``, after ``max_images`` images, or when the
text budget of a segment runs out.
"""

from __future__ import annotations

import torch
from PIL import Image

from . import arguments
from .generate_image import generate_image_tokens
from .generate_text import generate_text
from .maskgit import MaskGITSampler
from .prompting import wrap_image
from .sampling import check_sampling_args


@torch.no_grad()
def generate_mixed(
    pipe,
    prompt: str,
    max_images: int = 2,
    max_text_tokens: int = 48,
    steps: int | None = None,
    temperature: float = 1.0,
    top_k: int | None = 1,
    seed: int | None = None,
) -> list[str | Image.Image]:
    """Segments in order: strings for text, PIL images for pictures. ``steps`` per picture
    defaults to the pipeline's ``generation.steps``; ``temperature`` and ``top_k`` are the text's.

    Before anything runs, the arguments are checked and the longest sequence the call may build
    (``<lvg> <sot> prompt``, ``max_images + 1`` text segments of ``max_text_tokens`` and
    ``max_images`` pictures of ``<soi> N <eoi>``) is measured against the model's positions: a
    call that could run out of them is refused with the numbers."""
    steps = pipe.generation.steps if steps is None else steps
    model, layout = pipe.model, pipe.model.layout
    max_images = arguments.integer("max_images", max_images, 0)
    max_text_tokens = arguments.integer("max_text_tokens", max_text_tokens, 1)
    MaskGITSampler(steps)  # checks steps
    check_sampling_args(temperature, top_k, None)
    seed = arguments.seed(seed)
    image_tokens = model.config.num_image_tokens + 2  # <soi> image <eoi>
    prompt_ids = arguments.measured_text("prompt", prompt, pipe.tokenizer, "the mixed-modality sequence", [
        (2, "<lvg> <sot>"), (None, "prompt tokens"),
        ((max_images + 1) * max_text_tokens, f"text tokens ({max_images + 1} segments of {max_text_tokens})"),
        (max_images * image_tokens, f"image tokens ({max_images} pictures of {image_tokens})"),
    ], arguments.positions(model), "shorten the prompt, or ask for fewer images or text tokens")
    ids = torch.tensor([[layout.lvg_id, layout.sot_id, *prompt_ids]], device=pipe.device)
    generator = None if seed is None else torch.Generator(pipe.device).manual_seed(seed)
    segments: list[str | Image.Image] = []
    for _ in range(max_images + 1):
        new = generate_text(model, ids, max_new_tokens=max_text_tokens, top_k=top_k, eot_id=layout.soi_id,
                            temperature=temperature, generator=generator)[0]
        stop = _first(new, (layout.eot_id, layout.soi_id))
        text_ids = new[:stop].tolist() if stop is not None else new.tolist()
        if text_ids:
            segments.append(pipe.tokenizer.decode(text_ids))
        ids = torch.cat([ids, new[: len(text_ids)][None]], dim=1)
        opened_image = stop is not None and int(new[stop]) == layout.soi_id
        if not opened_image or sum(isinstance(s, Image.Image) for s in segments) == max_images:
            break
        codes = _image_after(model, ids, steps, generator)
        segments.append(pipe.decode_codes(codes)[0])
        ids = torch.cat([ids, wrap_image(layout.image_ids(codes), layout)], dim=1)
    return segments


def _first(ids: torch.Tensor, targets: tuple[int, ...]) -> int | None:
    hits = [i for i, t in enumerate(ids.tolist()) if t in targets]
    return hits[0] if hits else None


def _image_after(model, history: torch.Tensor, steps: int, generator) -> torch.Tensor:
    layout = model.layout
    blank = torch.full((1, model.config.num_image_tokens), layout.mask_id, device=history.device)
    ids = torch.cat([history, wrap_image(blank, layout)], dim=1)
    return generate_image_tokens(model, ids, None, steps=steps, guidance_scale=0, generator=generator)
