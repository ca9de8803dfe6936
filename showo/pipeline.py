"""``ShowoPipeline``: every Show-o task from PIL images and strings.

The pipeline turns text and pictures into token sequences (``prompting``), calls the
generators (``generate_image``, ``generate_text``) and turns tokens back into pictures and
strings; it holds no model logic of its own.

Every method checks its arguments and measures its texts against the model's positions before
any forward pass (image tokenizer or transformer), with errors that name the argument and give
the numbers (``showo.generation.arguments``). Policies for long texts: a text-to-image prompt
is cut to the text budget with a warning (one of more characters than that budget could ever
hold is cut to that many before it is tokenized); a question, a prompt to plan and a
mixed-modality prompt that does not fit is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image

from .generation import arguments
from .generation.editing import check_mask, check_shift, mask_to_grid, shift_grid, stitch
from .generation.generate_image import codes_to_ids, generate_image_tokens
from .generation.generate_text import decode_answers, final_answer, generate_text, left_pad
from .generation.generation_config import GenerationConfig
from .generation.maskgit import MaskGITSampler
from .generation.prompting import CAPTION_QUESTION, mmu_sequence, plan_request, t2i_prompt, understanding_text
from .generation.sampling import check_sampling_args
from .model.checkpoint_io import replace_folder
from .model.image_processing import ImageLike, load_image, postprocess_images, preprocess_images
from .model.magvit2 import MagvitV2
from .model.text_tokenizer import TextTokenizer
from .model.transformer import ShowoModel, check_compatible

SHIPPED_DIR = Path(__file__).parent / "weights" / "world"  # trained on the built-in world


def shipped_model_dir() -> Path:
    """The folder of the shipped pipeline; a clear error when it has not been put there."""
    if not (SHIPPED_DIR / "config.json").is_file():
        raise FileNotFoundError(
            f"no shipped model at {SHIPPED_DIR} (config.json is missing): "
            "train one with `showo quickstart --retrain` or pass --model DIR"
        )
    return SHIPPED_DIR


class ShowoPipeline:
    def __init__(
        self, model: ShowoModel, vq: MagvitV2, tokenizer: TextTokenizer, generation: GenerationConfig | None = None
    ) -> None:
        check_compatible(model, vq, tokenizer)
        if generation is not None and not isinstance(generation, GenerationConfig):
            raise ValueError(f"generation must be a GenerationConfig or None, got {type(generation).__name__}")
        self.model, self.vq, self.tokenizer = model.eval(), vq.eval(), tokenizer
        self.generation = generation or GenerationConfig()  # sampling defaults (generation_config.json)

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | Path,
        vq: MagvitV2 | str | Path | None = None,
        tokenizer: TextTokenizer | str | Path | None = None,
        llm_config: str | Path | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
    ) -> ShowoPipeline:
        """``vq`` and ``tokenizer`` default to ``model_dir/vq`` and ``model_dir`` (as
        :meth:`save_pretrained` writes them); pass them for released folders. Sampling
        defaults come from ``model_dir/generation_config.json`` when it exists."""
        model_dir = Path(model_dir)
        generation = GenerationConfig.from_folder(model_dir)  # the small file first: a bad one loads no weights
        model = ShowoModel.from_pretrained(model_dir, llm_config=llm_config, dtype=dtype)
        vq = vq if isinstance(vq, MagvitV2) else MagvitV2.from_pretrained(vq or model_dir / "vq")
        if not isinstance(tokenizer, TextTokenizer):
            tokenizer = TextTokenizer.from_folder(tokenizer or model_dir)
        return cls(model.to(device), vq.to(device), tokenizer, generation)

    def save_pretrained(self, folder: str | Path, overwrite: bool = False) -> None:
        """Write the model, ``vq/``, the text tokenizer and ``generation_config.json`` as one folder,
        published whole; ``folder`` must be new or empty, or a showo folder with ``overwrite=True``."""

        def fill(tmp: Path) -> None:
            self.model.write_to(tmp)
            self.vq.write_to(tmp / "vq")
            self.tokenizer.save(tmp)
            self.generation.save(tmp)

        replace_folder(folder, fill, overwrite)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def config(self):
        return self.model.config

    # -- images <-> codes ---------------------------------------------------------------------
    def encode_images(self, images: Sequence[ImageLike]) -> torch.Tensor:
        pixels = preprocess_images([load_image(i) for i in images], self.config.image_size)
        return self.vq.encode(pixels.to(self.device))

    def decode_codes(self, codes: torch.Tensor) -> list[Image.Image]:
        return postprocess_images(self.vq.decode(codes).float().cpu())

    # -- generation ---------------------------------------------------------------------------
    def _t2i_ids(self, prompts: Sequence[str], image_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        layout, budget = self.model.layout, self.config.max_text_length
        cond = t2i_prompt(self.tokenizer.encode_batch(list(prompts)), image_ids, layout, budget)
        uncond = t2i_prompt([[] for _ in prompts], image_ids, layout, budget)
        return cond.to(self.device), uncond.to(self.device)

    def _prompts(self, prompts) -> list[str]:
        """Text-to-image prompts, checked; one over the characters twice the text budget could hold
        is cut to them before it is tokenized (only its first ``max_text_length - 2`` tokens are drawn)."""
        return arguments.texts("prompts", prompts, *self._prompt_limit(), cut=True)

    def _prompt(self, prompt) -> str:
        """One prompt (of an edit), checked and cut as :meth:`_prompts` does."""
        return arguments.text("prompt", prompt, *self._prompt_limit(), cut=True)

    def _prompt_limit(self) -> tuple[int | None, str]:
        budget = self.config.max_text_length
        return arguments.max_chars(self.tokenizer, 2 * budget), f"only its first {budget - 2} tokens are drawn"

    def _image_sampling(
        self,
        rows: int,
        steps: int | None = None,
        guidance_scale: float | None = None,
        schedule: str | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        mode: str = "maskgit",
        callback: Callable | None = None,
        plan: bool | None = None,
    ) -> dict:
        """The sampling arguments of :meth:`generate_codes` for ``rows`` pictures, checked, with
        every None resolved from ``self.generation``."""
        sampling = self.generation.resolve(steps=steps, guidance_scale=guidance_scale, schedule=schedule,
                                           temperature=temperature)
        MaskGITSampler(sampling["steps"], sampling["schedule"], sampling["temperature"], mode)
        arguments.guidance_scale(sampling["guidance_scale"])
        arguments.seed(seed, rows)
        if plan is not None:
            arguments.flag("plan", plan)
        if callback is not None and not callable(callback):
            raise ValueError(f"callback must be callable or None, got {type(callback).__name__}")
        return sampling

    def generate_codes(
        self,
        prompts: Sequence[str],
        image_ids: torch.Tensor | None = None,
        steps: int | None = None,
        guidance_scale: float | None = None,
        schedule: str | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        mode: str = "maskgit",
        callback: Callable | None = None,
        plan: bool | None = None,
    ) -> torch.Tensor:
        """(B, N) codes for ``prompts``; ``image_ids`` (B, N) hold known codes or [MASK].
        Sampling arguments left as None take the values of ``self.generation``. A new picture
        (no ``image_ids``) is drawn from the model's plan of its prompt (:meth:`plan`) when
        ``plan`` is true (default: ``generation.plan_prompts``). Everything is checked before
        anything runs; a prompt over the text budget is cut with a warning."""
        prompts = self._prompts(prompts)
        sampling = self._image_sampling(len(prompts), steps, guidance_scale, schedule, temperature, seed, mode,
                                        callback, plan)
        if image_ids is None:
            prompts = self.prompts_to_draw(prompts, plan)
            image_ids = torch.full((len(prompts), self.config.num_image_tokens), self.model.layout.mask_id)
        else:
            self._check_image_ids(image_ids, len(prompts))
        cond, uncond = self._t2i_ids(prompts, image_ids)
        generator = None if seed is None else [
            torch.Generator(self.device).manual_seed(seed + i) for i in range(len(prompts))]
        uncond = uncond if sampling["guidance_scale"] > 0 else None
        return generate_image_tokens(self.model, cond, uncond, generator=generator, mode=mode, callback=callback,
                                     **sampling)

    def _check_image_ids(self, image_ids, rows: int) -> None:
        expected = (rows, self.config.num_image_tokens)
        if not isinstance(image_ids, torch.Tensor) or image_ids.dtype.is_floating_point \
                or image_ids.dtype == torch.bool or tuple(image_ids.shape) != expected:
            got = (f"{image_ids.dtype} of shape {tuple(image_ids.shape)}" if isinstance(image_ids, torch.Tensor)
                   else type(image_ids).__name__)
            raise ValueError(f"image_ids must be an integer tensor of shape {expected} (one row of image ids "
                             f"per prompt), got {got}")

    def text_to_image(self, prompts: str | Sequence[str], **kwargs) -> list[Image.Image]:
        """One image per prompt. Keyword arguments: those of :meth:`generate_codes`."""
        return self.decode_codes(self.generate_codes(prompts, **kwargs))

    def prompts_to_draw(self, prompts: Sequence[str], plan: bool | None = None) -> list[str]:
        """What new pictures of ``prompts`` are drawn from: the model's plans of them when ``plan``
        is true (default: ``generation.plan_prompts``), else the prompts themselves."""
        prompts = arguments.strings("prompts", prompts)
        if plan is not None:
            arguments.flag("plan", plan)
        return self.plan(prompts) if (self.generation.plan_prompts if plan is None else plan) else prompts

    def plan(self, prompts: str | Sequence[str]) -> list[str]:
        """The model's complete description of a picture for each prompt (``showo.generation.prompting``),
        greedy, at most ``max_text_length`` tokens; a prompt whose plan comes out empty is kept.
        A prompt whose request and plan would not fit the model's positions is refused."""
        single = isinstance(prompts, str)
        prompts = arguments.strings("prompts", prompts)
        layout, new_tokens = self.model.layout, self.config.max_text_length
        available = arguments.positions(self.model)
        rows = []
        for i, prompt in enumerate(prompts):
            ids = arguments.measured_text(
                "prompts" if single else f"prompts[{i}]", prompt, self.tokenizer, f"the plan of prompt {i}",
                [(1, "<sot>"), (None, "request tokens"), (new_tokens, "plan tokens (max_text_length)")], available,
                "shorten the prompt", encode=lambda p: self.tokenizer.encode(plan_request(p)))
            rows.append([layout.sot_id, *ids])
        new = generate_text(self.model, left_pad(rows, layout.pad_id).to(self.device),
                            max_new_tokens=new_tokens, top_k=1)
        plans = [p.strip() for p in decode_answers(self.tokenizer, new, layout.eot_id)]
        return [planned or prompt for planned, prompt in zip(plans, prompts)]

    def class_to_image(self, class_names: str | Sequence[str], **kwargs) -> list[Image.Image]:
        """Class-conditional generation (stage 1): the class name is the prompt."""
        return self.text_to_image(class_names, **kwargs)

    def inpaint(self, image: ImageLike, mask: Image.Image | torch.Tensor, prompt: str, **kwargs) -> Image.Image:
        """Regenerate the region where ``mask`` is white (> 0.5), guided by ``prompt``."""
        check_mask(mask)
        prompt = self._prompt(prompt)
        self._image_sampling(1, **kwargs)  # checked before the image is encoded
        codes = self.encode_images([image])[0]
        grid = self.config.image_size // self.config.downsample_factor
        region = mask_to_grid(mask, self.config.image_size, grid).to(codes.device)
        layout = self.model.layout
        image_ids = torch.where(region, torch.full_like(codes, layout.mask_id), layout.image_ids(codes))
        return self.decode_codes(self.generate_codes([prompt], image_ids[None], **kwargs))[0]

    def extrapolate(
        self, image: ImageLike, prompt: str, direction: str = "right", offset: int = 0, **kwargs
    ) -> Image.Image:
        """Grow the picture toward ``direction``; returns the original plus the new part."""
        grid = self.config.image_size // self.config.downsample_factor
        check_shift(grid, direction, offset)
        prompt = self._prompt(prompt)
        self._image_sampling(1, **kwargs)  # checked before the image is encoded
        original = load_image(image)
        codes = self.encode_images([original])[0]
        shifted, shift = shift_grid(codes, grid, direction, offset)
        image_ids = codes_to_ids(shifted, self.model.layout)
        new = self.decode_codes(self.generate_codes([prompt], image_ids[None], **kwargs))[0]
        size = self.config.image_size
        square = preprocess_images([original], size)
        return stitch(postprocess_images(square)[0], new, direction, shift * self.config.downsample_factor)

    # -- understanding ------------------------------------------------------------------------
    def answer(
        self,
        images: ImageLike | Sequence[ImageLike],
        questions: str | Sequence[str],
        max_new_tokens: int = 100,
        top_k: int | None = 1,
        top_p: float | None = None,
        temperature: float = 1.0,
        seed: int | None = None,
        reasoning: bool = False,
    ) -> list[str]:
        """Answer each question about its image (one question may serve every image), batched.

        A model whose generation config names an ``answer_marker`` works its answer out first:
        it may write ``reasoning_tokens`` more tokens, and its answer is what follows the last
        marker (``reasoning=True``: the whole text, reasoning included)."""
        images = [images] if isinstance(images, (str, Path, Image.Image)) else list(images)
        if not images:
            raise ValueError("images is empty: give at least one image")
        questions = ([questions] * len(images) if isinstance(questions, str)
                     else arguments.strings("questions", questions))
        if len(questions) != len(images):
            raise ValueError(f"{len(images)} images but {len(questions)} questions")
        arguments.integer("max_new_tokens", max_new_tokens, 1)
        check_sampling_args(temperature, top_k, top_p)
        seed = arguments.seed(seed)
        arguments.flag("reasoning", reasoning)
        layout, marker = self.model.layout, self.generation.answer_marker
        reasoning_tokens = self.generation.reasoning_tokens if marker else 0
        texts = self._measured_questions(questions, max_new_tokens, reasoning_tokens)
        codes = layout.image_ids(self.encode_images(images)).tolist()
        rows = [mmu_sequence(c, t, layout) for c, t in zip(codes, texts)]
        ids = left_pad(rows, layout.pad_id).to(self.device)
        generator = None if seed is None else torch.Generator(self.device).manual_seed(seed)
        new = generate_text(self.model, ids, max_new_tokens=max_new_tokens + reasoning_tokens, top_k=top_k,
                            top_p=top_p, temperature=temperature, generator=generator)
        whole = decode_answers(self.tokenizer, new, layout.eot_id)
        return [w.strip() if reasoning else final_answer(w, marker) for w in whole]

    def _measured_questions(self, questions: list[str], max_new_tokens: int, reasoning_tokens: int) -> list[list[int]]:
        """Token ids of each question's understanding text, each refused (untokenized when it has
        more characters than could ever fit) unless ``<mmu> <soi> image <eoi> <sot> text`` and the
        answer fit the model's positions."""
        available, image_tokens = arguments.positions(self.model), self.config.num_image_tokens
        parts = [(4, "<mmu> <soi> <eoi> <sot>"), (image_tokens, "image tokens"), (None, "question tokens"),
                 (max_new_tokens, "new tokens"), (reasoning_tokens, "reasoning tokens")]
        encode = lambda q: self.tokenizer.encode(understanding_text(q))
        measured: dict[str, list[int]] = {}
        one = len(set(questions)) == 1
        for i, question in enumerate(questions):
            if question in measured:
                continue
            name = "question" if one else f"questions[{i}]"
            measured[question] = arguments.measured_text(
                name, question, self.tokenizer, name, parts, available,
                "shorten the question or ask for fewer new tokens", encode=encode)
        return [measured[q] for q in questions]

    def caption(self, images: ImageLike | Sequence[ImageLike], **kwargs) -> list[str]:
        return self.answer(images, CAPTION_QUESTION, **kwargs)
