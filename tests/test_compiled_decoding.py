"""Decoding steps of static shape: the MaskGIT step on the first rows only, the slot-written KV
cache, and compile=True against eager (one compile per decoder, fullgraph: a graph break or a
host sync inside a step fails)."""

import pytest
import torch
from conftest import TINY, redraw_weights, sharp_tiny_model

from showo import ShowoModel
from showo.generation.generate_image import _cached_image_logits, generate_image_tokens
from showo.generation.generate_text import generate_text, left_pad
from showo.generation.prompting import mmu_prompt, t2i_prompt
from showo.model.omni_attention import omni_attention_mask

N = TINY.num_image_tokens


@pytest.fixture(scope="module")
def sharp_model():
    return sharp_tiny_model()


def t2i_rows(texts, seed=0):
    """Cond rows then uncond rows of t2i sequences whose images are half known codes, half [MASK]."""
    layout = TINY.layout
    g = torch.Generator().manual_seed(seed)
    image = layout.image_ids(torch.randint(0, TINY.codebook_size, (len(texts), N), generator=g))
    image[:, ::2] = layout.mask_id
    cond = t2i_prompt(texts, image, layout, TINY.max_text_length)
    uncond = t2i_prompt([[] for _ in texts], image, layout, TINY.max_text_length)
    return torch.cat([cond, uncond])


def uncached_image_logits(model, rows, start, end):
    """The oracle: the whole sequences through the model, image positions, image codes only."""
    layout = model.layout
    logits = model(rows, attention_mask=omni_attention_mask(rows, layout))[:, start:end]
    return logits[..., layout.image_offset : layout.image_offset + layout.codebook_size]


