"""The pipeline behaves as Hugging Face pipelines do: ``pipe(prompt).images``, ``output_type``,
``num_images_per_prompt``, ``negative_prompt``, ``generator``, ``callback_on_step_end``,
``.to(device, dtype)``, explicit signatures, images and masks of every kind; and one processor
makes the inputs of inference and training alike."""

import inspect

import numpy as np
import pytest
import torch
from conftest import build_tiny_pipeline
from PIL import Image

from showo import ShowoPipeline
from showo.generation.processor import ShowoProcessor
from showo.generation.prompting import mmu_prompt, understanding_text
from showo.training.sequences import question_and_answer


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def picture() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))


def test_calling_the_pipeline_draws_pictures_as_text_to_image_does(tiny_pipeline):
    out = tiny_pipeline(["a red circle", "two squares"], steps=2, seed=5)
    assert [pixels(i).tolist() for i in out.images] == \
        [pixels(i).tolist() for i in tiny_pipeline.text_to_image(["a red circle", "two squares"], steps=2, seed=5)]
    assert out.prompts == ["a red circle", "two squares"]  # what each was drawn from (no planning here)


def test_output_types_hold_the_same_pictures(tiny_pipeline):
    pil = tiny_pipeline.text_to_image("a red circle", steps=2, seed=1)
    array = tiny_pipeline.text_to_image("a red circle", steps=2, seed=1, output_type="np")
    tensor = tiny_pipeline.text_to_image("a red circle", steps=2, seed=1, output_type="pt")
    assert array.shape == (1, 64, 64, 3) and array.dtype == np.float32 and 0 <= array.min() <= array.max() <= 1
    assert tensor.shape == (1, 3, 64, 64) and torch.equal(torch.from_numpy(array).permute(0, 3, 1, 2), tensor)
    assert np.abs(array[0] * 255 - pixels(pil[0])).max() <= 0.5 + 1e-3  # the PIL picture is the rounded one
    with pytest.raises(ValueError, match=r"output_type must be one of \('pil', 'np', 'pt'\), got 'jpg'"):
        tiny_pipeline.text_to_image("x", output_type="jpg")


def test_images_per_prompt_are_the_pictures_of_consecutive_seeds(tiny_pipeline):
    many = tiny_pipeline.text_to_image(["a", "b"], num_images_per_prompt=3, steps=2, seed=10)
    assert len(many) == 6
    # picture i is drawn with seed 10 + i: the second picture of "b" is picture 4
    alone = tiny_pipeline.generate_codes(["b"], steps=2, seed=14)
    assert pixels(many[4]).tolist() == pixels(tiny_pipeline.decode_codes(alone)[0]).tolist()
    with pytest.raises(ValueError, match="num_images_per_prompt must be at least 1, got 0"):
        tiny_pipeline.text_to_image("a", num_images_per_prompt=0)


def test_negative_prompt_replaces_the_empty_unconditional_prompt(tiny_pipeline):
    base = tiny_pipeline.text_to_image("a red circle", steps=3, seed=2, guidance_scale=3.0)
    empty = tiny_pipeline.text_to_image("a red circle", steps=3, seed=2, guidance_scale=3.0, negative_prompt="")
    other = tiny_pipeline.text_to_image("a red circle", steps=3, seed=2, guidance_scale=3.0,
                                        negative_prompt="a blue square")
    assert pixels(base[0]).tolist() == pixels(empty[0]).tolist()
    assert pixels(base[0]).tolist() != pixels(other[0]).tolist()
    blank = torch.full((1, 64), tiny_pipeline.model.layout.mask_id)
    _, uncond = tiny_pipeline.processor.t2i_inputs(["a"], blank, ["blue"])
    assert tiny_pipeline.tokenizer.encode("blue")[0] in uncond[0].tolist()
    with pytest.raises(ValueError, match="2 prompts but 3 negative_prompts"):
        tiny_pipeline.text_to_image(["a", "b"], negative_prompt=["x", "y", "z"])


def test_generators_give_what_seeds_give(tiny_pipeline):
    seeded = tiny_pipeline.text_to_image(["a", "b"], steps=2, seed=7)
    generators = [torch.Generator().manual_seed(7), torch.Generator().manual_seed(8)]
    assert [pixels(i).tolist() for i in tiny_pipeline.text_to_image(["a", "b"], steps=2, generator=generators)] \
        == [pixels(i).tolist() for i in seeded]
    with pytest.raises(ValueError, match="give seed or generator, not both"):
        tiny_pipeline.text_to_image("a", seed=1, generator=torch.Generator())
    with pytest.raises(ValueError, match="2 pictures but 1 generators"):
        tiny_pipeline.text_to_image(["a", "b"], generator=[torch.Generator()])


def test_callback_on_step_end_sees_every_step(tiny_pipeline):
    seen = []
    tiny_pipeline("a", steps=4, seed=0, callback_on_step_end=lambda pipe, step, steps, out: seen.append(
        (pipe is tiny_pipeline, step, steps, tuple(out["codes"].shape), out["logits"].dim())))
    assert seen == [(True, s, 4, (1, 64), 3) for s in range(4)]


