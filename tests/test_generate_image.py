"""MaskGIT decoding: the prefix-cached path against the naive full-recompute path."""


import pytest
import torch
from conftest import TINY, sharp_tiny_model
from conftest import tiny_t2i_prompts as prompts
from naive_image import naive_generate_image_tokens

from showo.generation.generate_image import generate_image_tokens
from showo.generation.maskgit import MASKED, MaskGITSampler, mask_ratio

N = TINY.num_image_tokens


@pytest.fixture(scope="module")
def sharp_model():
    return sharp_tiny_model()


def seeded(seed=1):
    return torch.Generator().manual_seed(seed)


def test_logits_and_tokens_equal_the_naive_path(sharp_model):
    cond, uncond = prompts([[5, 6, 7], [9, 3]])
    fast_logits, naive_logits = [], []
    fast = generate_image_tokens(sharp_model, cond, uncond, steps=6, generator=seeded(),
                                 callback=lambda s, lg, _: fast_logits.append(lg))
    naive = naive_generate_image_tokens(sharp_model, cond, uncond, steps=6, generator=seeded(),
                                        callback=lambda s, lg, _: naive_logits.append(lg))
    assert len(fast_logits) == len(naive_logits) == 6
    for a, b in zip(fast_logits, naive_logits):
        assert a.shape == (2, N, TINY.codebook_size)
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert torch.equal(fast, naive)
    assert fast.shape == (2, N) and fast.min() >= 0 and fast.max() < TINY.codebook_size


def test_without_guidance_equals_naive(sharp_model):
    cond, _ = prompts([[5, 6]])
    fast = generate_image_tokens(sharp_model, cond, guidance_scale=0, steps=4, generator=seeded(2))
    naive = naive_generate_image_tokens(sharp_model, cond, guidance_scale=0, steps=4, generator=seeded(2))
    assert torch.equal(fast, naive)


def test_seeded_sampling_is_reproducible_and_seed_dependent(sharp_model):
    cond, uncond = prompts([[5, 6, 7]])
    a = generate_image_tokens(sharp_model, cond, uncond, steps=5, generator=seeded(3))
    b = generate_image_tokens(sharp_model, cond, uncond, steps=5, generator=seeded(3))
    c = generate_image_tokens(sharp_model, cond, uncond, steps=5, generator=seeded(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_batch_equals_per_item_with_one_generator_per_row(sharp_model):
    texts = [[5, 6, 7], [9], [1, 2, 3, 4]]
    cond, uncond = prompts(texts)
    batch = generate_image_tokens(sharp_model, cond, uncond, steps=5, generator=[seeded(10 + i) for i in range(3)])
    for i in range(3):
        alone = generate_image_tokens(sharp_model, cond[i : i + 1], uncond[i : i + 1], steps=5,
                                      generator=[seeded(10 + i)])
        assert torch.equal(batch[i : i + 1], alone)


def test_known_tokens_are_kept(sharp_model):
    layout = TINY.layout
    known = torch.randint(0, TINY.codebook_size, (1, N), generator=seeded(5))
    image = layout.image_ids(known)
    image[:, 20:30] = layout.mask_id
    cond, uncond = prompts([[5]], image)
    out = generate_image_tokens(sharp_model, cond, uncond, steps=4, generator=seeded())
    keep = torch.ones(N, dtype=torch.bool)
    keep[20:30] = False
    assert torch.equal(out[:, keep], known[:, keep])


def _masked_counts(mode):
    """Masked positions left after each step when 8 of 64 positions start masked (inpainting)."""
    layout = TINY.layout
    image = layout.image_ids(torch.zeros(1, N, dtype=torch.long))
    image[:, :8] = layout.mask_id
    sampler = MaskGITSampler(6, "cosine", 1.0, mode)
    codes = torch.where(image == layout.mask_id, MASKED, image - layout.image_offset)
    initially = (codes == MASKED).sum(-1)
    logits = torch.randn(1, N, TINY.codebook_size, generator=seeded(6))
    counts = []
    for step in range(6):
        _, codes = sampler.step(step, logits, codes, initially, seeded(step))
        counts.append(int((codes == MASKED).sum()))
    return counts


def test_remask_count_maskgit_versus_released():
    # maskgit: floor(8 * cos(pi/2 * (s+1)/6)) = 7, 6, 5, 4, 2, 0 (at least 1)
    assert _masked_counts("maskgit") == [7, 6, 5, 4, 2, 1]
    # released: sized from all 64 positions, capped at unknown - 1: one token revealed per step
    assert _masked_counts("released") == [7, 6, 5, 4, 3, 1]


def test_released_temperature_compounds():
    plain = MaskGITSampler(steps=4, temperature=2.0)
    released = MaskGITSampler(steps=4, temperature=2.0, mode="released")
    assert [plain.gumbel_temperature(s) for s in range(4)] == [1.5, 1.0, 0.5, 0.0]
    assert [released.gumbel_temperature(s) for s in range(4)] == [1.5, 0.75, 0.1875, 0.0]


def test_schedules():
    assert mask_ratio("cosine", 0) == 1.0 and abs(mask_ratio("cosine", 1)) < 1e-12
    assert mask_ratio("linear", 0.25) == 0.75
    assert mask_ratio("pow2", 0.5) == 0.75
    assert mask_ratio("sigmoid", 0) == 1.0 and mask_ratio("sigmoid", 1) == 0.0
    assert abs(mask_ratio("sigmoid", 0.5) - 0.5) < 1e-12
    with pytest.raises(ValueError, match="unknown schedule"):
        mask_ratio("square", 0.5)
    with pytest.raises(ValueError, match="pow"):
        mask_ratio("powx", 0.5)


def test_bad_arguments(sharp_model):
    cond, uncond = prompts([[5]])
    with pytest.raises(ValueError, match="steps must be at least 1"):
        generate_image_tokens(sharp_model, cond, uncond, steps=0)
    with pytest.raises(ValueError, match="guidance_scale must be >= 0"):
        generate_image_tokens(sharp_model, cond, uncond, guidance_scale=-1)
    with pytest.raises(ValueError, match="needs uncond_input_ids"):
        generate_image_tokens(sharp_model, cond, None, guidance_scale=1.5)
    with pytest.raises(ValueError, match="no <soi>"):
        generate_image_tokens(sharp_model, cond[:, :10], guidance_scale=0)
    with pytest.raises(ValueError, match="generators for a batch"):
        generate_image_tokens(sharp_model, cond, uncond, steps=2, generator=[seeded(), seeded()])
