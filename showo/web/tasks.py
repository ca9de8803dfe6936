"""The work behind each tab of the web demo: checked inputs in, pictures and text out.

``Tasks(pipe, limits)`` holds one pipeline; each public method is one event handler and
checks every argument against the ``Limits`` first (a request may come from the API, not
only from the page's bounded widgets). ``friendly`` turns failures into messages for the
page, and ``explain_failures`` does it for the failures that happen in gradio before or
after a handler (a malformed request). ``guard_image`` / ``guard_editor`` make upload
components refuse files that were not uploaded and read an image's header before anything
decodes its pixels.
"""

from __future__ import annotations

import contextlib
import functools
import html
import inspect
import logging
import queue
import threading

import gradio as gr
import numpy as np
import torch
from gradio.exceptions import InvalidPathError
from PIL import Image, ImageDraw
from pydantic import ValidationError

from ..generation.editing import DIRECTIONS
from ..generation.generate_mixed import generate_mixed
from ..generation.prompting import CAPTION_QUESTION, understanding_text
from ..model.image_processing import resize_and_crop
from .limits import (
    Limits,
    check_float,
    check_image_header,
    check_int,
    check_seed,
    check_text,
    check_uploaded,
    open_checked_image,
)

log = logging.getLogger("showo.web")
MAX_GUIDANCE = 20.0
MAX_HISTORY = 40  # chat messages kept (and sent back and forth) per conversation
STRIP_COLUMNS = 10  # frames a row in the denoising strip: at 50 steps, 5 rows that stay readable
STRIP_GAP = 2  # pixels between frames


# -- errors ---------------------------------------------------------------------------------
def friendly(fn):
    """Wrap an event handler: ``ValueError`` reaches the page as its message, anything else
    as a short notice; tracebacks go to the server log only."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args, **kwargs):
            with _errors_as_messages(fn.__name__):
                yield from fn(*args, **kwargs)

        return stream

    @functools.wraps(fn)
    def call(*args, **kwargs):
        with _errors_as_messages(fn.__name__):
            return fn(*args, **kwargs)

    return call


@contextlib.contextmanager
def _errors_as_messages(name: str):
    try:
        yield
    except gr.Error:
        raise
    except (ValueError, FileNotFoundError) as e:
        raise gr.Error(html.escape(str(e)), print_exception=False) from None
    except Exception:
        log.exception("%s failed", name)
        raise gr.Error("something went wrong on the server; its log has the details", print_exception=False) from None


def _checked_file(source, limits: Limits, folder: str) -> None:
    try:
        if not isinstance(source, (bytes, bytearray)):
            check_uploaded(source, folder)
        check_image_header(source, limits)
    except ValueError as e:
        raise gr.Error(html.escape(str(e)), print_exception=False) from None


# -- failures outside the handlers ---------------------------------------------------------------
# What a request's value must be, per component, for the messages below.
EXPECTED = {"Slider": "a number", "Number": "a number", "Textbox": "text", "Radio": "one of its choices",
            "Image": "an uploaded image (the file reference that /gradio_api/upload returns)",
            "ImageEditor": "an editor value: an uploaded background, its layers and composite",
            "Chatbot": "a list of chat messages", "Dataset": "the index of an example"}


def explain_failures(demo: gr.Blocks) -> gr.Blocks:
    """Give every failed request a message that says what happened.

    With ``show_error=False`` gradio sends ``None`` as the message of any failure that is not a
    ``gr.Error``; those that happen outside the handlers come from malformed requests: too few
    inputs, a value that is not of its component's kind (a word for a slider), a file that was not
    uploaded, an event that runs in the page only. Here each becomes a ``gr.Error`` that names
    the input and what it takes; anything else (a bug) is logged and reported as ``friendly``
    does. Call it once all events are defined."""
    guarded: set[int] = set()
    for fn in demo.fns.values():
        for block in fn.inputs:
            if isinstance(block, gr.components.Component) and block._id not in guarded:
                guarded.add(block._id)
                _explain_preprocess(block)
    process_api = demo.process_api

    async def explained(block_fn, inputs, *args, **kwargs):
        fn = demo.fns[block_fn] if isinstance(block_fn, int) else block_fn
        name = fn.api_name or fn.name or "this event"
        if not fn.fn:
            raise gr.Error(f"{name} runs in the page only; the server has nothing to run", print_exception=False)
        if len(inputs) < len(fn.inputs):
            labels = ", ".join(_label(block) for block in fn.inputs)
            raise gr.Error(html.escape(f"{name} takes {len(fn.inputs)} inputs ({labels}); the request has "
                                       f"{len(inputs)}"), print_exception=False)
        try:
            return await process_api(block_fn, inputs, *args, **kwargs)
        except gr.Error:
            raise
        except InvalidPathError:
            raise gr.Error("a file in the request was not uploaded to this server; upload it, then send the path "
                           "the upload returned", print_exception=False) from None
        except ValidationError as e:
            raise gr.Error(html.escape(_malformed(fn, inputs, e)), print_exception=False) from None
        except Exception:
            log.exception("%s failed", name)
            raise gr.Error("something went wrong on the server; its log has the details",
                           print_exception=False) from None

    demo.process_api = explained
    return demo


def _explain_preprocess(block) -> None:
    """Make ``block`` turn a value it cannot read into a ``gr.Error`` that names it."""
    preprocess = block.preprocess

    def checked(payload):
        try:
            return preprocess(payload)
        except gr.Error:
            raise
        except Exception:
            raise gr.Error(html.escape(_expected(block, payload)), print_exception=False) from None

    block.preprocess = checked


def _malformed(fn, inputs: list, error: ValidationError) -> str:
    """The input whose value does not fit its component's data model."""
    for block, value in zip(fn.inputs, inputs):
        model = getattr(block, "data_model", None)
        if model is None or value is None:
            continue
        try:
            model.model_validate(value, context={"validate_meta": True})  # as gradio validates
        except ValidationError:
            return _expected(block, value)
    return f"an input of {fn.api_name or fn.name} is malformed: {error.errors()[0]['msg']}"