def test_to_moves_and_casts_the_whole_pipeline():
    pipe = build_tiny_pipeline()  # its own weights: a round trip through bf16 changes them
    assert pipe.to(torch.bfloat16) is pipe and pipe.dtype == torch.bfloat16 and pipe.vq_dtype == torch.bfloat16
    assert len(pipe("a", steps=2, seed=0).images) == 1  # runs in bf16
    assert pipe.to("cpu", torch.float32).dtype == torch.float32 and pipe.device.type == "cpu"


def test_every_task_has_an_explicit_signature():
    for name in ("__call__", "text_to_image", "class_to_image", "generate_codes", "inpaint", "extrapolate", "answer",
                 "caption", "plan"):
        kinds = [p.kind for p in inspect.signature(getattr(ShowoPipeline, name)).parameters.values()]
        assert inspect.Parameter.VAR_KEYWORD not in kinds and inspect.Parameter.VAR_POSITIONAL not in kinds, name


@pytest.mark.parametrize("kind", ["path", "array", "float-array", "tensor"])
def test_images_and_masks_may_be_paths_arrays_or_tensors(tiny_pipeline, tmp_path, kind):
    image, mask = picture(), Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))
    as_kind = {
        "path": lambda im, name: (im.save(tmp_path / name), tmp_path / name)[1],
        "array": lambda im, name: np.asarray(im),
        "float-array": lambda im, name: np.asarray(im, dtype=np.float32) / 255,
        "tensor": lambda im, name: torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1)
        if im.mode == "RGB" else torch.from_numpy(np.asarray(im, dtype=np.float32) / 255),
    }[kind]
    expected = tiny_pipeline.inpaint(image, mask, "a circle", steps=2, seed=3)
    got = tiny_pipeline.inpaint(as_kind(image, "image.png"), as_kind(mask, "mask.png"), "a circle", steps=2, seed=3)
    assert pixels(got).tolist() == pixels(expected).tolist()
    assert tiny_pipeline.answer(as_kind(image, "image.png"), "what?", max_new_tokens=3) == \
        tiny_pipeline.answer(image, "what?", max_new_tokens=3)


def test_inpainting_keeps_the_pixels_outside_the_mask(tiny_pipeline):
    image, mask = picture(), Image.new("L", (64, 64), 0)
    mask.paste(255, (32, 32, 64, 64))
    kept = pixels(tiny_pipeline.inpaint(image, mask, "a circle", steps=2, seed=0))
    redrawn = pixels(tiny_pipeline.inpaint(image, mask, "a circle", steps=2, seed=0, keep_unmasked=False))
    outside = np.asarray(mask) == 0
    assert (kept[outside] == pixels(image)[outside]).all()  # the input's own pixels
    assert (redrawn[outside] != pixels(image)[outside]).any()  # the tokenizer's re-drawing of them
    assert (kept[~outside] == redrawn[~outside]).all()  # the region asked for is the same


def test_extrapolation_keeps_the_original_part(tiny_pipeline):
    image = picture()
    kept = pixels(tiny_pipeline.extrapolate(image, "more", direction="right", steps=2, seed=0))
    assert kept.shape == (64, 96, 3) and (kept[:, :64] == pixels(image)).all()
    redrawn = pixels(tiny_pipeline.extrapolate(image, "more", direction="right", steps=2, seed=0,
                                               keep_unmasked=False))
    assert (redrawn[:, 32:64] != pixels(image)[:, 32:64]).any()


def test_one_processor_makes_inference_and_training_inputs(tiny_pipeline):
    processor = tiny_pipeline.processor
    assert isinstance(processor, ShowoProcessor)
    question = "What colour is the circle?"
    ids = processor.question_ids(question)
    assert ids == tiny_pipeline.tokenizer.encode(understanding_text(question))
    assert question_and_answer(processor, question, "red")[0] == ids  # the training rows' template
    codes = torch.randint(0, 64, (2, tiny_pipeline.config.num_image_tokens))
    image_ids = tiny_pipeline.model.layout.image_ids(codes)
    by_hand = mmu_prompt(image_ids, ids, tiny_pipeline.model.layout)
    assert torch.equal(processor.understanding_inputs(image_ids, [ids, ids]), by_hand)


def test_from_pretrained_takes_device_and_torch_dtype(tmp_path, tiny_pipeline):
    tiny_pipeline.save_pretrained(tmp_path / "pipe")
    loaded = ShowoPipeline.from_pretrained(tmp_path / "pipe", torch_dtype=torch.bfloat16)
    assert loaded.dtype == torch.bfloat16 and loaded.vq_dtype == torch.bfloat16
    assert loaded.device.type == ("cuda" if torch.cuda.is_available() else "cpu")  # CUDA when there is one
    assert ShowoPipeline.from_pretrained(tmp_path / "pipe", device="cpu").device.type == "cpu"


def test_a_mask_is_cropped_as_its_picture_is(tiny_pipeline):
    wide = Image.new("RGB", (128, 64), "white")  # resized to 128x64 -> 64 high, then the centre 64 columns
    mask = Image.new("L", (128, 64), 0)
    mask.paste(255, (32, 0, 64, 64))  # the left half of what the model sees
    kept = pixels(tiny_pipeline.inpaint(wide, mask, "a circle", steps=2, seed=0))
    seen = pixels(tiny_pipeline.processor.resized(wide))
    assert (kept[:, 32:] == seen[:, 32:]).all()  # the right half is outside the mask: the input's own
    assert (kept[:, :32] != seen[:, :32]).any()  # the left half was drawn anew
