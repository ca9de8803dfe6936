"""The web demo in a real browser: Debian's chromium, headless, driven by Playwright.

Each test uses one tab and leaves a screenshot of it: under docs/screenshots/ (for the README)
when SHOWO_SCREENSHOTS=1, else in a temporary folder. With SHOWO_SCREENSHOTS=1 the shipped
model is used when it is there, the tiny random one otherwise.

The layout is measured, not only looked at: every picture a tab shows must be drawn whole (inside
its element and every ancestor that clips, at its own aspect ratio) and not covered by anything
(``shown_whole``), and the chat history must stay clear of the chat's label and buttons."""

import functools
import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the [dev] extra)")

from showo.generation.generation_config import GenerationConfig
from showo.web.tasks import STRIP_COLUMNS, STRIP_GAP

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no system chromium on PATH (apt-get install chromium)"),
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting", "ignore:The copy keyword is deprecated",
                               "ignore:prompt of .* tokens is over the budget"),  # the tiny model's is short
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


# Where the picture of an <img> is drawn (its content box, placed by object-fit and object-position),
# the part of the page that the element and its clipping ancestors let show, and whether the
# picture is on top (document.elementFromPoint) at its centre and near its four corners.
DRAWN = """img => {
  const px = v => parseFloat(v) || 0, style = getComputedStyle(img), box = img.getBoundingClientRect();
  const left = box.left + px(style.borderLeftWidth) + px(style.paddingLeft);
  const top = box.top + px(style.borderTopWidth) + px(style.paddingTop);
  const width = box.right - px(style.borderRightWidth) - px(style.paddingRight) - left;
  const height = box.bottom - px(style.borderBottomWidth) - px(style.paddingBottom) - top;
  const nw = img.naturalWidth, nh = img.naturalHeight;
  const scale = {contain: Math.min(width / nw, height / nh), cover: Math.max(width / nw, height / nh), none: 1,
                 "scale-down": Math.min(1, width / nw, height / nh)}[style.objectFit];
  const w = scale === undefined ? width : nw * scale, h = scale === undefined ? height : nh * scale;
  const [fx, fy] = style.objectPosition.split(" ").map(v => v.endsWith("%") ? px(v) / 100 : 0.5);
  const x = left + (width - w) * fx, y = top + (height - h) * fy;
  let clip = {left, top, right: left + width, bottom: top + height};
  for (let e = img.parentElement; e && e !== document.documentElement; e = e.parentElement) {
    const s = getComputedStyle(e);
    if (s.overflowX === "visible" && s.overflowY === "visible") continue;
    const r = e.getBoundingClientRect(), l = r.left + e.clientLeft, t = r.top + e.clientTop;
    clip = {left: Math.max(clip.left, l), top: Math.max(clip.top, t),
            right: Math.min(clip.right, l + e.clientWidth), bottom: Math.min(clip.bottom, t + e.clientHeight)};
  }
  const d = Math.min(w, h) * 0.1;
  const points = [[x + w / 2, y + h / 2], [x + d, y + d], [x + w - d, y + d], [x + d, y + h - d],
                  [x + w - d, y + h - d]];
  const onTop = points.every(([px_, py_]) => { const hit = document.elementFromPoint(px_, py_);
                                               return hit !== null && (hit === img || img.contains(hit)); });
  return {drawn: {x, y, width: w, height: h}, clip, natural: {width: nw, height: nh}, onTop};
}"""
ON_TOP = """e => { const r = e.getBoundingClientRect();
                 const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
                 return hit !== null && e.contains(hit); }"""  # the element is what shows at its centre
OPAQUE = """e => { for (; e; e = e.parentElement) if (getComputedStyle(e).opacity !== "1") return false;
                 return true; }"""  # neither the element nor an ancestor is see-through


def inside(box: dict, outer: dict, slack: float = 1.0) -> bool:
    """``box`` (x, y, width, height) lies in ``outer`` (the same, or left, top, right, bottom)."""
    if "x" in outer:
        outer = {"left": outer["x"], "top": outer["y"], "right": outer["x"] + outer["width"],
                 "bottom": outer["y"] + outer["height"]}
    return (box["x"] >= outer["left"] - slack and box["y"] >= outer["top"] - slack
            and box["x"] + box["width"] <= outer["right"] + slack
            and box["y"] + box["height"] <= outer["bottom"] + slack)


