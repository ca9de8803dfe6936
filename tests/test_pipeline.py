"""ShowoPipeline: every task end to end on tiny random components, and bad input."""

import dataclasses

import pytest
import torch
from conftest import build_tiny_pipeline
from PIL import Image

from showo import MagvitV2, magvit_preset
from showo.generation.editing import mask_to_grid, shift_grid
from showo.generation.generate_mixed import generate_mixed
from showo.generation.generate_text import decode_answers, generate_text, left_pad
from showo.generation.prompting import plan_request
from showo.pipeline import ShowoPipeline

SIZE = 64


def pixels(image):
    return image.tobytes()


def picture(color="red"):
    image = Image.new("RGB", (80, SIZE), "white")
    image.paste(Image.new("RGB", (30, 30), color), (25, 17))
    return image


def test_text_to_image_seeded_and_batched(tiny_pipeline):
    kw = dict(steps=3, seed=7)
    images = tiny_pipeline.text_to_image(["a red circle", "two green triangles"], **kw)
    assert len(images) == 2 and all(i.size == (SIZE, SIZE) and i.mode == "RGB" for i in images)
    again = tiny_pipeline.generate_codes(["a red circle", "two green triangles"], **kw)
    alone = tiny_pipeline.generate_codes(["two green triangles"], steps=3, seed=8)  # row 1 uses seed + 1
    assert torch.equal(again[1:], alone)
    assert torch.equal(tiny_pipeline.generate_codes(["a red circle"], **kw), again[:1])


def test_empty_prompt_is_unconditional_and_long_prompt_warns(tiny_pipeline):
    assert tiny_pipeline.generate_codes([""], steps=2, seed=0).shape == (1, 64)
    with pytest.warns(UserWarning, match="cut by"):
        tiny_pipeline.generate_codes(["red " * 100], steps=2, seed=0)


def test_progress_callback_sees_every_step(tiny_pipeline):
    seen = []
    tiny_pipeline.generate_codes(["a circle"], steps=4, seed=0, callback=lambda s, lg, codes: seen.append(s))
    assert seen == [0, 1, 2, 3]


def test_inpaint_keeps_the_unmasked_tokens(tiny_pipeline):
    mask = Image.new("L", (SIZE, SIZE), 0)
    mask.paste(255, (0, 0, 32, 32))  # top-left quarter of the image
    region = mask_to_grid(mask, SIZE, 8)
    assert region.view(8, 8)[:4, :4].all() and region.sum() == 16
    with pytest.warns(UserWarning, match="mask of 64x64 stretched to its picture's 80x64"):
        result = tiny_pipeline.inpaint(picture(), mask, "a blue square", steps=3, seed=1)
    assert result.size == (SIZE, SIZE)
    with pytest.warns(UserWarning, match="mask of 32x32 stretched to its picture's 80x64"):
        tiny_pipeline.inpaint(picture(), mask.resize((32, 32)), "a blue square", steps=2, seed=1)


def test_extrapolate_grows_the_canvas(tiny_pipeline):
    right = tiny_pipeline.extrapolate(picture(), "more", direction="right", steps=2, seed=0)
    assert right.size == (SIZE + 32, SIZE)
    up = tiny_pipeline.extrapolate(picture(), "more", direction="up", offset=1, steps=2, seed=0)
    assert up.size == (SIZE, SIZE + 40)
    with pytest.raises(ValueError, match="unknown direction 'sideways'"):
        tiny_pipeline.extrapolate(picture(), "more", direction="sideways")


def test_shift_grid_moves_tokens_toward_the_direction():
    codes = torch.arange(16)
    shifted, shift = shift_grid(codes, 4, "right")
    assert shift == 2
    assert shifted.view(4, 4).tolist() == [[2, 3, -1, -1], [6, 7, -1, -1], [10, 11, -1, -1], [14, 15, -1, -1]]
    down, _ = shift_grid(codes, 4, "down", offset=1)
    assert down.view(4, 4).tolist() == [[12, 13, 14, 15], [-1] * 4, [-1] * 4, [-1] * 4]
    with pytest.raises(ValueError, match="shift of 4"):
        shift_grid(codes, 4, "left", offset=2)


def test_batched_answers_equal_single_answers(tiny_pipeline):
    images = [picture("red"), picture("blue"), picture("green")]
    questions = ["what colour is the circle?", "what?", "Please describe this image in detail."]
    batch = tiny_pipeline.answer(images, questions, max_new_tokens=6)
    assert len(batch) == 3 and all(isinstance(a, str) for a in batch)
    for image, question, answer in zip(images, questions, batch):
        assert tiny_pipeline.answer(image, question, max_new_tokens=6) == [answer]


def test_caption_is_the_describe_question(tiny_pipeline):
    image = picture("blue")
    assert tiny_pipeline.caption(image, max_new_tokens=5) == tiny_pipeline.answer(
        image, "Please describe this image in detail.", max_new_tokens=5)


