"""The page of the web demo: one tab per task, wired to ``web_tasks.Tasks``.

Every model call shares one concurrency group (``MODEL``), so the server runs at most
``Limits.concurrency`` of them at once whichever tabs they come from. Each event has an
``api_name``, which is how ``gradio_client`` (and the tests) call it.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr
from PIL import Image

from ..generation.editing import DIRECTIONS
from ..world.scene import Obj, Scene, slot_box
from .limits import MB, Limits
from .tasks import MAX_GUIDANCE, STRIP_COLUMNS, Tasks, explain_failures, friendly, guard_editor, guard_image

# -- examples ---------------------------------------------------------------------------------
# Pictures of the built-in world (showo/weights/world) and what each tab asks of them, phrased as the
# model was trained on (showo.world.language). tests/test_web.py runs every one of them on the
# shipped model and checks the result with showo.world.read_scene.
EXAMPLE_SCENES = {  # file name -> scene
    "red_circle.png": Scene((Obj("circle", "red", "large", "top left"),)),
    "two_blue_squares.png": Scene((Obj("square", "blue", "large", "top right"),
                                   Obj("square", "blue", "small", "bottom left"))),
    "triangle_and_circle.png": Scene((Obj("triangle", "yellow", "large", "top left"),
                                      Obj("circle", "green", "small", "top right"))),
    "three_shapes.png": Scene((Obj("circle", "white", "small", "top left"),
                               Obj("triangle", "purple", "large", "top right"),
                               Obj("square", "yellow", "large", "bottom right"))),
    "circle_at_the_right.png": Scene((Obj("circle", "red", "large", "top right"),)),
    "bottom_row.png": Scene((Obj("square", "blue", "large", "bottom left"),
                             Obj("triangle", "yellow", "small", "bottom right"))),
}
EXAMPLE_PROMPTS = [
    "a red circle at the top left",
    "three red squares",
    "a yellow triangle to the left of a green circle",
    "a large purple triangle above a small white circle",
]
# (picture, the slot painted white, the prompt: the whole picture wanted, as t2i captions describe it)
INPAINT_EXAMPLES = [
    ("red_circle.png", "bottom right", "a red circle at the top left and a yellow triangle at the bottom right"),
    ("triangle_and_circle.png", "top right", "a yellow triangle at the top left and a blue square at the top right"),
    ("three_shapes.png", "top left",
     "a green circle at the top left, a purple triangle at the top right and a yellow square at the bottom right"),
]
# (picture, prompt, direction): the prompt describes the new picture, the kept half moved to the other side
EXTRAPOLATE_EXAMPLES = [
    ("circle_at_the_right.png", "a red circle at the top left and a green square at the bottom right", "right"),
    ("bottom_row.png", "a blue square at the top left, a yellow triangle at the top right and a white circle at "
                       "the bottom left", "down"),
]
VQA_EXAMPLES = [
    ("red_circle.png", "What colour is the circle?"),
    ("two_blue_squares.png", "How many squares are there?"),
    ("triangle_and_circle.png", "What shape is the green object?"),
    ("three_shapes.png", "Where is the purple triangle?"),
]
CAPTION_EXAMPLES = ["red_circle.png", "two_blue_squares.png", "triangle_and_circle.png", "three_shapes.png"]
# The first sentence of a scene built step by step, as the interleaved training rows start
MIXED_EXAMPLES = [
    "Start with a red circle at the top left.",
    "Begin with a large yellow triangle at the bottom right.",
    "First, draw a small blue square at the top right.",
]
# The page's starting values that the examples run with (besides the model's own steps and guidance)
VQA_TOKENS, CAPTION_TOKENS, MIXED_IMAGES, MIXED_TOKENS = 32, 48, 2, 32
MODEL = "model"  # the concurrency group of every event that runs the model


def make_blocks(pipe, limits: Limits, temp_dir: Path) -> gr.Blocks:
    tasks, examples = Tasks(pipe, limits), example_images(temp_dir / "examples")
    size = pipe.config.image_size
    with gr.Blocks(title="Show-o", analytics_enabled=False,
                   delete_cache=(limits.cache_seconds, limits.cache_seconds)) as demo:
        gr.Markdown(f"# Show-o\nOne transformer that answers questions about images and draws them by masked-token "
                    f"diffusion. This model makes {size}x{size} pictures. Limits here: {limits.max_steps} steps, "
                    f"{limits.max_new_tokens} new tokens, uploads up to {limits.max_upload_bytes / MB:g} MB and "
                    f"{limits.max_image_side} pixels a side.")
        with gr.Tabs():
            with gr.Tab("Text to image", id="t2i"):
                text_to_image_tab(tasks, limits)
            with gr.Tab("Inpainting", id="inpaint"):
                inpaint_tab(tasks, limits, examples)
            with gr.Tab("Extrapolation", id="extrapolate"):
                extrapolate_tab(tasks, limits, examples)
            with gr.Tab("Visual Q&A", id="vqa"):
                answer_tab(tasks, limits, examples)
            with gr.Tab("Captioning", id="caption"):
                caption_tab(tasks, limits, examples)
            with gr.Tab("Mixed text and images", id="mixed"):
                mixed_tab(tasks, limits)
    return explain_failures(demo)


def example_images(folder: Path) -> dict[str, str]:
    """Write the example pictures, and for each inpainting example its mask (an editor layer: white
    paint over the slot, transparent elsewhere) and the picture with that paint on it. Returns
    file name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, scene in EXAMPLE_SCENES.items():
        scene.render().save(folder / name)
        paths[name] = str(folder / name)
    for name, slot, _ in INPAINT_EXAMPLES:
        picture = EXAMPLE_SCENES[name].render().convert("RGBA")
        layer = Image.new("RGBA", picture.size, (0, 0, 0, 0))
        layer.paste((255, 255, 255, 255), slot_box(slot, picture.width))
        stem = f"{Path(name).stem}_{slot.replace(' ', '_')}"
        layer.save(folder / f"{stem}_mask.png")
        Image.alpha_composite(picture, layer).save(folder / f"{stem}_painted.png")
        paths[f"{stem}_mask.png"], paths[f"{stem}_painted.png"] = (str(folder / f"{stem}_mask.png"),
                                                                    str(folder / f"{stem}_painted.png"))
    return paths