def shown_whole(image, container, scroll: bool = True) -> dict:
    """Check that the picture of the <img> locator ``image`` is drawn whole: inside the visible box of
    ``container`` (its bounding box, cut by every ancestor of the image that clips), at the picture's
    own aspect ratio, and on top of the page where it is drawn (nothing covers it, and it is in the
    viewport: scrolled to its middle unless not ``scroll``). Notices (toasts, which close themselves
    after a while) are closed first. Returns the drawn box and the picture's natural size."""
    image.wait_for()
    close_notices(image.page)
    if scroll:
        center(image)
    image.page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    image.page.wait_for_function(OPAQUE, arg=image.element_handle())  # not faded (a run's "pending" look)
    seen = image.evaluate(DRAWN)
    drawn, natural = seen["drawn"], seen["natural"]
    assert inside(drawn, seen["clip"]), f"the picture is clipped: {seen}"
    assert inside(drawn, container.bounding_box()), f"the picture leaves {container}: {seen}"
    ratio = natural["width"] / natural["height"]
    assert abs(drawn["width"] / drawn["height"] - ratio) < 0.02 * ratio, f"the picture is stretched: {seen}"
    assert seen["onTop"], f"something covers the picture: {seen}"
    return seen


def close_notices(page) -> None:
    for close in page.locator("[data-testid=toast-close]").all():
        close.click()
    page.wait_for_function("() => !document.querySelector('[data-testid=toast-body]')")


def center(element) -> None:
    """Scroll ``element`` to the middle of the viewport (and of any scrolling box it is in), and wait
    until it stays put (a chat glides)."""
    element.evaluate("e => e.scrollIntoView({block: 'center', inline: 'center'})")
    element.page.wait_for_function("e => { const y = e.getBoundingClientRect().y, was = e.dataset.lastY;"
                                   " e.dataset.lastY = y; return String(y) === was; }",
                                   arg=element.element_handle(), polling=100)


def scroll_to(element, end: str) -> None:
    """Scroll a scrolling element to its "top" or "bottom" and wait until it is there (it may glide)."""
    to = "0" if end == "top" else "e.scrollHeight - e.clientHeight"
    element.evaluate(f"e => {{ e.scrollTop = {to}; }}")
    element.page.wait_for_function(f"e => Math.abs(e.scrollTop - ({to})) < 1", arg=element.element_handle())
    element.page.wait_for_timeout(100)


def fresh_page(page):
    page.reload()
    page.locator("#t2i-run").wait_for()


def open_tab(page, name: str):
    page.get_by_role("tab", name=name, exact=True).click()
    return page.get_by_role("tabpanel")


