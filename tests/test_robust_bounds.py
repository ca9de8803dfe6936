"""Sampling arguments and over-long inputs at every public entry (``ShowoPipeline``'s methods,
``generate_image_tokens``, ``generate_text``, ``generate_mixed``, ``MaskGITSampler``), on the
tiny pipeline of the tests: each bad value is one ``ValueError`` that names the argument and what
it got, each sequence too long for the model's positions is refused with the numbers, and
neither runs a forward pass of the transformer or the image tokenizer first. A 100,000-character
question is refused without being tokenized, quickly and without growing memory."""

from __future__ import annotations

import contextlib
import dataclasses
import time
import tracemalloc
from pathlib import Path

import pytest
import torch
from PIL import Image

from showo.generation.generate_image import generate_image_tokens
from showo.generation.generate_mixed import generate_mixed
from showo.generation.generate_text import generate_text
from showo.generation.generation_config import GenerationConfig
from showo.generation.maskgit import MaskGITSampler
from showo.generation.prompting import mmu_prompt, t2i_prompt
from showo.pipeline import ShowoPipeline

NAN, INF = float("nan"), float("inf")
POSITIONS = 512  # the tiny preset's max_position_embeddings


@pytest.fixture
def pipe(tiny_pipeline):
    assert tiny_pipeline.config.llm.max_position_embeddings == POSITIONS
    return tiny_pipeline


class Forwards:
    """Counts forward passes of the transformer (its first block runs in every pass, from ids or
    embeddings) and of the image tokenizer's encoder and decoder."""

    def __init__(self, pipe) -> None:
        self.calls: list[str] = []
        modules = {"transformer": pipe.model.blocks[0], "vq encoder": pipe.vq.encoder, "vq decoder": pipe.vq.decoder}
        self.handles = [m.register_forward_pre_hook(lambda *_, name=name: self.calls.append(name))
                        for name, m in modules.items()]

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


@pytest.fixture
def forwards(pipe):
    counter = Forwards(pipe)
    yield counter
    counter.close()