def _expected(block, value) -> str:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    kind = EXPECTED.get(type(block).__name__, f"a value for a {type(block).__name__.lower()}")
    return f"{_label(block)}: expected {kind}, got {shown}"


def _label(block) -> str:
    label = getattr(block, "label", None)
    if isinstance(label, str) and label:
        return label
    return "Examples" if isinstance(block, gr.Dataset) else type(block).__name__


# -- upload checks --------------------------------------------------------------------------
# gradio opens (and the editor decodes) an upload in the component's own preprocessing, before
# any handler runs, so the header check is put in front of it on each component instance.
# (Subclassing a component instead would make gradio write a .pyi file next to this module.)
def guard_image(image: gr.Image, limits: Limits) -> gr.Image:
    """Refuse files that were not uploaded (a request may name any path on the server), bombs and
    oversized files before ``image`` (type="filepath") opens them."""
    preprocess = image.preprocess

    def checked(payload):
        if payload is not None and payload.path:
            _checked_file(payload.path, limits, image.GRADIO_CACHE)
        return preprocess(payload)

    image.preprocess = checked
    return image


def guard_editor(editor: gr.ImageEditor, limits: Limits) -> gr.ImageEditor:
    """The same for the background and every layer of an image editor."""
    convert = editor.convert_and_format_image

    def checked(file, flatten_on_white: bool = False):
        if file is not None:
            _checked_file(file if isinstance(file, (bytes, bytearray)) else file.path, limits, editor.GRADIO_CACHE)
        return convert(file, flatten_on_white)

    editor.convert_and_format_image = checked
    return editor