def set_number(page, elem_id: str, value) -> None:
    """Type ``value`` into the number box of a slider."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def loaded_image(page, selector: str) -> dict:
    image = page.locator(f"{selector} img").first
    image.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    return image.evaluate("img => ({width: img.naturalWidth, height: img.naturalHeight})")


def pick_example(panel, row: int = 0) -> None:
    """Examples of several inputs are table rows; of one input, buttons in a gallery."""
    panel.locator("table tbody tr, button.gallery-item").nth(row).click()


def ask(page, question: str) -> None:
    page.locator("#vqa-question textarea").fill(question)
    page.locator("#vqa-ask").click()


@pytest.mark.parametrize("images, steps", [(1, 24), (4, 24), (1, 50), (4, 50)])
def test_text_to_image_shows_every_image_whole(page, shots, images, steps):
    """Was: one picture was cropped to its top half, two of four were out of sight, and at 50 steps
    the strip (one frame per step, all in one row) drew each frame about 10 px wide."""
    fresh_page(page)  # no status left from an earlier run
    open_tab(page, "Text to image")
    page.get_by_role("tabpanel").locator("textarea").first.fill("a yellow triangle to the left of a green circle")
    set_number(page, "t2i-steps", steps)
    set_number(page, "t2i-batch", images)
    page.locator("#t2i-run").click()
    page.locator("#t2i-status").get_by_text(f"step {steps} of {steps}").wait_for()
    gallery, strip = page.locator("#t2i-gallery"), page.locator("#t2i-strip")
    center(gallery)
    pictures = gallery.locator("img")
    assert pictures.count() == images
    for k in range(images):  # all of them at once: no scrolling between
        seen = shown_whole(pictures.nth(k), gallery, scroll=False)
        assert seen["natural"] == {"width": 64, "height": 64} and seen["drawn"]["width"] >= 128, seen
    seen = shown_whole(strip.locator("img").first, strip)
    columns = min(steps, STRIP_COLUMNS)
    rows = -(-steps // columns)
    assert seen["natural"] == {"width": columns * 64 + (columns - 1) * STRIP_GAP,
                               "height": rows * 64 + (rows - 1) * STRIP_GAP}
    frame = 64 * seen["drawn"]["width"] / seen["natural"]["width"]
    assert frame >= 32, f"each frame of the strip is drawn {frame:.0f} px wide"
    if (images, steps) == (4, 24):
        page.screenshot(path=shots / "t2i.png", full_page=True)


def test_inpainting_with_a_painted_mask(page, shots):
    from showo.web.ui import INPAINT_EXAMPLES

    panel = open_tab(page, "Inpainting")
    pick_example(panel, 1)  # a picture with one slot painted over already
    prompt = panel.locator("textarea").first
    page.wait_for_function("([box, text]) => box.value === text", arg=[prompt.element_handle(), INPAINT_EXAMPLES[1][2]])
    editor = page.locator("#inpaint-editor")
    editor.locator("canvas").first.wait_for()
    page.locator("#inpaint-run").click()
    result = page.locator("#inpaint-result")
    assert shown_whole(result.locator("img").first, result)["natural"] == {"width": 64, "height": 64}
    page.screenshot(path=shots / "inpaint.png", full_page=True)
    editor.get_by_role("button", name="Brush", exact=True).click()  # and painting more by hand
    box = editor.locator("canvas").first.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 40, y - 40)
    page.mouse.down()
    for i in range(1, 6):
        page.mouse.move(x - 40 + 16 * i, y - 40 + 8 * i)
    page.mouse.up()
    before = result.locator("img").first.get_attribute("src")
    page.locator("#inpaint-run").click()
    page.wait_for_function("([img, src]) => img.src !== src", arg=[result.locator("img").first.element_handle(),
                                                                   before])
    assert loaded_image(page, "#inpaint-result") == {"width": 64, "height": 64}


def test_extrapolation(page, shots):
    pick_example(open_tab(page, "Extrapolation"))
    source = page.locator("#extrapolate-image")
    shown_whole(source.locator("img").first, source)
    page.locator("#extrapolate-run").click()
    result = page.locator("#extrapolate-result")
    assert shown_whole(result.locator("img").first, result)["natural"] == {"width": 96, "height": 64}
    page.screenshot(path=shots / "extrapolate.png", full_page=True)


def test_visual_question_answering_in_the_chat(page, shots, tmp_path):
    """Was: the history scrolled under the chat's label and buttons."""
    from showo.web.tasks import draw_scene

    fresh_page(page)
    open_tab(page, "Visual Q&A")
    draw_scene([("circle", "red", (0.25, 0.25)), ("square", "blue", (0.7, 0.7))]).save(tmp_path / "scene.png")
    page.locator("#vqa-image input[type=file]").set_input_files(tmp_path / "scene.png")
    source = page.locator("#vqa-image")
    shown_whole(source.locator("img").first, source)
    chat = page.locator("#vqa-chat")
    users, bots = chat.locator("[data-testid=user]"), chat.locator("[data-testid=bot]")
    questions = ["What colour is the circle?", "What shape is the blue object?", "How many objects are there?",
                 "Where is the square?"]
    for turn, question in enumerate(questions):
        ask(page, question)
        bots.nth(turn).wait_for()
        assert page.locator("#vqa-question textarea").input_value() == ""  # emptied once answered
    assert [users.nth(k).inner_text().strip() for k in range(len(questions))] == questions
    history = chat.get_by_role("log")  # the part of the chat that scrolls
    assert history.evaluate("e => e.scrollHeight > e.clientHeight")  # enough turns to scroll
    center(chat)
    top = history.bounding_box()["y"]
    overlays = [chat.locator("[data-testid=block-label]")] + [  # the label and the buttons above the history
        b for b in chat.locator("button").all() if b.is_visible() and b.evaluate("b => !b.closest('[role=log]')")]
    assert len(overlays) >= 3
    for overlay in overlays:
        box = overlay.bounding_box()
        assert box["y"] + box["height"] <= top + 0.5, f"{overlay} reaches into the history"
    scroll_to(history, "bottom")  # where it is after an answer
    assert inside(bots.last.bounding_box(), history.bounding_box()) and bots.last.evaluate(ON_TOP)  # the answer
    scroll_to(history, "top")
    assert inside(users.first.bounding_box(), history.bounding_box()) and users.first.evaluate(ON_TOP)
    scroll_to(history, "bottom")
    page.screenshot(path=shots / "vqa.png", full_page=True)


