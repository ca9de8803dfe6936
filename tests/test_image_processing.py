"""Image loading, mode conversion, resize + centre crop, and the [-1, 1] round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from showo.model.image_processing import (
    check_image_size,
    load_image,
    postprocess_images,
    preprocess_image,
    preprocess_images,
)

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def as_color(rgb: tuple[int, int, int]) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.float32) / 255 * 2 - 1  # (3,)


def palette_image(transparent: bool) -> Image.Image:
    image = Image.new("P", (40, 24), 0)
    image.putpalette([*RED, *GREEN, *BLUE] + [0] * (3 * 253))
    image.paste(1, (0, 0, 20, 24))  # left half green, right half red
    if transparent:
        image.info["transparency"] = 0  # palette index 0 (red) is transparent
    return image


def rgba_image() -> Image.Image:
    image = Image.new("RGBA", (24, 24), (*BLUE, 255))
    image.paste((0, 0, 0, 0), (12, 0, 24, 24))  # right half fully transparent black
    return image


@pytest.mark.parametrize(
    "image",
    [
        Image.new("RGB", (30, 20), RED),
        rgba_image(),
        Image.new("L", (20, 30), 128),
        Image.new("LA", (20, 20), (0, 0)),
        palette_image(transparent=False),
        palette_image(transparent=True),
        Image.new("CMYK", (20, 20), (0, 255, 255, 0)),
    ],
    ids=["RGB", "RGBA", "L", "LA", "P", "P-transparent", "CMYK"],
)
def test_every_mode_gives_rgb_in_range(image):
    out = preprocess_image(image, 16)
    assert out.shape == (3, 16, 16) and out.dtype == torch.float32
    assert out.min() >= -1 and out.max() <= 1


def test_transparency_is_composited_over_white():
    rgba = preprocess_image(rgba_image(), 24)
    torch.testing.assert_close(rgba[:, 5, 2], as_color(BLUE))
    torch.testing.assert_close(rgba[:, 5, 20], torch.ones(3))  # transparent black -> white
    pal = preprocess_image(palette_image(transparent=True), 24)  # resized 40x24 -> crop 8..32
    torch.testing.assert_close(pal[:, 3, 2], as_color(GREEN))
    torch.testing.assert_close(pal[:, 3, 22], torch.ones(3))  # the transparent red
    opaque = preprocess_image(palette_image(transparent=False), 24)
    torch.testing.assert_close(opaque[:, 3, 22], as_color(RED))
    gray = preprocess_image(Image.new("L", (8, 8), 0), 8)
    assert torch.equal(gray, -torch.ones(3, 8, 8))


def thirds(width: int, height: int, horizontal: bool = True) -> Image.Image:
    """Left/middle/right thirds (or top/middle/bottom) in red, green, blue."""
    image = Image.new("RGB", (width, height))
    for i, color in enumerate((RED, GREEN, BLUE)):
        if horizontal:
            image.paste(color, (i * width // 3, 0, (i + 1) * width // 3, height))
        else:
            image.paste(color, (0, i * height // 3, width, (i + 1) * height // 3))
    return image


def test_centre_crop_exact_when_no_resize_is_needed():
    # The short side already equals the size, so the crop must be exactly the middle third.
    out = preprocess_image(thirds(48, 16), 16)
    assert torch.equal(out, as_color(GREEN).view(3, 1, 1).expand(3, 16, 16))
    tall = preprocess_image(thirds(16, 48, horizontal=False), 16)
    assert torch.equal(tall, as_color(GREEN).view(3, 1, 1).expand(3, 16, 16))


def test_shorter_side_resized_then_centre_cropped():
    # 600x100 -> 120x20 (shorter side to 20); the centre 20 columns lie well inside the green
    # third, so the centre and all four corners are green, with no red or blue bleeding in.
    out = preprocess_image(thirds(600, 100), 20)
    green = as_color(GREEN)
    for y, x in [(10, 10), (0, 0), (0, 19), (19, 0), (19, 19)]:
        torch.testing.assert_close(out[:, y, x], green, atol=2 / 255, rtol=0)
    # Without the crop's offset (left-aligned crop), the left edge would be red.
    wide = preprocess_image(thirds(60, 20), 20)  # no resize: columns 20..40 exactly
    assert torch.equal(wide[:, :, 0], green.view(3, 1).expand(3, 20))


def test_downscale_uses_bicubic():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))
    expected = np.asarray(image.resize((24, 16), Image.BICUBIC))[:, 4:20]  # crop (24-16)/2 = 4
    out = preprocess_image(image, 16)
    assert torch.equal(out, torch.from_numpy(expected.copy()).permute(2, 0, 1).float() / 255 * 2 - 1)


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")
    assert torch.equal(preprocess_image(path, 8), torch.ones(3, 8, 8))


def test_batch_and_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    arrays = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(2)]
    Image.fromarray(arrays[1]).save(tmp_path / "b.png")
    batch = preprocess_images([Image.fromarray(arrays[0]), tmp_path / "b.png"], 16)
    assert batch.shape == (2, 3, 16, 16)
    images = postprocess_images(batch)
    assert [im.mode for im in images] == ["RGB", "RGB"]
    for im, arr in zip(images, arrays):
        assert np.array_equal(np.asarray(im), arr)


def test_postprocess_clamps():
    pixels = torch.tensor([-3.0, -1.0, 0.0, 1.0, 7.0]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    (image,) = postprocess_images(pixels)
    assert np.asarray(image)[0, :, 0].tolist() == [0, 0, 128, 255, 255]
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        postprocess_images(torch.zeros(1, 4, 2, 2))


def test_not_an_image_names_the_file(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a picture\n")
    with pytest.raises(ValueError, match=r"notes\.txt"):
        load_image(text)
    png = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(png)
    png.write_bytes(png.read_bytes()[:200])  # truncated mid-stream
    with pytest.raises(ValueError, match=r"cut\.png"):
        load_image(png)
    with pytest.raises(FileNotFoundError, match=r"missing\.png"):
        load_image(tmp_path / "missing.png")


def test_check_image_size():
    check_image_size(torch.zeros(2, 3, 32, 32), 32, 8)
    with pytest.raises(ValueError, match=r"expected 32x32 images \(4x4 tokens\), got 32x40"):
        check_image_size(torch.zeros(2, 3, 32, 40), 32, 8)
    with pytest.raises(ValueError, match=r"got \(2, 1, 32, 32\)"):
        check_image_size(torch.zeros(2, 1, 32, 32), 32, 8)
    with pytest.raises(ValueError, match="multiple of the tokenizer's downsample factor 16"):
        check_image_size(torch.zeros(1, 3, 40, 40), 40, 16)