# -- the tasks ------------------------------------------------------------------------------
class Tasks:
    def __init__(self, pipe, limits: Limits) -> None:
        self.pipe, self.limits = pipe, limits

    def _sampling(self, steps, guidance_scale, seed) -> dict:
        return {"steps": check_int("steps", steps, 1, self.limits.max_steps),
                "guidance_scale": check_float("guidance scale", guidance_scale, 0.0, MAX_GUIDANCE),
                "seed": check_seed(seed)}

    def _prompt(self, prompt, name: str = "prompt", required: bool = False) -> str:
        prompt = check_text(name, prompt, self.limits, required)
        budget = self.pipe.config.max_text_length - 2
        if len(self.pipe.tokenizer.encode(prompt)) > budget:
            gr.Warning(f"the {name} is longer than the model's {budget} text tokens; its end was cut")
        return prompt

    def _fits(self, prompt_tokens: int, new_tokens: int) -> None:
        room = self.pipe.config.llm.max_position_embeddings
        if prompt_tokens + new_tokens > room:
            raise ValueError(f"the request needs {prompt_tokens + new_tokens} positions; the model has {room}: "
                             "shorten the text or ask for fewer tokens")

    def text_to_image(self, prompt, steps, guidance_scale, seed, batch):
        """Yields (images, denoising strip of the first image, status) after every step."""
        prompt = self._prompt(prompt)
        batch = check_int("number of images", batch, 1, self.limits.max_batch)
        sampling = self._sampling(steps, guidance_scale, seed)
        frames = []
        for step, codes in denoising(self.pipe, [prompt] * batch, **sampling):
            with torch.inference_mode():
                images = self.pipe.decode_codes(codes)
            frames.append(images[0])
            yield images, denoising_strip(frames, sampling["steps"]), f"step {step + 1} of {sampling['steps']}"

    def inpaint(self, editor, prompt, steps, guidance_scale, seed) -> Image.Image:
        if not editor or editor.get("background") is None:
            raise ValueError("please upload an image, then paint over the part to regenerate")
        background = open_checked_image(editor["background"], self.limits)
        mask = painted_mask(editor.get("layers") or [], background.size)
        if mask.getbbox() is None:
            raise ValueError("paint over the part of the image to regenerate (white brush) first")
        size = self.pipe.config.image_size
        return self.pipe.inpaint(resize_and_crop(background, size), resize_and_crop(mask, size),
                                 self._prompt(prompt), **self._sampling(steps, guidance_scale, seed))

    def extrapolate(self, image, prompt, direction, steps, guidance_scale, seed) -> Image.Image:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}")
        image = open_checked_image(image, self.limits)
        return self.pipe.extrapolate(image, self._prompt(prompt), direction=direction,
                                     **self._sampling(steps, guidance_scale, seed))

    def _answer(self, image, question: str, max_new_tokens) -> str:
        image = open_checked_image(image, self.limits)
        max_new_tokens = check_int("new tokens", max_new_tokens, 1, self.limits.max_new_tokens)
        question_tokens = len(self.pipe.tokenizer.encode(understanding_text(question)))
        self._fits(4 + self.pipe.config.num_image_tokens + question_tokens, max_new_tokens)  # <mmu> <soi> <eoi> <sot>
        return self.pipe.answer(image, question, max_new_tokens=max_new_tokens)[0] or "(no answer)"

    def answer(self, image, question, history, max_new_tokens) -> list[dict]:
        """One chat turn about the image; returns the history with the question and its answer."""
        question = check_text("question", question, self.limits)
        if not isinstance(history, list):
            raise ValueError("the chat history is malformed")
        reply = self._answer(image, question, max_new_tokens)
        turn = [{"role": "user", "content": question}, {"role": "assistant", "content": reply}]
        return (history + turn)[-MAX_HISTORY:]

    def caption(self, image, max_new_tokens) -> str:
        return self._answer(image, CAPTION_QUESTION, max_new_tokens)

    def mixed(self, prompt, max_images, max_text_tokens, steps, seed) -> list[dict]:
        """Text and images interleaved, as chat messages (one per segment)."""
        prompt = check_text("prompt", prompt, self.limits)
        max_images = check_int("images", max_images, 1, self.limits.max_images)
        max_text_tokens = check_int("text tokens per segment", max_text_tokens, 1, self.limits.max_new_tokens)
        steps, seed = check_int("steps", steps, 1, self.limits.max_steps), check_seed(seed)
        image_tokens = self.pipe.config.num_image_tokens + 2  # <soi> image <eoi>
        prompt_tokens = 2 + len(self.pipe.tokenizer.encode(prompt))  # <lvg> <sot> prompt
        self._fits(prompt_tokens, (max_images + 1) * max_text_tokens + max_images * image_tokens)
        segments = generate_mixed(self.pipe, prompt, max_images=max_images, max_text_tokens=max_text_tokens,
                                  steps=steps, seed=seed)
        messages = [{"role": "user", "content": prompt}]
        for segment in segments or ["(the model produced nothing)"]:
            content = segment if isinstance(segment, str) else gr.Image(segment, format="png", elem_classes="pixelated")
            messages.append({"role": "assistant", "content": content})
        return messages


