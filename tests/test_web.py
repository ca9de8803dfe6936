"""The web demo: the input checks on their own, then a live server on 127.0.0.1 driven over
HTTP by gradio_client (every endpoint, bad uploads, out-of-range and malformed requests, load)."""

import io
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from PIL import Image

pytestmark = pytest.mark.filterwarnings("ignore:.*no_silent_downcasting", "ignore:The copy keyword is deprecated")
gr = pytest.importorskip("gradio")
pytest.importorskip("gradio_client")
import httpx
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from showo.web.limits import Limits, check_float, check_image_header, check_int, check_text, open_checked_image
from showo.web.tasks import STRIP_COLUMNS, STRIP_GAP, denoising, denoising_strip, draw_scene, friendly, painted_mask

LIMITS = Limits(max_steps=8, max_batch=2, max_new_tokens=16, max_images=2, max_upload_bytes=256 * 1024,
                max_image_side=512, max_image_pixels=512 * 512)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Good and bad uploads, written once."""
    folder = tmp_path_factory.mktemp("uploads")
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    mask.paste((255, 255, 255, 255), (0, 0, 32, 32))
    made = {
        "scene": draw_scene([("circle", "red", (0.25, 0.25))]),
        "mask": mask,
        "wide": Image.new("RGB", (600, 100)),  # over max_image_side = 512
        "bomb": Image.new("1", (20000, 20000)),  # 400 M pixels in a ~50 kB PNG
    }
    raw = {"text": b"not an image at all", "big": b"\0" * (LIMITS.max_upload_bytes + 1)}
    paths = {name: folder / f"{name}.png" for name in [*made, *raw]}
    for name, image in made.items():
        image.save(paths[name])
    for name, data in raw.items():
        paths[name].write_bytes(data)
    return paths


# -- the checks on their own --------------------------------------------------------------------
def test_limits_must_be_positive_ints():
    with pytest.raises(ValueError, match="max_steps"):
        Limits(max_steps=0)
    with pytest.raises(ValueError, match="concurrency"):
        Limits(concurrency=1.5)


def test_number_checks_name_the_field_and_the_bound():
    assert check_int("steps", 18.0, 1, 50) == 18 and check_float("guidance scale", 2, 0, 20) == 2.0
    for bad, message in [(51, "steps must lie in 1..50"), (18.5, "whole number"), (True, "number"),
                         ("5", "number"), (float("nan"), "whole number")]:
        with pytest.raises(ValueError, match=message):
            check_int("steps", bad, 1, 50)
    with pytest.raises(ValueError, match="finite"):
        check_float("guidance scale", float("inf"), 0, 20)


def test_text_checks():
    assert check_text("prompt", "  two blue squares ", LIMITS) == "two blue squares"
    assert check_text("prompt", None, LIMITS, required=False) == ""
    with pytest.raises(ValueError, match="please enter a question"):
        check_text("question", "   ", LIMITS)
    with pytest.raises(ValueError, match="at most 500"):
        check_text("prompt", "x" * 501, LIMITS)
    with pytest.raises(ValueError, match="must be text"):
        check_text("prompt", ["a"], LIMITS)


def test_image_header_checks_refuse_before_decoding(files):
    assert check_image_header(files["scene"], LIMITS) == (64, 64)
    assert check_image_header(files["scene"].read_bytes(), LIMITS) == (64, 64)
    for name, message in [("bomb", "decompression bomb"), ("wide", "600x100 pixels"),
                          ("text", "not an image"), ("big", "MB; this server takes at most")]:
        with pytest.raises(ValueError, match=message):
            check_image_header(files[name], LIMITS)
    with pytest.raises(ValueError, match="500x500"):
        check_image_header(png(Image.new("L", (500, 500))), Limits(max_image_pixels=100_000))


def test_open_checked_image(files, tmp_path):
    image = open_checked_image(files["scene"], LIMITS)
    assert image.mode == "RGB" and image.size == (64, 64)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(png(Image.effect_noise((64, 64), 50))[:300])
    with pytest.raises(ValueError, match="damaged"):
        open_checked_image(truncated, LIMITS)
    with pytest.raises(ValueError, match="upload an image"):
        open_checked_image(None, LIMITS)


def test_painted_mask_is_the_white_paint_of_the_layers():
    layer = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    layer.paste((255, 255, 255, 255), (0, 0, 16, 8))  # white paint
    layer.paste((0, 0, 0, 255), (0, 16, 32, 32))  # opaque black: not paint
    mask = painted_mask([layer], (64, 64))  # layers are scaled to the background
    assert mask.size == (64, 64) and mask.getbbox() == (0, 0, 32, 16)


def test_friendly_turns_errors_into_page_messages():
    def bad_input():
        raise ValueError("steps <b>too</b> many")

    def bug():
        raise RuntimeError("secret internals")

    def stream():
        yield 1
        raise ValueError("stopped")

    with pytest.raises(gr.Error) as caught:
        friendly(bad_input)()
    assert caught.value.message == "steps &lt;b&gt;too&lt;/b&gt; many"
    with pytest.raises(gr.Error) as caught:
        friendly(bug)()
    assert "secret" not in caught.value.message and "log" in caught.value.message
    with pytest.raises(gr.Error, match="stopped"):
        list(friendly(stream)())


def strip_size(frames: int, columns: int) -> tuple[int, int]:
    rows = -(-frames // columns)
    return columns * 64 + (columns - 1) * STRIP_GAP, rows * 64 + (rows - 1) * STRIP_GAP


def test_denoising_strip_wraps_into_rows_of_one_width():
    frames = [Image.new("RGB", (64, 64), (4 * i, 0, 0)) for i in range(50)]
    assert STRIP_COLUMNS == 10
    for steps, columns in [(1, 1), (3, 3), (24, 10), (50, 10)]:
        sizes = [denoising_strip(frames[:n], steps).size for n in range(1, steps + 1)]
        assert sizes == [strip_size(n, columns) for n in range(1, steps + 1)]  # one width from the first step
    strip = denoising_strip(frames, 50)  # frame 23: row 2, column 3
    assert strip.getpixel((3 * (64 + STRIP_GAP) + 5, 2 * (64 + STRIP_GAP) + 5)) == (92, 0, 0)


def test_denoising_yields_every_step_and_stops_when_closed(tiny_pipeline):
    steps = list(denoising(tiny_pipeline, ["a red circle"], steps=3, seed=0, guidance_scale=1.0))
    assert [s for s, _ in steps] == [0, 1, 2]
    final = tiny_pipeline.generate_codes(["a red circle"], steps=3, seed=0, guidance_scale=1.0)
    assert torch.equal(steps[-1][1], final)
    stream = denoising(tiny_pipeline, ["a red circle"], steps=8, seed=0)
    next(stream)
    stream.close()  # the sampler thread sees the cancel at its next step and ends


def test_shipped_model_dir_names_the_path_and_the_fix(tmp_path, monkeypatch):
    from showo import pipeline as shipped

    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path / "world")
    with pytest.raises(FileNotFoundError, match="showo quickstart --retrain") as caught:
        shipped.shipped_model_dir()
    assert str(tmp_path / "world") in str(caught.value)
    (tmp_path / "world").mkdir()
    (tmp_path / "world" / "config.json").write_text("{}")
    assert shipped.shipped_model_dir() == tmp_path / "world"


def test_serve_command(tmp_path, monkeypatch, capsys):
    from showo import pipeline as shipped
    from showo.cli.main import build_parser, main, run_serve

    args = build_parser().parse_args(["serve", "--max-steps", "20"])
    assert args.run is run_serve and args.host == "127.0.0.1" and args.port == 7860 and args.max_steps == 20
    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path / "none")
    assert main(["serve"]) == 2  # no shipped model: a message, not a traceback
    assert "pass --model DIR" in capsys.readouterr().err


# -- a live server ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from web_server import running_demo

    with running_demo(LIMITS, tmp_path_factory.mktemp("web")) as demo:
        yield demo


@pytest.fixture(scope="module")
def client(demo, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:  # gradio_client leaves an empty folder in the temp dir per download
        patch.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("client-temp")))
        yield Client(demo.local_url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


def caption(client, files) -> str:
    return client.predict(handle_file(files["scene"]), 4, api_name="/caption")


def test_server_settings(demo, client):
    assert demo.server_name == "127.0.0.1" and demo.local_url.startswith("http://127.0.0.1:")
    assert demo.max_file_size == LIMITS.max_upload_bytes and demo._queue.max_size == LIMITS.queue_size
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(endpoints) == {"/text_to_image", "/inpaint", "/extrapolate", "/answer", "/caption", "/mixed"}
    model_events = [f for f in demo.fns.values() if f.api_name in {e[1:] for e in endpoints}]
    assert len(model_events) == 6
    assert all(f.concurrency_id == "model" and f.concurrency_limit == LIMITS.concurrency for f in model_events)


def test_no_files_outside_the_temp_folder(demo):
    for path in ["/etc/passwd", __file__]:
        response = httpx.get(f"{demo.local_url}gradio_api/file={path}")
        assert response.status_code in (403, 404), path


def test_text_to_image_streams_every_step(client):
    job = client.submit("a red circle at the top left", 3, 1.75, 0, 2, api_name="/text_to_image")
    gallery, strip, status = job.result(timeout=60)
    assert [Image.open(item["image"]).size for item in gallery] == [(64, 64), (64, 64)]
    assert Image.open(strip).size == strip_size(3, 3) and status == "step 3 of 3"
    assert len(job.outputs()) == 3  # one update per MaskGIT step


def test_inpaint_and_extrapolate(client, files):
    editor = {"background": handle_file(files["scene"]), "layers": [handle_file(files["mask"])], "composite": None}
    assert Image.open(client.predict(editor, "a blue square", 2, 1.0, 0, api_name="/inpaint")).size == (64, 64)
    editor["layers"] = []
    with pytest.raises(AppError, match="paint over the part"):
        client.predict(editor, "a blue square", 2, 1.0, 0, api_name="/inpaint")
    for direction, size in [("right", (96, 64)), ("down", (64, 96))]:
        out = client.predict(handle_file(files["scene"]), "a circle", direction, 2, 1.0, 0, api_name="/extrapolate")
        assert Image.open(out).size == size


def test_answer_chat_and_caption(client, files):
    history = client.predict(handle_file(files["scene"]), "What colour is the circle?", [], 4, api_name="/answer")
    history = client.predict(handle_file(files["scene"]), "And its shape?", history, 4, api_name="/answer")
    assert [m["role"] for m in history] == ["user", "assistant"] * 2
    assert history[2]["content"][0]["text"] == "And its shape?" and history[3]["content"][0]["text"]
    assert isinstance(caption(client, files), str) and caption(client, files)
    with pytest.raises(AppError, match="please enter a question"):
        client.predict(handle_file(files["scene"]), "  ", [], 4, api_name="/answer")


def test_mixed(client):
    messages = client.predict("Step by step, build a scene:", 1, 6, 2, 0, api_name="/mixed")
    assert messages[0]["role"] == "user" and len(messages) >= 2
    assert all(m["role"] == "assistant" for m in messages[1:])


def test_mixed_shows_images_between_the_texts(client, monkeypatch):
    from showo.web import tasks as web_tasks

    def fake(pipe, prompt, **kwargs):
        return ["first a circle:", draw_scene([("circle", "red", (0.5, 0.5))]), "then nothing else."]

    monkeypatch.setattr(web_tasks, "generate_mixed", fake)  # the server runs in this process
    messages = client.predict("Step by step:", 1, 6, 2, 0, api_name="/mixed")
    contents = [m["content"][0] for m in messages]
    assert [c["type"] for c in contents] == ["text", "text", "component", "text"]
    assert contents[1]["text"] == "first a circle:" and contents[2]["component"] == "image"
    assert Image.open(contents[2]["value"]).size == (64, 64)


@pytest.mark.parametrize("name, message", [("bomb", "decompression bomb"), ("wide", "600x100 pixels"),
                                           ("text", "not an image")])
def test_bad_images_are_refused_and_the_server_still_serves(client, files, name, message):
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(files[name]), 4, api_name="/caption")
    editor = {"background": handle_file(files[name]), "layers": [], "composite": None}
    with pytest.raises(AppError, match=message):
        client.predict(editor, "a", 2, 1.0, 0, api_name="/inpaint")
    assert caption(client, files)


def test_oversized_upload_is_refused(demo, client, files):
    with pytest.raises(ValueError, match="exceeds the maximum file size"):  # the client checks first
        client.predict(handle_file(files["big"]), 4, api_name="/caption")
    with open(files["big"], "rb") as f:  # the server refuses it on its own
        response = httpx.post(f"{demo.local_url}gradio_api/upload", files={"files": ("big.png", f, "image/png")})
    assert response.status_code == 413 and "maximum allowed size" in response.text
    assert caption(client, files)


def test_values_over_the_limits_are_refused_with_a_message(client, files):
    with pytest.raises(AppError, match="greater than maximum value 8"):
        client.predict("a", 9, 1.0, 0, 1, api_name="/text_to_image")
    with pytest.raises(AppError, match="greater than maximum value 2"):
        client.predict("a", 2, 1.0, 0, 3, api_name="/text_to_image")
    with pytest.raises(AppError, match="greater than maximum value 16"):
        client.predict(handle_file(files["scene"]), 17, api_name="/caption")
    with pytest.raises(AppError, match="at most 500"):
        client.predict("x" * 501, 2, 1.0, 0, 1, api_name="/text_to_image")
    assert caption(client, files)


def test_malformed_requests_fail_cleanly(demo, client, files):
    with pytest.raises(AppError):
        client.predict("a", "many", 1.0, 0, 1, api_name="/text_to_image")
    with pytest.raises(AppError):
        client.predict(handle_file(files["scene"]), "q", "not a history", 4, api_name="/answer")
    response = httpx.post(f"{demo.local_url}gradio_api/queue/join", json={"data": "nonsense", "fn_index": "x"})
    assert 400 <= response.status_code < 500
    assert caption(client, files)


def test_twenty_concurrent_requests_all_finish(client, files):
    scene = handle_file(files["scene"])
    calls = [
        lambda i: client.predict(f"{i} blue squares", 2, 1.0, i, 1, api_name="/text_to_image")[2],
        lambda i: client.predict(scene, 2, api_name="/caption"),
        lambda i: client.predict(scene, f"question {i}?", [], 2, api_name="/answer")[1]["role"],
    ]
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=20) as pool:
        futures = [pool.submit(calls[i % 3], i) for i in range(20)]
        results = [f.result(timeout=120) for f in futures]
    assert len(results) == 20 and all(results)
    assert [r for i, r in enumerate(results) if i % 3 == 0] == ["step 2 of 2"] * 7
    assert time.monotonic() - start < 120
    assert caption(client, files)


# -- the examples of every tab, on the shipped model ------------------------------------------------
@pytest.fixture(scope="module", params=[torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def shipped(tmp_path_factory, request):
    """(Tasks on the shipped model, the example files as the page writes them), in both precisions
    that ``--dtype auto`` picks from (fp32, or bf16 on hardware that runs it fast)."""
    from showo.pipeline import ShowoPipeline, shipped_model_dir
    from showo.web.tasks import Tasks
    from showo.web.ui import example_images

    try:
        pipe = ShowoPipeline.from_pretrained(shipped_model_dir(), torch_dtype=request.param)
    except FileNotFoundError as e:
        pytest.skip(str(e))
    with pytest.MonkeyPatch.context() as env:  # where the mixed tab's gr.Image messages write their pictures
        env.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
        yield Tasks(pipe, Limits()), example_images(tmp_path_factory.mktemp("examples"))


def sampling(tasks) -> tuple:
    """The page's starting steps, guidance scale and seed."""
    return tasks.pipe.generation.steps, tasks.pipe.generation.guidance_scale, 0