def test_captioning(page, shots):
    pick_example(open_tab(page, "Captioning"))
    source = page.locator("#caption-image")
    shown_whole(source.locator("img").first, source)
    page.locator("#caption-run").click()
    text = page.locator("#caption-text textarea")
    page.wait_for_function("box => box.value.length > 0", arg=text.element_handle())
    page.wait_for_function(OPAQUE, arg=text.element_handle())  # no longer faded as "pending"
    page.screenshot(path=shots / "caption.png", full_page=True)


def test_mixed_generation(page, shots):
    from showo.web.ui import MIXED_EXAMPLES

    open_tab(page, "Mixed text and images")
    page.locator("#mixed-run").click()
    story = page.locator("#mixed-story")
    story.locator("[data-testid=bot]").first.wait_for()
    assert story.locator("[data-testid=user]").first.inner_text().strip() == MIXED_EXAMPLES[0]
    history = story.get_by_role("log")
    for k in range(story.locator("[data-testid=bot] img").count()):
        picture = story.locator("[data-testid=bot] img").nth(k)
        assert shown_whole(picture, history)["drawn"]["width"] >= 128
    scroll_to(history, "top")
    page.screenshot(path=shots / "mixed.png", full_page=True)


def test_bad_input_gets_a_message_in_the_page(page):
    open_tab(page, "Visual Q&A")
    page.locator("#vqa-question textarea").fill("")
    page.locator("#vqa-ask").click()
    page.get_by_text("please enter a question").first.wait_for()
    assert "Traceback" not in page.content()


def test_an_error_keeps_the_question_and_the_history(page, tmp_path):
    """Was: after an error the question box (an output of the event, to empty it after an answer) and
    the chat were covered by an "Error" badge, and what the user had typed was gone from view."""
    from showo.web.tasks import draw_scene

    fresh_page(page)
    open_tab(page, "Visual Q&A")
    draw_scene([("circle", "red", (0.25, 0.25))]).save(tmp_path / "scene.png")
    page.locator("#vqa-image input[type=file]").set_input_files(tmp_path / "scene.png")
    page.locator("#vqa-image img").first.wait_for()
    ask(page, "What colour is the circle?")
    bots = page.locator("#vqa-chat [data-testid=bot]")
    bots.first.wait_for()
    page.locator("#vqa-image").get_by_role("button", name="Remove Image").click()
    page.locator("#vqa-image img").wait_for(state="detached")
    question = "Where is the circle? " * 12  # several lines
    ask(page, question)
    page.get_by_text("please upload an image").first.wait_for()
    page.wait_for_timeout(500)  # the page has shown the failure in its components too
    box = page.locator("#vqa-question textarea")
    assert box.input_value() == question and box.evaluate(ON_TOP)
    assert bots.count() == 1 and bots.first.evaluate(ON_TOP)
