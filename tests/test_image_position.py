"""Learned row and column embeddings of image tokens (ShowoConfig.image_position_embeddings)."""

import dataclasses

import pytest
import torch
from conftest import TINY, sharp_tiny_model

from showo import ShowoModel
from showo.model.transformer import image_token_index

LAYOUT = TINY.layout
N = TINY.num_image_tokens  # 8x8
WITH_POSITIONS = dataclasses.replace(TINY, image_position_embeddings=True)


def two_picture_row() -> torch.Tensor:
    """<t2i> text <soi> 64 codes/[MASK] <eoi> text <soi> 64 codes <eoi>"""
    codes = torch.arange(N) % TINY.codebook_size + LAYOUT.image_offset
    first = torch.where(torch.arange(N) % 3 == 0, torch.full_like(codes, LAYOUT.mask_id), codes)
    parts = [[LAYOUT.t2i_id, 5, 6], [LAYOUT.soi_id], first.tolist(), [LAYOUT.eoi_id, 7],
             [LAYOUT.soi_id], codes.tolist(), [LAYOUT.eoi_id]]
    return torch.tensor([[token for part in parts for token in part]])


def test_index_counts_each_picture_from_zero_and_marks_the_rest():
    ids = two_picture_row()
    index = image_token_index(ids, LAYOUT)[0]
    first, second = slice(4, 4 + N), slice(4 + N + 3, 4 + 2 * N + 3)
    assert torch.equal(index[first], torch.arange(N))  # [MASK] slots are image tokens too
    assert torch.equal(index[second], torch.arange(N))
    outside = torch.ones(ids.shape[1], dtype=torch.bool)
    outside[first] = outside[second] = False
    assert (index[outside] == -1).all()


def test_off_by_default_and_released_keys_unchanged():
    assert not TINY.image_position_embeddings
    assert not any("image_position" in k for k in ShowoModel(TINY).state_dict())


def test_same_code_gets_its_place_added():
    torch.manual_seed(0)
    model = ShowoModel(WITH_POSITIONS)
    code = LAYOUT.image_offset + 3
    ids = torch.tensor([[LAYOUT.soi_id] + [code] * N + [LAYOUT.eoi_id]])
    x = model._embed(ids, None)[0]
    table = model.image_position
    for k in (0, 9, N - 1):
        expected = model.embed.weight[code] + table.rows.weight[k // 8] + table.cols.weight[k % 8]
        torch.testing.assert_close(x[1 + k], expected)
    torch.testing.assert_close(x[0], model.embed.weight[LAYOUT.soi_id])  # text and markers unchanged


def test_saved_and_loaded_with_the_flag(tmp_path):
    torch.manual_seed(0)
    model = ShowoModel(WITH_POSITIONS).eval()
    model.save_pretrained(tmp_path / "m")
    loaded = ShowoModel.from_pretrained(tmp_path / "m")
    assert loaded.config.image_position_embeddings
    ids = two_picture_row()
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids), model(ids))
        without = ShowoModel(TINY).eval()
        without.load_state_dict({k: v for k, v in model.state_dict().items() if "image_position" not in k})
        assert not torch.allclose(without(ids), model(ids))


def test_a_folder_without_the_weights_is_refused(tmp_path):
    torch.manual_seed(0)
    ShowoModel(TINY).save_pretrained(tmp_path / "m")
    config = (tmp_path / "m" / "config.json")
    text = config.read_text()
    config.write_text(text.replace('"image_position_embeddings": false', '"image_position_embeddings": true'))
    with pytest.raises(ValueError, match="image_position"):
        ShowoModel.from_pretrained(tmp_path / "m")


def test_cached_decoding_equals_the_naive_path():
    """The text prefix is cached and the <soi> image <eoi> segment run alone: places still count from 0."""
    from naive_image import naive_generate_image_tokens

    from showo.generation.generate_image import generate_image_tokens
    from showo.generation.prompting import t2i_prompt

    model = sharp_tiny_model(WITH_POSITIONS)
    image = torch.full((2, N), LAYOUT.mask_id)
    cond = t2i_prompt([[5, 6, 7], [9, 3]], image, LAYOUT, TINY.max_text_length)
    uncond = t2i_prompt([[], []], image, LAYOUT, TINY.max_text_length)
    runs = [f(model, cond, uncond, steps=5, generator=torch.Generator().manual_seed(1))
            for f in (generate_image_tokens, naive_generate_image_tokens)]
    assert torch.equal(runs[0], runs[1])
