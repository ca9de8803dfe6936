"""``ShowoPipeline``: every Show-o task from images and strings, called as Hugging Face pipelines
are (``pipe("a red circle").images[0]``, ``pipe.to("cuda")``).

The pipeline turns text and pictures into token sequences (its ``ShowoProcessor``), calls the
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .generation import arguments
from .generation.editing import check_mask, check_shift, mask_to_grid, shift_grid, stitch
from .generation.generate_image import codes_to_ids, generate_image_tokens
from .generation.generate_text import final_answer, generate_text
from .generation.generation_config import GenerationConfig
from .generation.maskgit import MaskGITSampler
from .generation.processor import ShowoProcessor
from .generation.sampling import check_sampling_args
from .generation.untaught import warn_unmarked_answers, warn_unrelated_plans
from .model import adapters
from .model.checkpoint_io import replace_folder
from .model.hub import resolve_folder
from .model.image_processing import ImageLike, load_image, load_mask, postprocess_images
from .model.magvit2 import MagvitV2
from .model.precision import resolve_dtype
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
        self.processor = ShowoProcessor(tokenizer, model.config)  # text and images -> model inputs
        self.generation = generation or GenerationConfig()  # sampling defaults (generation_config.json)
        # torch.compile each decoding step (CUDA graphs on CUDA); the first call of a shape compiles
        self.compile = False

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | Path,
        vq: MagvitV2 | str | Path | None = None,
        tokenizer: TextTokenizer | str | Path | None = None,
        llm_config: str | Path | None = None,
        device: str | torch.device | None = None,
        torch_dtype: torch.dtype | str | None = "auto",
        *,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
    ) -> ShowoPipeline:
        """``vq`` and ``tokenizer`` default to ``model_dir/vq`` and ``model_dir`` (as
        :meth:`save_pretrained` writes them); pass them for released folders. Sampling
        defaults come from ``model_dir/generation_config.json`` when it exists. ``device``
        defaults to CUDA when torch sees a GPU, else the CPU.

        ``torch_dtype``: the precision to run in; weights are converted tensor by tensor as they
        are read, so a fp32 file loads as bf16 in little more than the bf16 size. ``"auto"`` (the
        default): the transformer in bf16 where ``device`` runs it fast (a GPU with bf16, a CPU with
        AMX or AVX512-BF16: ``showo.model.precision``), else fp32; the image tokenizer keeps its
        stored precision (fp32), as the released code runs it (github showlab/Show-o,
        ``inference_t2i.py``): it runs once per picture against the transformer's two passes per
        denoising step, so bf16 would save little, while its rounding would flip the codes of
        latents near the LFQ quantizer's sign threshold and blur the decoded pixels. A
        ``torch.dtype`` or a name (``"bf16"``, ``"fp32"``, ``"fp16"``) converts both; None keeps
        both as stored.

        ``model_dir``, ``vq``, ``tokenizer`` and ``llm_config`` may each be a local folder or a
        Hugging Face Hub id, resolved through the Hugging Face cache (``showo.model.hub``; a local
        folder of that name wins; only the files showo reads are fetched): ``"org/name"`` saved by
        :meth:`save_pretrained` (``vq/`` inside), or the released ``"showlab/show-o"`` with
        ``vq="showlab/magvitv2"``, ``tokenizer="microsoft/phi-1_5"``, ``llm_config="microsoft/phi-1_5"``.
        ``revision``: the branch, tag or commit hash of ``model_dir`` (the other ids are read at their
        default branch; pass a loaded ``MagvitV2`` / ``TextTokenizer`` to pin them). ``cache_dir``
        (default ``HF_HUB_CACHE``), ``local_files_only`` (no download; ``HF_HUB_OFFLINE=1`` does the
        same) and ``token`` apply to every id."""
        device = default_device() if device is None else device
        model_dtype, vq_dtype = component_dtypes(torch_dtype, device)  # a bad value is refused before any load
        hub = dict(cache_dir=cache_dir, local_files_only=local_files_only, token=token)
        model_dir = resolve_folder(model_dir, revision=revision, **hub)
        generation = GenerationConfig.from_folder(model_dir)  # the small file first: a bad one loads no weights
        model = ShowoModel.from_pretrained(model_dir, llm_config=llm_config, dtype=model_dtype, **hub)
        if not isinstance(vq, MagvitV2):
            vq = MagvitV2.from_pretrained(vq or model_dir / "vq", dtype=vq_dtype, **hub)
        if not isinstance(tokenizer, TextTokenizer):
            tokenizer = TextTokenizer.from_folder(tokenizer or model_dir, **hub)
        return cls(model.to(device), vq.to(device, vq_dtype), tokenizer, generation)

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
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    @property
    def config(self):
        return self.model.config

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | str | None = None) -> ShowoPipeline:
        """Move the model and the image tokenizer (``pipe.to("cuda")``, ``pipe.to(torch.bfloat16)``,
        ``pipe.to("cuda", torch.bfloat16)``); returns the pipeline. ``dtype`` takes what
        ``from_pretrained``'s ``torch_dtype`` takes (``"auto"``: the transformer only, picked for
        the device it ends on)."""
        if isinstance(device, torch.dtype):
            device, dtype = None, device
        model_dtype, vq_dtype = component_dtypes(dtype, self.device if device is None else device)
        self.model.to(device=device, dtype=model_dtype)
        self.vq.to(device=device, dtype=vq_dtype)
        return self

    # -- LoRA adapters (showo.model.adapters; needs peft) -------------------------------------------
    def load_adapter(self, folder: str | Path, name: str = adapters.DEFAULT, *, revision: str | None = None,
                     cache_dir: str | Path | None = None, local_files_only: bool = False,
                     token: str | bool | None = None) -> None:
        """Add the LoRA adapter saved in ``folder`` (a local folder in peft's layout, or a Hub id
        resolved as ``from_pretrained`` resolves one) to the model as ``name``; it is active at once."""
        folder = resolve_folder(folder, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only,
                                token=token, allow_patterns=sorted(adapters.ADAPTER_FILES))
        adapters.load_adapter(self.model, folder, name)
        self.model.eval()

    def save_adapter(self, folder: str | Path, name: str = adapters.DEFAULT, overwrite: bool = False) -> None:
        """Write adapter ``name`` alone (``adapter_config.json``, ``adapter_model.safetensors``)."""
        adapters.save_adapter(self.model, folder, name, overwrite)

    def merge_adapters(self, keep_copy: bool = True) -> None:
        """Fold the adapters into the weights (``showo.model.adapters.merge_adapters``)."""
        adapters.merge_adapters(self.model, keep_copy)

    def unmerge_adapters(self) -> None:
        adapters.unmerge_adapters(self.model)

    def adapters_disabled(self):
        """``with pipe.adapters_disabled(): ...``: calls inside run the base model."""
        return adapters.adapters_disabled(self.model)

    # -- images <-> codes ---------------------------------------------------------------------
    def encode_images(self, images: Sequence[ImageLike]) -> torch.Tensor:
        """(B, N) codes of ``images`` (paths, PIL images, arrays or tensors)."""
        pixels = self.processor.pixels(images).to(self.device, self.vq_dtype)
        return self.vq.encode(pixels)

    @property
    def vq_dtype(self) -> torch.dtype:
        return next(self.vq.parameters()).dtype

    def decode_codes(self, codes: torch.Tensor) -> list[Image.Image]:
        return postprocess_images(self.vq.decode(codes).float().cpu())

    # -- text to image --------------------------------------------------------------------------
    def __call__(
        self,
        prompt: str | Sequence[str],
        *,
        negative_prompt: str | Sequence[str] | None = None,
        num_images_per_prompt: int = 1,
        steps: int | None = None,
        guidance_scale: float | None = None,
        schedule: str | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        mode: str = "maskgit",
        callback_on_step_end: Callable | None = None,
        plan: bool | None = None,
        output_type: str = "pil",
    ) -> ShowoPipelineOutput:
        """Text-to-image, as diffusers pipelines are called: ``pipe("a red circle").images[0]``.
        The arguments are those of :meth:`text_to_image`."""
        images, drawn = self._text_to_image(prompt, negative_prompt, num_images_per_prompt, steps, guidance_scale,
                                            schedule, temperature, seed, generator, mode, callback_on_step_end,
                                            plan, output_type)
        return ShowoPipelineOutput(images=images, prompts=drawn)

    def text_to_image(
        self,
        prompt: str | Sequence[str],
        *,
        negative_prompt: str | Sequence[str] | None = None,
        num_images_per_prompt: int = 1,
        steps: int | None = None,
        guidance_scale: float | None = None,
        schedule: str | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        mode: str = "maskgit",
        callback_on_step_end: Callable | None = None,
        plan: bool | None = None,
        output_type: str = "pil",
    ) -> list[Image.Image] | np.ndarray | torch.Tensor:
        """``num_images_per_prompt`` pictures of each prompt, prompt by prompt.

        - ``negative_prompt``: the unconditional prompt of classifier-free guidance, one for all or
          one per prompt (default: the empty prompt, as the paper).
        - ``steps``, ``guidance_scale``, ``schedule``, ``temperature``: MaskGIT sampling; None takes
          the model's ``generation_config.json`` (``self.generation``).
        - ``seed``: picture ``i`` of the batch is drawn with a generator seeded ``seed + i``, so it
          does not depend on its batch; or ``generator``: one ``torch.Generator`` for the batch, or
          one per picture (not both).
        - ``callback_on_step_end(pipe, step, steps, {"codes": ..., "logits": ...})`` after every step.
        - ``plan``: draw the model's plan of each prompt (default: ``generation.plan_prompts``).
        - ``output_type``: ``"pil"`` (a list of PIL images), ``"np"`` ((B, H, W, 3) float32 in
          [0, 1]) or ``"pt"`` ((B, 3, H, W) float32 in [0, 1])."""
        return self._text_to_image(prompt, negative_prompt, num_images_per_prompt, steps, guidance_scale, schedule,
                                   temperature, seed, generator, mode, callback_on_step_end, plan, output_type)[0]

    def class_to_image(
        self,
        class_names: str | Sequence[str],
        *,
        num_images_per_prompt: int = 1,
        steps: int | None = None,
        guidance_scale: float | None = None,
        seed: int | None = None,
        output_type: str = "pil",
    ) -> list[Image.Image] | np.ndarray | torch.Tensor:
        """Class-conditional generation (stage 1): the class name is the prompt."""
        return self.text_to_image(class_names, num_images_per_prompt=num_images_per_prompt, steps=steps,
                                  guidance_scale=guidance_scale, seed=seed, output_type=output_type)

    def _text_to_image(self, prompt, negative_prompt, num_images_per_prompt, steps, guidance_scale, schedule,
                       temperature, seed, generator, mode, callback_on_step_end, plan, output_type):
        check_output_type(output_type)
        arguments.integer("num_images_per_prompt", num_images_per_prompt, 1, MAX_IMAGES_PER_CALL)
        prompts = self.processor.prompts(prompt, "prompt")
        repeated = [p for p in prompts for _ in range(num_images_per_prompt)]
        negative = None if negative_prompt is None else \
            [n for n in self._per_prompt("negative_prompt", negative_prompt, prompts) for _ in
             range(num_images_per_prompt)]
        callback = self._step_callback(callback_on_step_end, steps)
        sampling = self._image_sampling(len(repeated), steps, guidance_scale, schedule, temperature, seed, mode,
                                        callback, plan, generator)
        drawn = self.prompts_to_draw(repeated, plan)
        blank = torch.full((len(drawn), self.config.num_image_tokens), self.model.layout.mask_id)
        codes = self._sample(drawn, blank, negative, sampling, seed, generator, mode, callback)
        return to_output(self.vq.decode(codes).float().cpu(), output_type), drawn

    def _per_prompt(self, name: str, value, prompts: list[str]) -> list[str]:
        values = self.processor.prompts(value, name)
        if len(values) == 1:
            return values * len(prompts)
        if len(values) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(values)} {name}s: give one for all or one per prompt")
        return values

    def generate_codes(
        self,
        prompts: Sequence[str],
        image_ids: torch.Tensor | None = None,
        *,
        negative_prompt: str | Sequence[str] | None = None,
        steps: int | None = None,
        guidance_scale: float | None = None,
        schedule: str | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        mode: str = "maskgit",
        callback: Callable | None = None,
        plan: bool | None = None,
    ) -> torch.Tensor:
        """(B, N) codes for ``prompts``: the level below :meth:`text_to_image`. ``image_ids`` (B, N)
        hold known codes or [MASK] (default: a new picture, drawn from the model's plan of its prompt
        when ``plan``); ``callback(step, logits, codes)`` is the generator's; the other arguments
        are :meth:`text_to_image`'s. Everything is checked before anything runs."""
        prompts = self.processor.prompts(prompts)
        negative = None if negative_prompt is None else self._per_prompt("negative_prompt", negative_prompt, prompts)
        sampling = self._image_sampling(len(prompts), steps, guidance_scale, schedule, temperature, seed, mode,
                                        callback, plan, generator)
        if image_ids is None:
            prompts = self.prompts_to_draw(prompts, plan)
            image_ids = torch.full((len(prompts), self.config.num_image_tokens), self.model.layout.mask_id)
        else:
            self._check_image_ids(image_ids, len(prompts))
        return self._sample(prompts, image_ids, negative, sampling, seed, generator, mode, callback)

    def _sample(self, prompts, image_ids, negative, sampling, seed, generator, mode, callback):
        cond, uncond = self.processor.t2i_inputs(prompts, image_ids, negative)
        if generator is None and seed is not None:
            generator = [torch.Generator(self.device).manual_seed(seed + i) for i in range(len(prompts))]
        uncond = uncond.to(self.device) if sampling["guidance_scale"] > 0 else None
        # mode="released" reproduces the released sampler: none of the generation config's accelerations
        faster = {} if mode == "released" else self.generation.accelerations()
        return generate_image_tokens(self.model, cond.to(self.device), uncond, generator=generator, mode=mode,
                                     callback=callback, compile=self.compile, **sampling, **faster)

    def _step_callback(self, callback_on_step_end: Callable | None, steps: int | None) -> Callable | None:
        """``callback_on_step_end(pipe, step, steps, {"codes", "logits"})`` as the generator's callback."""
        if callback_on_step_end is None:
            return None
        if not callable(callback_on_step_end):
            got = type(callback_on_step_end).__name__
            raise ValueError(f"callback_on_step_end must be callable or None, got {got}")
        total = self.generation.steps if steps is None else steps
        return lambda step, logits, codes: callback_on_step_end(self, step, total, {"codes": codes, "logits": logits})

    def _image_sampling(self, rows, steps, guidance_scale, schedule, temperature, seed, mode, callback, plan,
                        generator=None) -> dict:
        """The sampling arguments for ``rows`` pictures, checked, every None resolved from
        ``self.generation``."""
        sampling = self.generation.resolve(steps=steps, guidance_scale=guidance_scale, schedule=schedule,
                                           temperature=temperature)
        MaskGITSampler(sampling["steps"], sampling["schedule"], sampling["temperature"], mode)
        arguments.guidance_scale(sampling["guidance_scale"])
        arguments.seed(seed, rows)
        check_generator(generator, rows, seed)
        if plan is not None:
            arguments.flag("plan", plan)
        if callback is not None and not callable(callback):
            raise ValueError(f"callback must be callable or None, got {type(callback).__name__}")
        return sampling

    def _check_image_ids(self, image_ids, rows: int) -> None:
        expected = (rows, self.config.num_image_tokens)
        if not isinstance(image_ids, torch.Tensor) or image_ids.dtype.is_floating_point \
                or image_ids.dtype == torch.bool or tuple(image_ids.shape) != expected:
            got = (f"{image_ids.dtype} of shape {tuple(image_ids.shape)}" if isinstance(image_ids, torch.Tensor)
                   else type(image_ids).__name__)
            raise ValueError(f"image_ids must be an integer tensor of shape {expected} (one row of image ids "
                             f"per prompt), got {got}")

    def prompts_to_draw(self, prompts: Sequence[str], plan: bool | None = None) -> list[str]:
        """What new pictures of ``prompts`` are drawn from: the model's plans of them when ``plan``
        is true (default: ``generation.plan_prompts``), else the prompts themselves."""
        prompts = arguments.strings("prompts", prompts)
        if plan is not None:
            arguments.flag("plan", plan)
        return self.plan(prompts) if (self.generation.plan_prompts if plan is None else plan) else prompts

    def plan(self, prompts: str | Sequence[str]) -> list[str]:
        """The model's complete description of a picture for each prompt (prompt planning), greedy,
        at most ``max_text_length`` tokens; a prompt whose plan comes out empty is kept. A prompt
        whose request and plan would not fit the model's positions is refused. Plans that share none
        of their prompt's words are named in a warning: the model was not taught to plan such prompts."""
        single = isinstance(prompts, str)
        prompts = arguments.strings("prompts", prompts)
        new_tokens = self.config.max_text_length
        ids = self.processor.plan_inputs(prompts, new_tokens, single).to(self.device)
        plans = [p.strip() for p in self.processor.decode(generate_text(self.model, ids, max_new_tokens=new_tokens,
                                                                        top_k=1, compile=self.compile))]
        plans = [planned or prompt for planned, prompt in zip(plans, prompts)]
        warn_unrelated_plans(prompts, plans)
        return plans

    # -- editing ----------------------------------------------------------------------------------
    def inpaint(
        self,
        image: ImageLike,
        mask: ImageLike,
        prompt: str,
        *,
        keep_unmasked: bool = True,
        steps: int | None = None,
        guidance_scale: float | None = None,
        schedule: str | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        mode: str = "maskgit",
        callback_on_step_end: Callable | None = None,
    ) -> Image.Image:
        """Regenerate the region where ``mask`` is white (> 0.5), guided by ``prompt``. ``image`` and
        ``mask`` may be paths, PIL images, arrays or tensors; the picture is resized and cropped to
        the model's size. With ``keep_unmasked`` (default) the pixels outside the mask are the
        input's own, not the tokenizer's re-drawing of them."""
        if isinstance(mask, (str, Path, np.ndarray)) or (isinstance(mask, torch.Tensor) and mask.dim() == 3):
            mask = load_mask(mask)
        check_mask(mask)
        arguments.flag("keep_unmasked", keep_unmasked)
        prompt = self.processor.prompt(prompt)
        callback = self._step_callback(callback_on_step_end, steps)
        self._image_sampling(1, steps, guidance_scale, schedule, temperature, seed, mode, callback, False)
        source = load_image(image)
        original, mask = self.processor.resized(source), self.processor.resized_mask(load_mask(mask), source.size)
        codes = self.encode_images([original])[0]
        size = self.config.image_size
        region = mask_to_grid(mask, size, size // self.config.downsample_factor).to(codes.device)
        layout = self.model.layout
        image_ids = torch.where(region, torch.full_like(codes, layout.mask_id), layout.image_ids(codes))
        codes = self.generate_codes([prompt], image_ids[None], steps=steps, guidance_scale=guidance_scale,
                                    schedule=schedule, temperature=temperature, seed=seed, mode=mode,
                                    callback=callback)
        result = self.decode_codes(codes)[0]
        return paste_unmasked(original, result, mask, size) if keep_unmasked else result

    def extrapolate(
        self,
        image: ImageLike,
        prompt: str,
        direction: str = "right",
        offset: int = 0,
        *,
        keep_unmasked: bool = True,
        steps: int | None = None,
        guidance_scale: float | None = None,
        schedule: str | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        mode: str = "maskgit",
        callback_on_step_end: Callable | None = None,
    ) -> Image.Image:
        """Grow the picture toward ``direction`` by half its side (plus ``offset`` tokens); returns
        the original plus the new part. With ``keep_unmasked`` (default) the original's part shows
        the input's own pixels."""
        grid = self.config.image_size // self.config.downsample_factor
        check_shift(grid, direction, offset)
        arguments.flag("keep_unmasked", keep_unmasked)
        prompt = self.processor.prompt(prompt)
        callback = self._step_callback(callback_on_step_end, steps)
        self._image_sampling(1, steps, guidance_scale, schedule, temperature, seed, mode, callback, False)
        original = self.processor.resized(image)
        codes = self.encode_images([original])[0]
        shifted, shift = shift_grid(codes, grid, direction, offset)
        image_ids = codes_to_ids(shifted, self.model.layout)
        codes = self.generate_codes([prompt], image_ids[None], steps=steps, guidance_scale=guidance_scale,
                                    schedule=schedule, temperature=temperature, seed=seed, mode=mode,
                                    callback=callback)
        new = self.decode_codes(codes)[0]
        return stitch(original, new, direction, shift * self.config.downsample_factor, keep_original=keep_unmasked)

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
        """Answer each question about its image (one question may serve every image), batched; each
        answer is what the question would get alone. ``top_k=1`` (default) is greedy; ``top_k=None``
        and ``top_p=None`` sample from the whole distribution at ``temperature``.

        A model whose generation config names an ``answer_marker`` works its answer out first:
        it may write ``reasoning_tokens`` more tokens, and its answer is what follows the last
        marker (``reasoning=True``: the whole text, reasoning included). When no answer of the batch
        holds the marker (caption requests aside), a warning says that the model was not taught to
        work its answers out."""
        images = [images] if isinstance(images, (str, Path, Image.Image, np.ndarray, torch.Tensor)) else list(images)
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
        texts = self.processor.questions(questions, max_new_tokens, reasoning_tokens)  # before any image is read
        ids = self.processor.understanding_inputs(layout.image_ids(self.encode_images(images)), texts).to(self.device)
        generator = None if seed is None else torch.Generator(self.device).manual_seed(seed)
        new = generate_text(self.model, ids, max_new_tokens=max_new_tokens + reasoning_tokens, top_k=top_k,
                            top_p=top_p, temperature=temperature, generator=generator, compile=self.compile)
        written = self.processor.decode(new)
        if marker:
            warn_unmarked_answers(marker, questions, written, self.processor.caption_question())
        return [w.strip() if reasoning else final_answer(w, marker) for w in written]

    def caption(
        self,
        images: ImageLike | Sequence[ImageLike],
        max_new_tokens: int = 100,
        top_k: int | None = 1,
        top_p: float | None = None,
        temperature: float = 1.0,
        seed: int | None = None,
    ) -> list[str]:
        """A caption of each image: the answer to the released caption question."""
        return self.answer(images, self.processor.caption_question(), max_new_tokens=max_new_tokens, top_k=top_k,
                           top_p=top_p, temperature=temperature, seed=seed)


@dataclass
class ShowoPipelineOutput:
    """What ``pipe(prompt)`` returns, as diffusers pipelines do."""

    images: list[Image.Image] | np.ndarray | torch.Tensor  # in the output_type asked for
    prompts: list[str]  # what each picture was drawn from: its prompt, or the model's plan of it


def component_dtypes(
    torch_dtype: torch.dtype | str | None, device: str | torch.device
) -> tuple[torch.dtype | None, torch.dtype | None]:
    """The transformer's and the image tokenizer's precision for ``torch_dtype`` on ``device``
    (None: leave as they are); ``"auto"`` leaves the image tokenizer (see ``from_pretrained``)."""
    model_dtype = resolve_dtype(torch_dtype, device, "torch_dtype")
    return model_dtype, None if isinstance(torch_dtype, str) and torch_dtype == "auto" else model_dtype


def default_device() -> torch.device:
    """CUDA when torch sees a GPU, else the CPU (what ``from_pretrained`` loads onto by default)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


MAX_IMAGES_PER_CALL = 4096
OUTPUT_TYPES = ("pil", "np", "pt")


def check_output_type(output_type) -> None:
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")


def to_output(pixels: torch.Tensor, output_type: str) -> list[Image.Image] | np.ndarray | torch.Tensor:
    """(B, 3, H, W) pixels in [-1, 1] as PIL images, or float32 in [0, 1] as (B, H, W, 3) numpy or
    (B, 3, H, W) torch."""
    if output_type == "pil":
        return postprocess_images(pixels)
    unit = ((pixels.clamp(-1, 1) + 1) / 2).float()
    return unit.permute(0, 2, 3, 1).numpy() if output_type == "np" else unit


def check_generator(generator, rows: int, seed) -> None:
    """None, one ``torch.Generator``, or one per picture; never together with ``seed``."""
    if generator is None:
        return
    if seed is not None:
        raise ValueError("give seed or generator, not both")
    generators = generator if isinstance(generator, (list, tuple)) else [generator]
    if not all(isinstance(g, torch.Generator) for g in generators):
        raise ValueError(f"generator must be a torch.Generator or a list of them, got {type(generator).__name__}")
    if isinstance(generator, (list, tuple)) and len(generators) != rows:
        raise ValueError(f"{rows} pictures but {len(generators)} generators: give one, or one per picture")


def paste_unmasked(original: Image.Image, result: Image.Image, mask: Image.Image | torch.Tensor,
                   size: int) -> Image.Image:
    """``result`` where ``mask`` is white (> 0.5, at the picture's size), ``original`` elsewhere."""
    if isinstance(mask, torch.Tensor):
        values = mask.detach().float().cpu()
        mask = Image.fromarray((values.clamp(0, 1) * 255).round().byte().numpy())
    keep = mask.convert("L").resize((size, size), Image.NEAREST).point(lambda v: 255 if v > 127 else 0)
    return Image.composite(result, original, keep)