def test_a_planned_prompt_is_drawn_from_the_models_plan(tiny_pipeline):
    """plan() continues ``<sot> plan_request(prompt)`` greedily; text_to_image draws the plans."""

    prompts = ["a red circle", "two green triangles on the left"]
    plans = tiny_pipeline.plan(prompts)
    layout, tokenizer = tiny_pipeline.model.layout, tiny_pipeline.tokenizer
    rows = [[layout.sot_id, *tokenizer.encode(plan_request(p))] for p in prompts]
    new = generate_text(tiny_pipeline.model, left_pad(rows, layout.pad_id),
                        max_new_tokens=tiny_pipeline.config.max_text_length, top_k=1)
    expected = [a.strip() for a in decode_answers(tokenizer, new, layout.eot_id)]
    assert plans == [e or p for e, p in zip(expected, prompts)]
    assert any(plan != prompt for plan, prompt in zip(plans, prompts))
    drawn = tiny_pipeline.text_to_image(prompts, plan=True, seed=3, steps=2)
    assert [pixels(x) for x in drawn] == [pixels(x) for x in tiny_pipeline.text_to_image(plans, seed=3, steps=2)]
    original = tiny_pipeline.generation  # the folder's default decides when plan is not given
    try:
        tiny_pipeline.generation = dataclasses.replace(original, plan_prompts=True)
        assert [pixels(x) for x in tiny_pipeline.text_to_image(prompts, seed=3, steps=2)] == [pixels(x) for x in drawn]
    finally:
        tiny_pipeline.generation = original


def test_a_reasoning_model_answers_with_what_follows_its_marker(tiny_pipeline):
    """With ``answer_marker`` set, an answer may run ``reasoning_tokens`` longer and is what
    follows the last marker; ``reasoning=True`` gives the whole text."""
    images, question = [picture("red"), picture("blue")], "what colour?"
    direct = tiny_pipeline.answer(images, question, max_new_tokens=4)
    assert tiny_pipeline.answer(images, question, max_new_tokens=4, reasoning=True) == direct  # no marker
    original = tiny_pipeline.generation
    try:
        tiny_pipeline.generation = dataclasses.replace(original, answer_marker="\u2192", reasoning_tokens=8)
        whole = tiny_pipeline.answer(images, question, max_new_tokens=4, reasoning=True)
        assert all(w.startswith(d) for w, d in zip(whole, direct))
        longer = [k for k, (w, d) in enumerate(zip(whole, direct)) if len(w) > len(d)]
        assert longer  # up to 12 tokens, not 4
        text = whole[longer[0]]
        marker = text[len(text) // 2:][:2]  # some text that answer holds
        tiny_pipeline.generation = dataclasses.replace(original, answer_marker=marker, reasoning_tokens=8)
        answers = tiny_pipeline.answer(images, question, max_new_tokens=4)
        assert answers[longer[0]] == text.rpartition(marker)[2].strip() != text
        assert answers == [(w.rpartition(marker)[2] if marker in w else w).strip() for w in whole]
    finally:
        tiny_pipeline.generation = original


def test_mixed_modality_returns_text_and_images(tiny_pipeline):
    segments = generate_mixed(tiny_pipeline, "a scene:", max_images=1, max_text_tokens=4, steps=2, seed=0)
    assert segments and all(isinstance(s, (str, Image.Image)) for s in segments)
    assert sum(isinstance(s, Image.Image) for s in segments) <= 1


def test_not_an_image_and_mismatched_questions(tiny_pipeline, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.txt"):
        tiny_pipeline.answer(text, "what?")
    with pytest.raises(ValueError, match="2 images but 3 questions"):
        tiny_pipeline.answer([picture(), picture()], ["a", "b", "c"])
    with pytest.raises(ValueError, match="steps must be at least 1"):
        tiny_pipeline.text_to_image("x", steps=0)
    with pytest.raises(ValueError, match="guidance_scale must be >= 0"):
        tiny_pipeline.text_to_image("x", guidance_scale=-0.5)


def test_vocabularies_that_disagree_are_refused(tiny_pipeline):
    other_vq = MagvitV2(dataclasses.replace(magvit_preset("tiny"), z_channels=9))
    with pytest.raises(ValueError, match="image tokenizer has 512 codes, the checkpoint 1024"):
        ShowoPipeline(tiny_pipeline.model, other_vq, tiny_pipeline.tokenizer)
    other = build_tiny_pipeline()
    other.tokenizer.text_vocab_size += 1
    with pytest.raises(ValueError, match="text tokenizer has"):
        ShowoPipeline(tiny_pipeline.model, tiny_pipeline.vq, other.tokenizer)


def test_save_and_load_the_pipeline(tiny_pipeline, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path / "pipe")
    loaded = ShowoPipeline.from_pretrained(tmp_path / "pipe", torch_dtype=torch.float32)  # as it was saved
    a = loaded.generate_codes(["a red circle"], steps=2, seed=3)
    assert torch.equal(a, tiny_pipeline.generate_codes(["a red circle"], steps=2, seed=3))
