"""The page of the web demo: one tab per task, wired to ``web_tasks.Tasks``.

Every model call shares one concurrency group (``MODEL``), so the server runs at most
``Limits.concurrency`` of them at once whichever tabs they come from. Each event has an
``api_name``, which is how ``gradio_client`` (and the tests) call it.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from ..generation.editing import DIRECTIONS
from .limits import MB, Limits
from .tasks import MAX_GUIDANCE, Tasks, draw_scene, explain_failures, friendly, guard_editor, guard_image

EXAMPLE_PROMPTS = [
    "a red circle at the top left",
    "two blue squares",
    "a yellow triangle to the left of a green circle",
]
EXAMPLE_SCENES = {  # file name -> shapes (kind, colour, centre as fractions of the side)
    "red_circle.png": [("circle", "red", (0.25, 0.25))],
    "two_blue_squares.png": [("square", "blue", (0.3, 0.6)), ("square", "blue", (0.72, 0.35))],
    "triangle_and_circle.png": [("triangle", "yellow", (0.28, 0.5)), ("circle", "green", (0.72, 0.5))],
}
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


def example_images(folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, shapes in EXAMPLE_SCENES.items():
        draw_scene(shapes).save(folder / name)
        paths.append(str(folder / name))
    return paths


def model_event(limits: Limits, api_name: str) -> dict:
    return {"api_name": api_name, "concurrency_limit": limits.concurrency, "concurrency_id": MODEL}


def steps_slider(tasks: Tasks, limits: Limits) -> gr.Slider:
    """Starts at the model's own default (its generation_config.json)."""
    steps = min(tasks.pipe.generation.steps, limits.max_steps)
    return gr.Slider(1, limits.max_steps, value=steps, step=1, label="Steps")


def tokens_slider(limits: Limits, value: int, label: str = "Max new tokens") -> gr.Slider:
    return gr.Slider(1, limits.max_new_tokens, value=min(value, limits.max_new_tokens), step=1, label=label)


def seed_box() -> gr.Number:
    return gr.Number(0, precision=0, minimum=0, maximum=2**31 - 1, label="Seed")


def sampling_controls(tasks: Tasks, limits: Limits) -> tuple[gr.Slider, gr.Slider, gr.Number]:
    scale = min(tasks.pipe.generation.guidance_scale, MAX_GUIDANCE)
    guidance = gr.Slider(0, MAX_GUIDANCE, value=scale, step=0.25, label="Guidance scale")
    return steps_slider(tasks, limits), guidance, seed_box()


def prompt_box(limits: Limits, value: str = "", label: str = "Prompt", elem_id: str | None = None) -> gr.Textbox:
    return gr.Textbox(value, label=label, max_length=limits.max_prompt_chars, lines=1, elem_id=elem_id)


def uploaded_image(limits: Limits, elem_id: str, label: str = "Image") -> gr.Image:
    image = gr.Image(label=label, type="filepath", image_mode=None, sources=["upload", "clipboard"],
                     height=280, elem_classes="pixelated", elem_id=elem_id)
    return guard_image(image, limits)


def result_image(label: str = "Result", elem_id: str | None = None) -> gr.Image:
    return gr.Image(label=label, format="png", height=280, interactive=False, elem_classes="pixelated",
                    elem_id=elem_id)


def text_to_image_tab(tasks: Tasks, limits: Limits) -> None:
    with gr.Row():
        with gr.Column():
            prompt = prompt_box(limits, EXAMPLE_PROMPTS[0])
            steps, scale, seed = sampling_controls(tasks, limits)
            batch = gr.Slider(1, limits.max_batch, value=1, step=1, label="Images")
            run = gr.Button("Generate", variant="primary", elem_id="t2i-run")
            gr.Examples([[p] for p in EXAMPLE_PROMPTS], inputs=[prompt])
        with gr.Column():
            gallery = gr.Gallery(label="Images", format="png", columns=2, height=300, object_fit="contain",
                                 elem_classes="pixelated", interactive=False, elem_id="t2i-gallery")
            strip = gr.Image(label="Denoising, step by step (first image)", format="png", interactive=False,
                             elem_classes="pixelated", elem_id="t2i-strip")
            status = gr.Markdown(elem_id="t2i-status")
    gr.on([run.click, prompt.submit], friendly(tasks.text_to_image), [prompt, steps, scale, seed, batch],
          [gallery, strip, status], **model_event(limits, "text_to_image"))