def painted_mask(layers: list[Image.Image], size: tuple[int, int]) -> Image.Image:
    """The editor's white paint (opaque, bright pixels of any layer) as an L mask, 255 = regenerate."""
    mask = np.zeros((size[1], size[0]), dtype=bool)
    for layer in layers:
        rgba = np.asarray(layer.convert("RGBA").resize(size, Image.NEAREST))  # (H, W, 4)
        luma = rgba[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        mask |= (rgba[..., 3] > 127) & (luma > 127)
    return Image.fromarray(mask.astype(np.uint8) * 255, mode="L")


def denoising_strip(frames: list[Image.Image], steps: int) -> Image.Image:
    """The frames so far, ``STRIP_COLUMNS`` a row (fewer when there are fewer steps), ``STRIP_GAP``
    white pixels apart. Its width is that of a full row from the first step on, so the page shows
    every frame at one size while rows are added."""
    columns = max(1, min(steps, STRIP_COLUMNS))
    rows = (len(frames) + columns - 1) // columns
    w, h = frames[0].size
    canvas = Image.new("RGB", (columns * w + (columns - 1) * STRIP_GAP, rows * h + (rows - 1) * STRIP_GAP),
                       "white")
    for i, frame in enumerate(frames):
        canvas.paste(frame, ((i % columns) * (w + STRIP_GAP), (i // columns) * (h + STRIP_GAP)))
    return canvas


class _Cancelled(Exception):
    """Raised inside the sampler's callback when the listener has gone away."""


_DONE = object()


def denoising(pipe, prompts: list[str], **kwargs):
    """Yield (step, codes (B, N)) after every MaskGIT step of ``pipe.generate_codes``, which
    runs in a thread; closing the generator (the page went away) stops the sampler."""
    updates: queue.Queue = queue.Queue()
    cancelled = threading.Event()

    def on_step(step, logits, sampled):
        if cancelled.is_set():
            raise _Cancelled
        updates.put((step, sampled.clone()))

    def work():
        try:
            pipe.generate_codes(prompts, callback=on_step, **kwargs)
            updates.put(_DONE)
        except _Cancelled:
            pass
        except Exception as e:  # handed to the listener, which raises it
            updates.put(e)

    threading.Thread(target=work, daemon=True, name="showo-denoise").start()
    try:
        while (item := updates.get()) is not _DONE:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        cancelled.set()


# -- examples -------------------------------------------------------------------------------
def draw_scene(shapes: list[tuple[str, str, tuple[float, float]]], size: int = 64) -> Image.Image:
    """A picture of the built-in world: (kind, colour, centre as fractions) on black."""
    image = Image.new("RGB", (size, size), "black")
    draw, r = ImageDraw.Draw(image), size // 7
    for kind, colour, (fx, fy) in shapes:
        x, y = fx * size, fy * size
        if kind == "circle":
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        elif kind == "square":
            draw.rectangle((x - r, y - r, x + r, y + r), fill=colour)
        else:
            draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=colour)
    return image

