"""The web demo in a real browser: Debian's chromium, headless, driven by Playwright.

Each test uses one tab and leaves a screenshot of it: under docs/screenshots/ (for the README)
when SHOWO_SCREENSHOTS=1, else in a temporary folder. With SHOWO_SCREENSHOTS=1 the shipped
model is used when it is there, the tiny random one otherwise."""

import functools
import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the [dev] extra)")

from showo.generation.generation_config import GenerationConfig

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no system chromium on PATH (apt-get install chromium)"),
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting", "ignore:The copy keyword is deprecated"),
]
SCREENSHOTS = os.environ.get("SHOWO_SCREENSHOTS") == "1"


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    if not SCREENSHOTS:
        return tmp_path_factory.mktemp("screenshots")
    folder = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@functools.cache
def demo_pipeline():
    if SCREENSHOTS:
        from showo.pipeline import ShowoPipeline, shipped_model_dir

        try:
            return ShowoPipeline.from_pretrained(shipped_model_dir())
        except FileNotFoundError:
            pass
    return None  # the tiny random pipeline


def served_steps() -> int:
    """The steps slider's start: the served model's generation_config.json (the tiny one: 18)."""
    pipe = demo_pipeline()
    return (pipe.generation if pipe is not None else GenerationConfig()).steps


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from web_server import running_demo

    from showo.web.limits import Limits

    with (running_demo(Limits(), tmp_path_factory.mktemp("web"), demo_pipeline()) as demo,
          sync_api.sync_playwright() as playwright):
        args = ["--no-sandbox"] if os.geteuid() == 0 else []  # chromium's sandbox refuses root
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(60_000)
        page.goto(demo.local_url)
        page.locator("#t2i-run").wait_for()
        yield page
        browser.close()


def open_tab(page, name: str):
    page.get_by_role("tab", name=name, exact=True).click()
    return page.get_by_role("tabpanel")


def loaded_image(page, selector: str) -> dict:
    image = page.locator(f"{selector} img").first
    image.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    return image.evaluate("img => ({width: img.naturalWidth, height: img.naturalHeight})")


def pick_example(panel, row: int = 0) -> None:
    """Examples of several inputs are table rows; of one input, buttons in a gallery."""
    panel.locator("table tbody tr, button.gallery-item").nth(row).click()


def test_text_to_image_shows_the_image(page, shots):
    open_tab(page, "Text to image")
    page.locator("#t2i-run").click()
    steps = served_steps()
    page.locator("#t2i-status").get_by_text(f"step {steps} of {steps}").wait_for()
    assert loaded_image(page, "#t2i-gallery") == {"width": 64, "height": 64}
    assert loaded_image(page, "#t2i-strip") == {"width": steps * 64, "height": 64}
    page.screenshot(path=shots / "t2i.png", full_page=True)


def test_inpainting_with_a_painted_mask(page, shots):
    panel = open_tab(page, "Inpainting")
    pick_example(panel)
    editor = page.locator("#inpaint-editor")
    editor.get_by_role("button", name="Brush", exact=True).click()
    box = editor.locator("canvas").first.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 40, y - 40)
    page.mouse.down()
    for i in range(1, 6):
        page.mouse.move(x - 40 + 16 * i, y - 40 + 8 * i)
    page.mouse.up()
    page.locator("#inpaint-run").click()
    assert loaded_image(page, "#inpaint-result") == {"width": 64, "height": 64}
    page.screenshot(path=shots / "inpaint.png", full_page=True)


def test_extrapolation(page, shots):
    pick_example(open_tab(page, "Extrapolation"))
    page.locator("#extrapolate-image img").first.wait_for()
    page.locator("#extrapolate-run").click()
    assert loaded_image(page, "#extrapolate-result") == {"width": 96, "height": 64}
    page.screenshot(path=shots / "extrapolate.png", full_page=True)


def test_visual_question_answering_in_the_chat(page, shots, tmp_path):
    from showo.web.tasks import draw_scene

    open_tab(page, "Visual Q&A")
    draw_scene([("circle", "red", (0.25, 0.25)), ("square", "blue", (0.7, 0.7))]).save(tmp_path / "scene.png")
    page.locator("#vqa-image input[type=file]").set_input_files(tmp_path / "scene.png")
    page.locator("#vqa-image img").first.wait_for()
    page.locator("#vqa-question textarea, #vqa-question input").first.fill("What colour is the circle?")
    page.locator("#vqa-ask").click()
    chat = page.locator("#vqa-chat")
    chat.locator("[data-testid=bot]").first.wait_for()
    assert "What colour is the circle?" in chat.locator("[data-testid=user]").first.inner_text()
    assert chat.locator("[data-testid=bot]").first.inner_text().strip()
    page.screenshot(path=shots / "vqa.png", full_page=True)


def test_captioning(page, shots):
    pick_example(open_tab(page, "Captioning"))
    page.locator("#caption-image img").first.wait_for()
    page.locator("#caption-run").click()
    text = page.locator("#caption-text textarea")
    page.wait_for_function("box => box.value.length > 0", arg=text.element_handle())
    page.screenshot(path=shots / "caption.png", full_page=True)


def test_mixed_generation(page, shots):
    open_tab(page, "Mixed text and images")
    page.locator("#mixed-run").click()
    page.locator("#mixed-story [data-testid=bot]").first.wait_for()
    assert "Step by step" in page.locator("#mixed-story [data-testid=user]").first.inner_text()
    page.screenshot(path=shots / "mixed.png", full_page=True)


def test_bad_input_gets_a_message_in_the_page(page):
    open_tab(page, "Visual Q&A")
    page.locator("#vqa-question textarea, #vqa-question input").first.fill("")
    page.locator("#vqa-ask").click()
    page.get_by_text("please enter a question").first.wait_for()
    assert "Traceback" not in page.content()