@torch.no_grad()
def test_image_step_on_the_first_rows_equals_their_full_forward(sharp_model):
    rows = t2i_rows([[5, 6, 7], [9, 3]])
    start, end = rows.shape[1] - N - 1, rows.shape[1] - 1
    step_logits = _cached_image_logits(sharp_model, rows, start - 1)
    segment = rows[:, start - 1 :]
    expected = uncached_image_logits(sharp_model, rows, start, end)  # (4, N, C)

    cond = step_logits(segment[:2])  # only the conditional rows run
    assert cond.shape == (2, N, TINY.codebook_size)
    torch.testing.assert_close(cond, expected[:2], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(step_logits(segment), expected, atol=1e-4, rtol=1e-4)  # prefix intact
    other = rows.clone()
    other[:, start:end] = TINY.layout.mask_id  # a later step: another image on the same prefix
    torch.testing.assert_close(step_logits(other[:2, start - 1 :]),
                               uncached_image_logits(sharp_model, other[:2], start, end), atol=1e-4, rtol=1e-4)


def test_image_step_refuses_segments_that_do_not_fit_the_prefix(sharp_model):
    rows = t2i_rows([[5]])
    start = rows.shape[1] - N - 1
    step_logits = _cached_image_logits(sharp_model, rows, start - 1)
    segment = rows[:, start - 1 :]
    with pytest.raises(ValueError, match=r"1 <= n <= 2"):
        step_logits(torch.cat([segment, segment]))
    with pytest.raises(ValueError, match=rf"\(n, {N + 2}\)"):
        step_logits(segment[:, 1:])



@torch.no_grad()
def test_steps_written_at_slot_tensors_equal_the_uncached_forward(sharp_model, random_ids):
    """Prefill, then one token per step at a slot given as a tensor, attending over every slot of
    a cache longer than needed (the unwritten slots masked): the logits of the whole sequence."""
    layout = sharp_model.layout
    mask = omni_attention_mask(random_ids, layout)  # (2, 1, 24, 24)
    expected = sharp_model(random_ids, attention_mask=mask)
    cache = sharp_model.new_cache(batch_size=2, max_length=40)
    parts = [sharp_model(random_ids[:, :10], attention_mask=mask[:, :, :10, :10], cache=cache)]
    for t in range(10, 24):
        seen = torch.zeros(2, 1, 1, 40, dtype=torch.bool)
        seen[..., : t + 1] = mask[:, :, t : t + 1, : t + 1]
        parts.append(sharp_model(random_ids[:, t : t + 1], attention_mask=seen, cache=cache,
                                 position_ids=torch.full((2, 1), t), cache_slots=torch.tensor([t])))
    assert cache.length == 10  # slot writes leave the appended length alone
    torch.testing.assert_close(torch.cat(parts, dim=1), expected, atol=1e-4, rtol=1e-4)
    causal = sharp_model(random_ids[:, :1], cache=sharp_model.new_cache(2, 8), cache_slots=torch.tensor([0]))
    torch.testing.assert_close(causal, expected[:, :1], atol=1e-4, rtol=1e-4)  # default mask: slots up to its own


def test_slot_writes_refuse_bad_slots(sharp_model):
    ids = torch.zeros(1, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="cache_slots needs a cache"):
        sharp_model(ids, cache_slots=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"cache_slots must be a \(2,\) tensor.*got \(1,\)"):
        sharp_model(ids, cache=sharp_model.new_cache(1, 4), cache_slots=torch.tensor([0]))
    cache = sharp_model.new_cache(1, 4)
    k = torch.zeros(1, TINY.llm.num_heads, 2, TINY.llm.head_dim)
    with pytest.raises(ValueError, match=r"slots must be a \(2,\) long tensor.*torch.float32"):
        cache.write(0, torch.tensor([0.0, 1.0]), k, k)
    with pytest.raises(ValueError, match=r"first_rows: rows must lie in \[1, 1\], got 2"):
        cache.first_rows(2)


@pytest.fixture(scope="module")
def answer_model():
    """The tiny model with every weight redrawn small, so that greedy answers are not one repeated token."""
    torch.manual_seed(0)
    return redraw_weights(ShowoModel(TINY).eval(), 0.1)


def questions(lengths, seed=0):
    """Left-padded ``<mmu> <soi> random image <eoi> <sot> random question`` prompts."""
    g = torch.Generator().manual_seed(seed)
    prompts = []
    for length in lengths:
        codes = torch.randint(0, TINY.codebook_size, (1, N), generator=g)
        question = torch.randint(1, TINY.text_vocab_size, (length,), generator=g).tolist()
        prompts.append(mmu_prompt(TINY.layout.image_ids(codes), question, TINY.layout)[0])
    return left_pad(prompts, TINY.layout.pad_id)


@torch.no_grad()
def test_compiled_answers_equal_eager_and_compile_once(answer_model):
    ids = questions([6, 3])
    eager = generate_text(answer_model, ids, max_new_tokens=20, top_k=1)
    assert len(set(eager[0].tolist())) > 3  # a real answer, not one repeated token
    compiled = generate_text(answer_model, ids, max_new_tokens=20, top_k=1, compile=True)  # fullgraph
    assert torch.equal(compiled, eager)
    other = questions([9, 2], seed=1)  # another prompt length, the same rounded cache length
    with torch._dynamo.config.patch(error_on_recompile=True):
        again = generate_text(answer_model, other, max_new_tokens=20, top_k=1, compile=True)
    assert torch.equal(again, generate_text(answer_model, other, max_new_tokens=20, top_k=1))


@torch.no_grad()
def test_compiled_maskgit_equals_eager(sharp_model):
    rows = t2i_rows([[5, 6, 7], [9, 3]], seed=2)
    cond, uncond = rows[:2], rows[2:]

    def maskgit(compile):
        logits = []
        codes = generate_image_tokens(sharp_model, cond, uncond, steps=5, generator=torch.Generator().manual_seed(1),
                                      callback=lambda s, lg, _: logits.append(lg), compile=compile)
        return codes, logits

    eager_codes, eager_logits = maskgit(False)
    compiled_codes, compiled_logits = maskgit(True)  # fullgraph
    assert torch.equal(compiled_codes, eager_codes)
    for compiled, eager in zip(compiled_logits, eager_logits, strict=True):
        torch.testing.assert_close(compiled, eager, atol=1e-3, rtol=1e-4)  # inductor fuses differently


def test_compile_must_be_a_flag(answer_model, sharp_model):
    with pytest.raises(ValueError, match="compile must be True or False, got 'yes'"):
        generate_text(answer_model, questions([3]), max_new_tokens=2, compile="yes")
    rows = t2i_rows([[5]])
    with pytest.raises(ValueError, match="compile must be True or False"):
        generate_image_tokens(sharp_model, rows[:1], rows[1:], steps=2, compile=1)