def test_text_to_image_examples(shipped):
    from showo.web.ui import EXAMPLE_PROMPTS
    from showo.world import caption_matches, read_scene

    tasks, _ = shipped
    assert len(set(EXAMPLE_PROMPTS)) == len(EXAMPLE_PROMPTS)
    for prompt in EXAMPLE_PROMPTS:
        *_, (images, _, _) = tasks.text_to_image(prompt, *sampling(tasks), 4)  # the last step's update
        scenes = [read_scene(image) for image in images]
        assert all(caption_matches(prompt, scene) for scene in scenes), (prompt, scenes)


def test_inpainting_examples(shipped):
    from showo.web.ui import EXAMPLE_SCENES, INPAINT_EXAMPLES, inpaint_example
    from showo.world import caption_matches, read_scene
    from showo.world.scene import slot_box

    tasks, files = shipped
    assert len({name for name, _, _ in INPAINT_EXAMPLES}) == len({p for _, _, p in INPAINT_EXAMPLES}) > 1
    for name, slot, prompt in INPAINT_EXAMPLES:
        paths = inpaint_example(files, name, slot)
        editor = {"background": Image.open(paths["background"]).convert("RGBA"),
                  "layers": [Image.open(p).convert("RGBA") for p in paths["layers"]],
                  "composite": Image.open(paths["composite"])}
        assert painted_mask(editor["layers"], (64, 64)).getbbox() == slot_box(slot, 64)
        scene = read_scene(tasks.inpaint(editor, prompt, *sampling(tasks)))
        assert caption_matches(prompt, scene, complete=True), (prompt, scene)
        kept = [o for o in EXAMPLE_SCENES[name].objects if o.slot != slot]
        assert all(o in scene.objects for o in kept), (name, scene)  # the unpainted part is the same