def inpaint_tab(tasks: Tasks, limits: Limits, examples: list[str]) -> None:
    with gr.Row():
        with gr.Column():
            editor = gr.ImageEditor(
                label="Image: paint the part to regenerate in white", type="pil", image_mode="RGBA",
                sources=["upload", "clipboard"],
                brush=gr.Brush(default_size=6, colors=["#ffffff"], color_mode="fixed"),
                layers=gr.LayerOptions(allow_additional_layers=False, layers=["mask"]), transforms=(),
                height=320, elem_classes="pixelated", elem_id="inpaint-editor")
            guard_editor(editor, limits)
            prompt = prompt_box(limits, "a blue square")
            steps, scale, seed = sampling_controls(tasks, limits)
            run = gr.Button("Inpaint", variant="primary", elem_id="inpaint-run")
        with gr.Column():
            result = result_image(elem_id="inpaint-result")
    gr.Examples([[path, "a blue square"] for path in examples[:2]], inputs=[editor, prompt])
    run.click(friendly(tasks.inpaint), [editor, prompt, steps, scale, seed], result,
              **model_event(limits, "inpaint"))


def extrapolate_tab(tasks: Tasks, limits: Limits, examples: list[str]) -> None:
    with gr.Row():
        with gr.Column():
            image = uploaded_image(limits, elem_id="extrapolate-image")
            prompt = prompt_box(limits, "a green circle")
            direction = gr.Radio(list(DIRECTIONS), value="right", label="Grow toward")
            steps, scale, seed = sampling_controls(tasks, limits)
            run = gr.Button("Extrapolate", variant="primary", elem_id="extrapolate-run")
        with gr.Column():
            result = result_image("Original and new part", elem_id="extrapolate-result")
    gr.Examples([[examples[0], "a green circle", "right"], [examples[2], "a red square", "down"]],
                inputs=[image, prompt, direction])
    run.click(friendly(tasks.extrapolate), [image, prompt, direction, steps, scale, seed], result,
              **model_event(limits, "extrapolate"))


def answer_tab(tasks: Tasks, limits: Limits, examples: list[str]) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            image = uploaded_image(limits, elem_id="vqa-image")
            tokens = tokens_slider(limits, 32)
        with gr.Column(scale=2):
            chat = gr.Chatbot(label="Chat about the image", height=340, elem_id="vqa-chat")
            question = prompt_box(limits, label="Question", elem_id="vqa-question")
            with gr.Row():
                ask = gr.Button("Ask", variant="primary", elem_id="vqa-ask")
                gr.ClearButton([chat, question], value="Clear chat")
    gr.Examples([[examples[0], "What colour is the circle?"], [examples[1], "How many squares are there?"]],
                inputs=[image, question])
    gr.on([ask.click, question.submit], friendly(tasks.answer), [image, question, chat, tokens], [chat, question],
          **model_event(limits, "answer"))


def caption_tab(tasks: Tasks, limits: Limits, examples: list[str]) -> None:
    with gr.Row():
        with gr.Column():
            image = uploaded_image(limits, elem_id="caption-image")
            tokens = tokens_slider(limits, 48)
            run = gr.Button("Caption", variant="primary", elem_id="caption-run")
        with gr.Column():
            caption = gr.Textbox(label="Caption", lines=4, interactive=False, elem_id="caption-text")
    gr.Examples([[path] for path in examples], inputs=[image])
    run.click(friendly(tasks.caption), [image, tokens], caption, **model_event(limits, "caption"))


def mixed_tab(tasks: Tasks, limits: Limits) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            prompt = prompt_box(limits, "Step by step, build a scene:")
            images = gr.Slider(1, limits.max_images, value=min(2, limits.max_images), step=1, label="Images at most")
            tokens = tokens_slider(limits, 32, "Text tokens per segment")
            steps, seed = steps_slider(tasks, limits), seed_box()
            run = gr.Button("Generate", variant="primary", elem_id="mixed-run")
            gr.Examples([["Step by step, build a scene:"], ["Draw a red circle, then add a blue square."]],
                        inputs=[prompt])
        with gr.Column(scale=2):
            story = gr.Chatbot(label="Text and images, in order", height=420, elem_classes="pixelated",
                               elem_id="mixed-story")
    run.click(friendly(tasks.mixed), [prompt, images, tokens, steps, seed], story, **model_event(limits, "mixed"))