def inpaint_example(examples: dict[str, str], name: str, slot: str) -> dict:
    """The editor's value for an inpainting example: the picture, and the slot already painted."""
    stem = f"{Path(name).stem}_{slot.replace(' ', '_')}"
    return {"background": examples[name], "layers": [examples[f"{stem}_mask.png"]],
            "composite": examples[f"{stem}_painted.png"]}


def model_event(limits: Limits, api_name: str) -> dict:
    return {"api_name": api_name, "concurrency_limit": limits.concurrency, "concurrency_id": MODEL}


def steps_slider(tasks: Tasks, limits: Limits, elem_id: str | None = None) -> gr.Slider:
    """Starts at the model's own default (its generation_config.json)."""
    steps = min(tasks.pipe.generation.steps, limits.max_steps)
    return gr.Slider(1, limits.max_steps, value=steps, step=1, label="Steps", elem_id=elem_id)


def tokens_slider(limits: Limits, value: int, label: str = "Max new tokens") -> gr.Slider:
    return gr.Slider(1, limits.max_new_tokens, value=min(value, limits.max_new_tokens), step=1, label=label)


def seed_box() -> gr.Number:
    return gr.Number(0, precision=0, minimum=0, maximum=2**31 - 1, label="Seed")


def sampling_controls(tasks: Tasks, limits: Limits, tab: str) -> tuple[gr.Slider, gr.Slider, gr.Number]:
    scale = min(tasks.pipe.generation.guidance_scale, MAX_GUIDANCE)
    guidance = gr.Slider(0, MAX_GUIDANCE, value=scale, step=0.25, label="Guidance scale")
    return steps_slider(tasks, limits, f"{tab}-steps"), guidance, seed_box()


def prompt_box(limits: Limits, value: str = "", label: str = "Prompt", elem_id: str | None = None) -> gr.Textbox:
    return gr.Textbox(value, label=label, max_length=limits.max_prompt_chars, lines=1, elem_id=elem_id)


def uploaded_image(limits: Limits, elem_id: str, label: str = "Image") -> gr.Image:
    image = gr.Image(label=label, type="filepath", image_mode=None, sources=["upload", "clipboard"],
                     height=280, elem_classes="pixelated", elem_id=elem_id)
    return guard_image(image, limits)


def result_image(label: str = "Result", elem_id: str | None = None) -> gr.Image:
    return gr.Image(label=label, format="png", height=280, interactive=False, elem_classes=["pixelated", "below-label"],
                    elem_id=elem_id)


def text_to_image_tab(tasks: Tasks, limits: Limits) -> None:
    with gr.Row():
        with gr.Column():
            prompt = prompt_box(limits, EXAMPLE_PROMPTS[0])
            steps, scale, seed = sampling_controls(tasks, limits, "t2i")
            batch = gr.Slider(1, limits.max_batch, value=1, step=1, label="Images", elem_id="t2i-batch")
            run = gr.Button("Generate", variant="primary", elem_id="t2i-run")
            gr.Examples([[p] for p in EXAMPLE_PROMPTS], inputs=[prompt])
        with gr.Column():
            # Sized by its pictures (server.CSS): one large, or two a row, each whole; no preview overlay.
            gallery = gr.Gallery(label="Images", format="png", columns=2, object_fit="contain", allow_preview=False,
                                 elem_classes=["pixelated", "fit-gallery"], interactive=False, elem_id="t2i-gallery")
            strip = gr.Image(label=f"Denoising of the first image: one frame per step, {STRIP_COLUMNS} a row",
                             format="png", interactive=False, elem_classes=["pixelated", "below-label", "fit-strip"],
                             elem_id="t2i-strip")
            status = gr.Markdown(elem_id="t2i-status")
    gr.on([run.click, prompt.submit], friendly(tasks.text_to_image), [prompt, steps, scale, seed, batch],
          [gallery, strip, status], **model_event(limits, "text_to_image"))