def test_extrapolation_examples(shipped):
    from showo.web.ui import EXTRAPOLATE_EXAMPLES
    from showo.world import caption_matches, read_scene

    tasks, files = shipped
    assert len({direction for _, _, direction in EXTRAPOLATE_EXAMPLES}) == len(EXTRAPOLATE_EXAMPLES)
    for name, prompt, direction in EXTRAPOLATE_EXAMPLES:
        out = tasks.extrapolate(files[name], prompt, direction, *sampling(tasks))
        w, h = out.size
        window = {"right": (w - 64, 0, w, 64), "left": (0, 0, 64, 64), "down": (0, h - 64, 64, h),
                  "up": (0, 0, 64, 64)}[direction]  # the new picture: the kept half and the grown one
        assert (w, h) == ((96, 64) if direction in ("left", "right") else (64, 96))
        scene = read_scene(out.crop(window))
        assert caption_matches(prompt, scene, complete=True), (prompt, scene)


def test_question_and_caption_examples(shipped):
    from showo.web.ui import CAPTION_EXAMPLES, CAPTION_TOKENS, EXAMPLE_SCENES, VQA_EXAMPLES, VQA_TOKENS
    from showo.world import answer_matches, answer_question, caption_matches

    tasks, files = shipped
    assert len({q for _, q in VQA_EXAMPLES}) == len(VQA_EXAMPLES) and len(set(CAPTION_EXAMPLES)) > 1
    for name, question in VQA_EXAMPLES:
        expected = answer_question(question, EXAMPLE_SCENES[name])
        assert expected is not None, question  # a question of the world's kinds
        reply = tasks.answer(files[name], question, [], VQA_TOKENS)[-1]["content"]
        assert answer_matches(reply, expected), (question, reply, expected)
    for name in CAPTION_EXAMPLES:
        caption = tasks.caption(files[name], CAPTION_TOKENS)
        assert caption_matches(caption, EXAMPLE_SCENES[name], complete=True), (name, caption)


def test_mixed_examples(shipped):
    from showo.evaluation.tasks import mixed_consistency
    from showo.web.ui import MIXED_EXAMPLES, MIXED_IMAGES, MIXED_TOKENS

    tasks, _ = shipped
    assert len(set(MIXED_EXAMPLES)) == len(MIXED_EXAMPLES)
    for prompt in MIXED_EXAMPLES:
        messages = tasks.mixed(prompt, MIXED_IMAGES, MIXED_TOKENS, tasks.pipe.generation.steps, 0)
        segments = [Image.open(m["content"].value["path"]) if isinstance(m["content"], gr.Image) else m["content"]
                    for m in messages[1:]]
        pictures = [s for s in segments if not isinstance(s, str)]
        texts = [s.strip() for s in segments if isinstance(s, str)]
        assert messages[0]["content"] == prompt and len(pictures) == MIXED_IMAGES, (prompt, segments)
        assert all(t and t[0].isupper() and t.endswith(".") for t in texts), (prompt, texts)  # whole sentences
        assert all(mixed_consistency(prompt, segments)), (prompt, texts)
