"""``ShowoProcessor``: images and text in, model inputs out, for every Show-o task; and the model's
new token ids back to text. It owns the released chat template of the plain (non-CLIP) model
(``"USER: \\n" + question + " ASSISTANT:"``, after ``<mmu> <soi> image <eoi> <sot>``) and the
text-to-image layout (the prompt left-padded to the text budget), so the pipeline, the training
rows and a user building inputs by hand all make the same sequences.

Every text is checked and measured against the model's positions before it is tokenized in
full (``arguments``): a text-to-image prompt over the text budget is cut with a warning; a
question, a prompt to plan or a mixed-modality prompt that does not fit is refused with the
numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from PIL import Image

from ..model.config import ShowoConfig
from ..model.image_processing import ImageLike, load_image, postprocess_images, preprocess_images, resize_and_crop
from ..model.text_tokenizer import TextTokenizer
from . import arguments
from .generate_text import decode_answers, left_pad
from .prompting import CAPTION_QUESTION, mmu_sequence, plan_request, t2i_prompt, understanding_text


class ShowoProcessor:
    def __init__(self, tokenizer: TextTokenizer, config: ShowoConfig) -> None:
        self.tokenizer, self.config, self.layout = tokenizer, config, config.layout

    @property
    def positions(self) -> int:
        """The positions the model was built for (``max_position_embeddings``)."""
        return self.config.llm.max_position_embeddings

    # -- images ------------------------------------------------------------------------------
    def pixels(self, images: Sequence[ImageLike]) -> torch.Tensor:
        """(B, 3, S, S) float pixels in [-1, 1] at the model's image size (shorter side resized
        with bicubic, centre cropped, as released)."""
        return preprocess_images([load_image(image) for image in images], self.config.image_size)

    def resized(self, image: ImageLike) -> Image.Image:
        """``image`` as the model sees it: RGB, resized and cropped to the model's image size."""
        return postprocess_images(self.pixels([image]))[0]

    def resized_mask(self, mask: Image.Image, picture_size: tuple[int, int]) -> Image.Image:
        """A grayscale ``mask`` of a picture of ``picture_size`` (width, height), cropped as the
        picture is: stretched to the picture's size if it differs, then resized and centre cropped."""
        if mask.size != picture_size:
            warnings.warn(f"mask of {mask.size[0]}x{mask.size[1]} stretched to its picture's "
                          f"{picture_size[0]}x{picture_size[1]}", stacklevel=3)
            mask = mask.resize(picture_size, Image.BILINEAR)
        return resize_and_crop(mask.convert("L"), self.config.image_size)

    # -- text-to-image ----------------------------------------------------------------------------
    def prompts(self, prompts: str | Sequence[str], name: str = "prompts") -> list[str]:
        """Text-to-image prompts, checked; one over the characters the text budget could ever hold is
        cut to them before it is tokenized (only its first ``max_text_length - 2`` tokens are drawn)."""
        budget = self.config.max_text_length
        limit = arguments.max_chars(self.tokenizer, 2 * budget)
        return arguments.texts(name, prompts, limit, f"only its first {budget - 2} tokens are drawn", cut=True)

    def prompt(self, prompt: str, name: str = "prompt") -> str:
        """One text-to-image prompt (of an edit), checked and cut as :meth:`prompts` does."""
        budget = self.config.max_text_length
        limit = arguments.max_chars(self.tokenizer, 2 * budget)
        return arguments.text(name, prompt, limit, f"only its first {budget - 2} tokens are drawn", cut=True)

    def t2i_inputs(
        self, prompts: Sequence[str], image_ids: torch.Tensor, negative_prompts: Sequence[str] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(conditional, unconditional) sequences ``[PAD]* <t2i> <sot> text <eot> <soi> image <eoi>``
        for ``prompts`` and ``image_ids`` (B, N: image-code ids or [MASK]); the unconditional rows
        hold ``negative_prompts`` (default: the empty prompt, as the paper's guidance)."""
        budget = self.config.max_text_length
        cond = t2i_prompt(self.tokenizer.encode_batch(list(prompts)), image_ids, self.layout, budget)
        negative = [[] for _ in prompts] if negative_prompts is None else \
            self.tokenizer.encode_batch(list(negative_prompts))
        return cond, t2i_prompt(negative, image_ids, self.layout, budget)

    # -- understanding ------------------------------------------------------------------------------
    def question_ids(self, question: str) -> list[int]:
        """The token ids of ``question`` in the released chat template (training rows use this too)."""
        return self.tokenizer.encode(understanding_text(question))

    def caption_question(self) -> str:
        return CAPTION_QUESTION

    def questions(self, questions: Sequence[str], max_new_tokens: int, reasoning_tokens: int = 0) -> list[list[int]]:
        """The chat-template ids of each question, each refused (untokenized when it has more
        characters than could ever fit) unless ``<mmu> <soi> image <eoi> <sot>``, the question and
        the answer fit the model's positions."""
        parts = [(4, "<mmu> <soi> <eoi> <sot>"), (self.config.num_image_tokens, "image tokens"),
                 (None, "question tokens"), (max_new_tokens, "new tokens"), (reasoning_tokens, "reasoning tokens")]
        measured: dict[str, list[int]] = {}
        one = len(set(questions)) == 1
        for i, question in enumerate(questions):
            if question not in measured:
                name = "question" if one else f"questions[{i}]"
                measured[question] = arguments.measured_text(
                    name, question, self.tokenizer, name, parts, self.positions,
                    "shorten the question or ask for fewer new tokens", encode=self.question_ids)
        return [measured[q] for q in questions]

    def understanding_inputs(self, image_ids: torch.Tensor, question_ids: Sequence[Sequence[int]]) -> torch.Tensor:
        """Left-padded ``<mmu> <soi> image <eoi> <sot> USER: ... ASSISTANT:`` rows (B, L) for
        ``image_ids`` (B, N) and the ids of one question per row (:meth:`questions`)."""
        rows = [mmu_sequence(codes, ids, self.layout) for codes, ids in zip(image_ids.tolist(), question_ids)]
        return left_pad(rows, self.layout.pad_id)

    # -- planning -------------------------------------------------------------------------------
    def plan_inputs(self, prompts: Sequence[str], new_tokens: int, single: bool = False) -> torch.Tensor:
        """Left-padded ``<sot> Plan for <prompt>:`` rows, each refused unless it and its plan fit."""
        rows = []
        for i, prompt in enumerate(prompts):
            ids = arguments.measured_text(
                "prompts" if single else f"prompts[{i}]", prompt, self.tokenizer, f"the plan of prompt {i}",
                [(1, "<sot>"), (None, "request tokens"), (new_tokens, "plan tokens (max_text_length)")],
                self.positions, "shorten the prompt", encode=lambda p: self.tokenizer.encode(plan_request(p)))
            rows.append([self.layout.sot_id, *ids])
        return left_pad(rows, self.layout.pad_id)

    # -- text out --------------------------------------------------------------------------------
    def decode(self, new_ids: torch.Tensor) -> list[str]:
        """Each row of generated ids cut at its first ``<eot>`` and decoded."""
        return decode_answers(self.tokenizer, new_ids, self.layout.eot_id)