def inpaint_tab(tasks: Tasks, limits: Limits, examples: dict[str, str]) -> None:
    with gr.Row():
        with gr.Column():
            editor = gr.ImageEditor(
                label="Image: paint the part to regenerate in white", type="pil", image_mode="RGBA",
                sources=["upload", "clipboard"],
                brush=gr.Brush(default_size=6, colors=["#ffffff"], color_mode="fixed"),
                layers=gr.LayerOptions(allow_additional_layers=False, layers=["mask"]), transforms=(),
                height=320, elem_classes="pixelated", elem_id="inpaint-editor")
            guard_editor(editor, limits)
            prompt = prompt_box(limits, INPAINT_EXAMPLES[0][2])
            steps, scale, seed = sampling_controls(tasks, limits, "inpaint")
            run = gr.Button("Inpaint", variant="primary", elem_id="inpaint-run")
        with gr.Column():
            result = result_image(elem_id="inpaint-result")
    gr.Examples([[inpaint_example(examples, name, slot), text] for name, slot, text in INPAINT_EXAMPLES],
                inputs=[editor, prompt], label="Examples (the white part is regenerated)")
    run.click(friendly(tasks.inpaint), [editor, prompt, steps, scale, seed], result,
              **model_event(limits, "inpaint"))


def extrapolate_tab(tasks: Tasks, limits: Limits, examples: dict[str, str]) -> None:
    with gr.Row():
        with gr.Column():
            image = uploaded_image(limits, elem_id="extrapolate-image")
            prompt = prompt_box(limits, EXTRAPOLATE_EXAMPLES[0][1], label="Prompt (the new picture, grown)")
            direction = gr.Radio(list(DIRECTIONS), value=EXTRAPOLATE_EXAMPLES[0][2], label="Grow toward")
            steps, scale, seed = sampling_controls(tasks, limits, "extrapolate")
            run = gr.Button("Extrapolate", variant="primary", elem_id="extrapolate-run")
        with gr.Column():
            result = result_image("Original and new part", elem_id="extrapolate-result")
    gr.Examples([[examples[name], text, toward] for name, text, toward in EXTRAPOLATE_EXAMPLES],
                inputs=[image, prompt, direction])
    run.click(friendly(tasks.extrapolate), [image, prompt, direction, steps, scale, seed], result,
              **model_event(limits, "extrapolate"))


def answer_tab(tasks: Tasks, limits: Limits, examples: dict[str, str]) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            image = uploaded_image(limits, elem_id="vqa-image")
            tokens = tokens_slider(limits, VQA_TOKENS)
        with gr.Column(scale=2):
            chat = gr.Chatbot(label="Chat about the image", height=340, elem_classes="below-toolbar",
                              elem_id="vqa-chat")
            question = prompt_box(limits, label="Question", elem_id="vqa-question")
            with gr.Row():
                ask = gr.Button("Ask", variant="primary", elem_id="vqa-ask")
                gr.ClearButton([chat, question], value="Clear chat")
    gr.Examples([[examples[name], text] for name, text in VQA_EXAMPLES], inputs=[image, question])
    # The question is no output of the model's event, which empties it only once an answer came: gradio
    # covers the outputs of a failed event with an "Error" badge, which hid what the user had typed
    # (server.CSS keeps the badge off the chat too; the message shows in a toast).
    answered = gr.on([ask.click, question.submit], friendly(tasks.answer), [image, question, chat, tokens], chat,
                     show_progress="minimal", **model_event(limits, "answer"))
    answered.success(None, None, question, js="() => ''", queue=False, api_visibility="private")


def caption_tab(tasks: Tasks, limits: Limits, examples: dict[str, str]) -> None:
    with gr.Row():
        with gr.Column():
            image = uploaded_image(limits, elem_id="caption-image")
            tokens = tokens_slider(limits, CAPTION_TOKENS)
            run = gr.Button("Caption", variant="primary", elem_id="caption-run")
        with gr.Column():
            caption = gr.Textbox(label="Caption", lines=4, interactive=False, elem_id="caption-text")
    gr.Examples([[examples[name]] for name in CAPTION_EXAMPLES], inputs=[image])
    run.click(friendly(tasks.caption), [image, tokens], caption, **model_event(limits, "caption"))


def mixed_tab(tasks: Tasks, limits: Limits) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            prompt = prompt_box(limits, MIXED_EXAMPLES[0])
            images = gr.Slider(1, limits.max_images, value=min(MIXED_IMAGES, limits.max_images), step=1,
                               label="Images at most")
            tokens = tokens_slider(limits, MIXED_TOKENS, "Text tokens per segment")
            steps, seed = steps_slider(tasks, limits, "mixed-steps"), seed_box()
            run = gr.Button("Generate", variant="primary", elem_id="mixed-run")
            gr.Examples([[p] for p in MIXED_EXAMPLES], inputs=[prompt])
        with gr.Column(scale=2):
            story = gr.Chatbot(label="Text and images, in order", height=620, elem_id="mixed-story",
                               elem_classes=["pixelated", "below-toolbar", "chat-pictures"])
    run.click(friendly(tasks.mixed), [prompt, images, tokens, steps, seed], story, **model_event(limits, "mixed"))
