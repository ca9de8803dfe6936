import pytest
import torch

from showo.generation.prompting import lm_prompt, mmu_prompt, t2i_prompt
from showo.model.layout import TokenLayout

PHI = TokenLayout(text_vocab_size=50295, codebook_size=8192, bos_id=50256, eos_id=50256)


def test_t2i_layout_matches_released_numbers():
    image = torch.full((2, 256), PHI.mask_id)
    ids = t2i_prompt([[10, 11, 12], []], image, PHI, max_text_length=128)
    assert ids.shape == (2, 387)
    row = ids[0].tolist()
    assert row[:123] == [PHI.pad_id] * 123
    assert row[123:129] == [PHI.t2i_id, 50256, 10, 11, 12, 50256]
    assert row[129] == PHI.soi_id and row[-1] == PHI.eoi_id
    assert row[130:386] == [PHI.mask_id] * 256  # the image starts at position 130 whatever the prompt
    assert ids[1, 126:131].tolist() == [PHI.t2i_id, 50256, 50256, PHI.soi_id, PHI.mask_id]  # empty prompt


def test_overlong_prompt_is_cut_with_a_warning():
    with pytest.warns(UserWarning, match="cut by 11 tokens"):
        ids = t2i_prompt([list(range(1, 138))], torch.full((1, 4), PHI.mask_id), PHI, max_text_length=128)
    assert ids.shape == (1, 135)
    assert ids[0, 0] == PHI.t2i_id and ids[0, 128] == PHI.eot_id and ids[0, 127] == 126


def test_mmu_and_lm_layouts():
    codes = PHI.image_ids(torch.tensor([[1, 2, 3, 4]]))
    ids = mmu_prompt(codes, [7, 8], PHI)
    assert ids.tolist() == [[PHI.mmu_id, PHI.soi_id, 50306, 50307, 50308, 50309, PHI.eoi_id, 50256, 7, 8]]
    lm = lm_prompt([[5, 6], list(range(10))], PHI, max_length=6)
    assert lm.tolist() == [[50256, 5, 6, 50256, PHI.pad_id, PHI.pad_id], [50256, 0, 1, 2, 3, 4]]


def test_raw_codes_are_refused_with_a_hint():
    layout = TokenLayout(text_vocab_size=512, codebook_size=1024, bos_id=0, eos_id=0)
    codes = torch.randint(0, layout.codebook_size, (1, 64))
    with pytest.raises(ValueError, match=r"raw image codes\? pass layout.image_ids\(codes\)"):
        mmu_prompt(codes, [5, 6], layout)
    with pytest.raises(ValueError, match=r"image ids must lie in"):
        t2i_prompt([[5]], codes, layout, 16)
    assert mmu_prompt(layout.image_ids(codes), [5, 6], layout).shape == (1, 1 + 64 + 2 + 1 + 2)