def refused(forwards, call, *fragments: str) -> str:
    """``call()`` raises a ValueError containing every fragment, before any forward pass."""
    with pytest.raises(ValueError) as error:
        call()
    message = str(error.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert forwards.calls == [], f"a forward pass ran before the refusal: {forwards.calls}"
    return message


def picture() -> Image.Image:
    return Image.new("RGB", (64, 64), (200, 40, 40))


# -- sampling arguments: text to image (and inpainting, extrapolation) ---------------------------------


IMAGE_CASES = [
    (dict(steps=NAN), ["steps must be an integer, got nan"]),
    (dict(steps=2.5), ["steps must be an integer, got 2.5"]),
    (dict(steps="3"), ["steps must be an integer, got '3'"]),
    (dict(steps=True), ["steps must be an integer, got True"]),
    (dict(steps=0), ["steps must be at least 1, got 0"]),
    (dict(steps=10**9), ["steps must be at most 1000", "got 1000000000"]),
    (dict(guidance_scale=NAN), ["guidance_scale must be a finite number, got nan"]),
    (dict(guidance_scale=INF), ["guidance_scale must be a finite number, got inf"]),
    (dict(guidance_scale=-1), ["guidance_scale must be >= 0, got -1"]),
    (dict(guidance_scale="2"), ["guidance_scale must be a number, got '2'"]),
    (dict(guidance_scale=1e9), ["guidance_scale must be <= 100", "got 1000000000.0"]),
    (dict(temperature=NAN), ["temperature must be a finite number, got nan"]),
    (dict(temperature=INF), ["temperature must be a finite number, got inf"]),
    (dict(temperature=-0.1), ["temperature must be >= 0, got -0.1"]),
    (dict(temperature=1e6), ["temperature must be <= 100", "got 1000000.0"]),
    (dict(schedule="pownan"), ["schedule 'pownan': the exponent must be a finite number > 0, got nan"]),
    (dict(schedule="pow-1"), ["schedule 'pow-1': the exponent must be a finite number > 0, got -1.0"]),
    (dict(schedule="wavy"), ["unknown schedule 'wavy'"]),
    (dict(schedule=3), ["schedule must be a string", "got int 3"]),
    (dict(seed=NAN), ["seed must be an integer, got nan"]),
    (dict(seed=1.5), ["seed must be an integer, got 1.5"]),
    (dict(seed="7"), ["seed must be an integer, got '7'"]),
    (dict(seed=True), ["seed must be an integer, got True"]),
    (dict(seed=-1), ["seed must be at least 0, got -1"]),
    (dict(seed=2**64), ["seed must be at most", "got 18446744073709551616"]),
    (dict(mode="fast"), ["unknown sampler mode 'fast'"]),
    (dict(callback_on_step_end=3), ["callback_on_step_end must be callable or None, got int"]),
    (dict(plan="yes"), ["plan must be True or False, got 'yes'"]),
]


@pytest.mark.parametrize("kwargs, fragments", IMAGE_CASES, ids=[repr(k)[:40] for k, _ in IMAGE_CASES])
def test_bad_image_sampling_arguments(pipe, forwards, kwargs, fragments):
    refused(forwards, lambda: pipe.text_to_image("a red circle", **kwargs), *fragments)


@pytest.mark.parametrize("kwargs, fragments", IMAGE_CASES[:12:3], ids=[repr(k)[:40] for k, _ in IMAGE_CASES[:12:3]])
def test_bad_sampling_arguments_of_edits_are_refused_before_the_image_is_encoded(pipe, forwards, kwargs, fragments):
    mask = Image.new("L", (64, 64), 255)
    refused(forwards, lambda: pipe.inpaint(picture(), mask, "a red circle", **kwargs), *fragments)
    refused(forwards, lambda: pipe.extrapolate(picture(), "a red circle", **kwargs), *fragments)


@pytest.mark.parametrize("prompts, fragments", [
    (None, ["prompts must be a string or a list of strings, got NoneType None"]),
    (3, ["prompts must be a string or a list of strings, got int 3"]),
    ([], ["prompts is empty"]),
    (["a red circle", None], ["prompts[1] must be a string, got NoneType None"]),
    ("a \ud800 circle", ["prompts holds a lone surrogate '\\ud800' at character 2"]),
    (["ok", "\udfff"], ["prompts[1] holds a lone surrogate"]),
])
def test_bad_prompts(pipe, forwards, prompts, fragments):
    named = [f.replace("prompts", "prompt") for f in fragments]  # text_to_image's argument is `prompt`
    refused(forwards, lambda: pipe.text_to_image(prompts, steps=1), *named)
    refused(forwards, lambda: pipe.plan(prompts), *fragments[:1])


def test_bad_image_ids(pipe, forwards):
    n = pipe.config.num_image_tokens
    refused(forwards, lambda: pipe.generate_codes(["x"], torch.zeros(2, n, dtype=torch.long)),
            f"image_ids must be an integer tensor of shape (1, {n})", "got torch.int64 of shape (2, 64)")
    refused(forwards, lambda: pipe.generate_codes(["x"], torch.zeros(1, n)), "got torch.float32")
    refused(forwards, lambda: pipe.generate_codes(["x"], [[0] * n]), "got list")


@pytest.mark.parametrize("mask, fragments", [
    ("mask.txt", ["mask.txt: not a readable image file"]),
    (Image.new("L", (0, 0)), ["mask is 0x0 pixels"]),
    (torch.zeros(0, 0), ["mask is 0x0 pixels"]),
    (torch.zeros(2, 64, 64), ["an image tensor must be (C, H, W) with C = 1, 3 or 4, got (2, 64, 64)"]),
    (torch.zeros(2, 3, 4, 5), ["mask tensor must be (H, W), got shape (2, 3, 4, 5)"]),
    (torch.full((64, 64), NAN), ["mask tensor holds 4096 NaN or infinite values"]),
    (None, ["mask must be a path, a PIL image, an (H, W) array or an (H, W) tensor, got NoneType None"]),
])
def test_bad_masks(pipe, forwards, mask, fragments, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("mask.txt").write_text("not a picture")
    refused(forwards, lambda: pipe.inpaint(picture(), mask, "a red circle", steps=1), *fragments)


@pytest.mark.parametrize("kwargs, fragments", [
    (dict(direction="sideways"), ["unknown direction 'sideways'"]),
    (dict(direction=None), ["unknown direction None"]),
    (dict(offset=1.5), ["offset must be an integer, got 1.5"]),
    (dict(offset=100), ["offset 100 gives a shift of 104 tokens"]),
])
def test_bad_extrapolation_arguments(pipe, forwards, kwargs, fragments):
    refused(forwards, lambda: pipe.extrapolate(picture(), "more", steps=1, **kwargs), *fragments)


@pytest.mark.parametrize("prompt, fragment", [(None, "prompt must be a string, got NoneType None"),
                                              ("\ud800", "prompt holds a lone surrogate")])
def test_bad_edit_prompts(pipe, forwards, prompt, fragment):
    refused(forwards, lambda: pipe.inpaint(picture(), Image.new("L", (64, 64), 255), prompt, steps=1), fragment)
    refused(forwards, lambda: pipe.extrapolate(picture(), prompt, steps=1), fragment)


def test_sampler_and_generator_refuse_bad_values_directly(pipe, forwards):
    for kwargs, fragment in [(dict(steps=NAN), "steps must be an integer"), (dict(temperature=INF), "temperature"),
                             (dict(schedule="pownan"), "exponent"), (dict(mode=None), "mode")]:
        with pytest.raises(ValueError, match=fragment):
            MaskGITSampler(**kwargs)
    layout, n = pipe.model.layout, pipe.config.num_image_tokens
    blank = torch.full((1, n), layout.mask_id)
    cond, uncond = t2i_prompt([[5]], blank, layout, 32), t2i_prompt([[]], blank, layout, 32)
    refused(forwards, lambda: generate_image_tokens(pipe.model, cond, uncond, guidance_scale=NAN), "guidance_scale")
    refused(forwards, lambda: generate_image_tokens(pipe.model, cond, uncond, steps=1.0), "steps must be an integer")
    refused(forwards, lambda: generate_image_tokens(pipe.model, cond, uncond[:, 1:]), "uncond_input_ids must have")
    refused(forwards, lambda: generate_image_tokens(pipe.model, cond.tolist(), None, guidance_scale=0), "input_ids")


# -- sampling arguments: answers -------------------------------------------------------------------------


ANSWER_CASES = [
    (dict(temperature=INF), ["temperature must be a finite number, got inf"]),
    (dict(temperature=NAN), ["temperature must be a finite number, got nan"]),
    (dict(temperature=-1), ["temperature must be >= 0, got -1"]),
    (dict(temperature=1e-40), ["temperature must be 0 (greedy) or at least 0.0001", "got 1e-40"]),
    (dict(temperature=1e3), ["temperature must be <= 100", "got 1000.0"]),
    (dict(top_k=0), ["top_k must be at least 1, got 0"]),
    (dict(top_k=1.5), ["top_k must be an integer, got 1.5"]),
    (dict(top_k=True), ["top_k must be an integer, got True"]),
    (dict(top_p=0), ["top_p must lie in (0, 1]", "got 0"]),
    (dict(top_p=NAN), ["top_p must lie in (0, 1]", "got nan"]),
    (dict(max_new_tokens=0), ["max_new_tokens must be at least 1, got 0"]),
    (dict(max_new_tokens=2.5), ["max_new_tokens must be an integer, got 2.5"]),
    (dict(max_new_tokens="5"), ["max_new_tokens must be an integer, got '5'"]),
    (dict(seed="x"), ["seed must be an integer, got 'x'"]),
    (dict(reasoning="yes"), ["reasoning must be True or False, got 'yes'"]),
]


@pytest.mark.parametrize("kwargs, fragments", ANSWER_CASES, ids=[repr(k)[:40] for k, _ in ANSWER_CASES])
def test_bad_answer_arguments(pipe, forwards, kwargs, fragments):
    refused(forwards, lambda: pipe.answer(picture(), "what colour?", **kwargs), *fragments)


@pytest.mark.parametrize("questions, fragments", [
    (None, ["questions must be a string or a list of strings, got NoneType None"]),
    (3, ["questions must be a string or a list of strings, got int 3"]),
    ([None], ["questions[0] must be a string, got NoneType None"]),
    ("what \ud800?", ["question holds a lone surrogate '\\ud800' at character 5"]),
])
def test_bad_questions(pipe, forwards, questions, fragments):
    refused(forwards, lambda: pipe.answer(picture(), questions), *fragments)


def test_bad_generate_text_arguments(pipe, forwards):
    ids = mmu_prompt(torch.full((1, pipe.config.num_image_tokens), pipe.model.layout.image_offset), [5, 6],
                     pipe.model.layout)
    for kwargs, fragment in [(dict(temperature=INF), "temperature must be a finite number"),
                             (dict(top_k=2.0), "top_k must be an integer"), (dict(eot_id="x"), "eot_id"),
                             (dict(max_new_tokens=NAN), "max_new_tokens must be an integer")]:
        refused(forwards, lambda kwargs=kwargs: generate_text(pipe.model, ids, **{"max_new_tokens": 4, **kwargs}),
                fragment)
    refused(forwards, lambda: generate_text(pipe.model, ids.tolist(), 4), "input_ids must be a (batch, length) tensor")


@pytest.mark.parametrize("kwargs, fragments", [
    (dict(prompt=None), ["prompt must be a string, got NoneType None"]),
    (dict(prompt=3), ["prompt must be a string, got int 3"]),
    (dict(prompt="\ud800"), ["prompt holds a lone surrogate"]),
    (dict(max_images=-1), ["max_images must be at least 0, got -1"]),
    (dict(max_images=1.5), ["max_images must be an integer, got 1.5"]),
    (dict(max_text_tokens=0), ["max_text_tokens must be at least 1, got 0"]),
    (dict(steps=NAN), ["steps must be an integer, got nan"]),
    (dict(seed="x"), ["seed must be an integer, got 'x'"]),
    (dict(temperature=INF), ["temperature must be a finite number, got inf"]),
    (dict(top_k=0), ["top_k must be at least 1, got 0"]),
])
def test_bad_mixed_arguments(pipe, forwards, kwargs, fragments):
    refused(forwards, lambda: generate_mixed(pipe, **{"prompt": "a scene:", "steps": 2, **kwargs}), *fragments)


# -- bounds: every sequence is measured against the positions before any forward pass ------------------------


@contextlib.contextmanager
def tokenized(pipe):
    """Records the length in characters of every text the pipeline's tokenizer is asked to encode."""
    seen: list[int] = []
    tokenizer = pipe.tokenizer
    encode, encode_batch = tokenizer.encode, tokenizer.encode_batch
    tokenizer.encode = lambda text: (seen.append(len(text)), encode(text))[1]
    tokenizer.encode_batch = lambda texts: (seen.extend(map(len, texts)), encode_batch(texts))[1]
    try:
        yield seen
    finally:
        del tokenizer.encode, tokenizer.encode_batch


def test_a_100000_character_question_is_refused_untokenized_quickly_and_in_little_memory(pipe, forwards):
    question = "why " * 25_000
    tracemalloc.start()
    start = time.perf_counter()
    with tokenized(pipe) as seen:
        message = refused(forwards, lambda: pipe.answer(picture(), question), "question is 100,000 characters long",
                          "room for 344 question tokens", "at most 4,472 characters")
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert seen == [], "the question must not be tokenized"
    assert elapsed < 1.0, f"took {elapsed:.2f} s"
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MiB of Python allocations"
    assert len(message) < 400


def test_a_question_past_the_positions_is_refused_with_the_numbers(pipe, forwards):
    question = "a " * 2000  # under the character bound, over the positions once tokenized
    message = refused(forwards, lambda: pipe.answer(picture(), question), "question needs ",
                      "(4 <mmu> <soi> <eoi> <sot> + 64 image tokens + ", "question tokens + 100 new tokens) "
                      "but the model has 512 (max_position_embeddings)")
    needed = int(message.split("needs ")[1].split(" positions")[0].replace(",", ""))
    assert needed > POSITIONS


def test_the_answer_budget_counts_new_and_reasoning_tokens(pipe, forwards):
    refused(forwards, lambda: pipe.answer(picture(), "what colour?", max_new_tokens=500),
            "+ 500 new tokens) but the model has 512")
    reasoning = ShowoPipeline(pipe.model, pipe.vq, pipe.tokenizer,
                              GenerationConfig(answer_marker="so:", reasoning_tokens=400))
    refused(forwards, lambda: reasoning.answer(picture(), "what colour?", max_new_tokens=100),
            "+ 100 new tokens + 400 reasoning tokens) but the model has 512")
    assert forwards.calls == []
    assert len(pipe.answer(picture(), "what colour?", max_new_tokens=3)) == 1  # what fits still runs


def test_generate_text_refuses_a_budget_past_the_positions_before_allocating_its_cache(pipe, forwards):
    layout = pipe.model.layout
    ids = mmu_prompt(torch.full((1, pipe.config.num_image_tokens), layout.image_offset), [5, 6], layout)
    refused(forwards, lambda: generate_text(pipe.model, ids, max_new_tokens=10**12),
            "needs 1,000,000,000,070 positions (70 prompt tokens + 1,000,000,000,000 new tokens) but the model "
            "has 512")
    long_ids = torch.full((1, 600), 5)
    refused(forwards, lambda: generate_text(pipe.model, long_ids, max_new_tokens=1), "600 prompt tokens")


def test_an_image_sequence_past_the_positions_is_refused(pipe, forwards):
    layout, n = pipe.model.layout, pipe.config.num_image_tokens
    blank = torch.full((1, n), layout.mask_id)
    ids = t2i_prompt([[5]], blank, layout, 500)  # a text budget of 500 tokens: 567 positions
    refused(forwards, lambda: generate_image_tokens(pipe.model, ids, None, guidance_scale=0),
            "the image sequence needs 567 positions", "but the model has 512")


def test_a_long_t2i_prompt_is_still_cut_with_a_warning_before_it_is_tokenized(pipe):
    budget = pipe.config.max_text_length
    with tokenized(pipe) as seen, pytest.warns(UserWarning, match="cut") as warned:
        codes = pipe.generate_codes("a red circle " * 10_000, steps=1, seed=0)
    assert codes.shape == (1, pipe.config.num_image_tokens)
    assert max(seen) <= 2 * budget * 13, "a prompt far past the budget is cut before it is tokenized"
    assert any("cut by" in str(w.message) for w in warned), "the token budget's own warning stays"
    with pytest.warns(UserWarning, match="cut by") as warned:  # over the budget, under the character cut
        pipe.generate_codes("a red circle " * 10, steps=1, seed=0)
    assert not any("characters is cut" in str(w.message) for w in warned)


def test_a_prompt_too_long_to_plan_is_refused(pipe, forwards):
    refused(forwards, lambda: pipe.plan("a " * 1000), "the plan of prompt 0 needs", "+ 32 plan tokens "
            "(max_text_length)) but the model has 512")
    refused(forwards, lambda: pipe.plan("a " * 100_000), "prompts is 200,000 characters long")
    refused(forwards, lambda: pipe.plan(["ok", "a " * 100_000]), "prompts[1] is 200,000 characters long")


def test_mixed_generation_is_measured_for_its_longest_sequence(pipe, forwards):
    refused(forwards, lambda: generate_mixed(pipe, "a scene:", max_images=2, max_text_tokens=200, steps=2),
            "the mixed-modality sequence needs", "600 text tokens (3 segments of 200)",
            "132 image tokens (2 pictures of 66)", "but the model has 512")
    start = time.perf_counter()
    with tokenized(pipe) as seen:
        refused(forwards, lambda: generate_mixed(pipe, "x" * 100_000, steps=2), "prompt is 100,000 characters long")
    assert seen == [] and time.perf_counter() - start < 1.0


def test_configs_whose_t2i_sequence_cannot_fit_are_refused(pipe):
    llm = dataclasses.replace(pipe.config.llm, max_position_embeddings=64)
    with pytest.raises(ValueError, match=r"text-to-image sequence .* = 99\) must fit llm.max_position_embeddings"):
        dataclasses.replace(pipe.config, llm=llm)


def test_valid_calls_are_unchanged(pipe):
    """The checks change nothing for valid arguments: same codes and answers as the plain generators."""
    codes = pipe.generate_codes(["a red circle"], steps=2, guidance_scale=1.5, seed=3)
    layout = pipe.model.layout
    blank = torch.full((1, pipe.config.num_image_tokens), layout.mask_id)
    cond = t2i_prompt(pipe.tokenizer.encode_batch(["a red circle"]), blank, layout, pipe.config.max_text_length)
    uncond = t2i_prompt([[]], blank, layout, pipe.config.max_text_length)
    direct = generate_image_tokens(pipe.model, cond, uncond, steps=2, guidance_scale=1.5,
                                   generator=[torch.Generator().manual_seed(3)])
    assert torch.equal(codes, direct)
    assert pipe.answer(picture(), "what colour?", max_new_tokens=4, temperature=0) == \
        pipe.answer(picture(), ["what colour?"], max_new_tokens=4, top_k=1)
