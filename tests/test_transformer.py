"""The transformer against transformers' PhiForCausalLM, and the KV cache against no cache."""

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY, write_released_folder

from showo import ShowoModel, generate_image_tokens, generate_text, omni_attention_mask, t2i_prompt
from showo.model.phi import attend


@pytest.fixture
def loaded(tmp_path, hf_phi, llm_config_dir):
    """Our model loaded from the HF model's weights under the released key names."""
    state = {"showo." + k: v for k, v in hf_phi.state_dict().items()}
    folder = write_released_folder(tmp_path / "released", state, "pytorch_model.safetensors")
    return ShowoModel.from_pretrained(folder, llm_config=llm_config_dir)


@torch.no_grad()
def test_logits_match_transformers_phi_with_qk_layernorm(loaded, hf_phi, random_ids):
    expected = hf_phi(random_ids).logits
    got = loaded(random_ids)
    assert got.shape == (2, 24, TINY.vocab_size)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_omni_mask_on_pure_text_equals_causal(loaded, hf_phi):
    ids = torch.randint(0, TINY.text_vocab_size, (3, 16), generator=torch.Generator().manual_seed(2))
    mask = omni_attention_mask(ids, loaded.layout)
    torch.testing.assert_close(loaded(ids, attention_mask=mask), hf_phi(ids).logits, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_cached_prefill_and_append_equal_uncached(tiny_model, random_ids):
    mask = omni_attention_mask(random_ids, tiny_model.layout)
    full = tiny_model(random_ids, attention_mask=mask)
    cache = tiny_model.new_cache(batch_size=2, max_length=32)
    parts = [tiny_model(random_ids[:, :10], attention_mask=mask[:, :, :10, :10], cache=cache)]
    for t in range(10, 24):
        parts.append(tiny_model(random_ids[:, t : t + 1], attention_mask=mask[:, :, t : t + 1, : t + 1], cache=cache))
    assert cache.length == 24
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_cached_prefix_reused_by_several_continuations(tiny_model):
    g = torch.Generator().manual_seed(3)
    prefix = torch.randint(0, TINY.text_vocab_size, (1, 12), generator=g)
    continuations = [torch.randint(0, TINY.vocab_size, (1, 5), generator=g) for _ in range(3)]
    cache = tiny_model.new_cache(batch_size=1, max_length=17)
    tiny_model(prefix, cache=cache)
    for cont in continuations:  # one after the other: truncate back to the prefix
        got = tiny_model(cont, cache=cache)
        cache.truncate(12)
        expected = tiny_model(torch.cat([prefix, cont], dim=1))[:, 12:]
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    parallel = cache.repeat(3)  # all at once: one row per continuation
    got = tiny_model(torch.cat(continuations), cache=parallel)
    expected = tiny_model(torch.cat([prefix.repeat(3, 1), torch.cat(continuations)], dim=1))[:, 12:]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_explicit_positions_shift_rotary(tiny_model):
    ids = torch.randint(0, TINY.text_vocab_size, (1, 8), generator=torch.Generator().manual_seed(4))
    padded = torch.cat([torch.full((1, 3), TINY.layout.pad_id), ids], dim=1)
    mask = omni_attention_mask(padded, tiny_model.layout)
    positions = (torch.arange(11) - 3).clamp(min=0)[None]
    got = tiny_model(padded, attention_mask=mask, position_ids=positions)[:, 3:]
    torch.testing.assert_close(got, tiny_model(ids), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@torch.no_grad()
def test_half_precision_close_to_fp32(tiny_model, random_ids, dtype):
    mask = omni_attention_mask(random_ids, tiny_model.layout)
    expected = tiny_model(random_ids, attention_mask=mask)
    half = ShowoModel(TINY)
    half.load_state_dict(tiny_model.state_dict())
    got = half.to(dtype).eval()(random_ids, attention_mask=mask)
    assert got.dtype == dtype and torch.isfinite(got).all()
    scale = expected.abs().max()
    assert (got.float() - expected).abs().max() / scale < 0.05


def test_attention_under_cpu_autocast_runs_in_float32():
    """mixed_precision=bf16 on a CPU: attention computes in float32 (the bfloat16 CPU kernel's
    backward is several times slower) and hands back bfloat16 like the layers around it."""
    q, k, v = (torch.randn(2, 4, 9, 16, requires_grad=True) for _ in range(3))
    mask = torch.ones(9, 9, dtype=torch.bool).tril()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = attend(q.bfloat16(), k.bfloat16(), v.bfloat16(), mask, causal=False)
    expected = F.scaled_dot_product_attention(q.bfloat16().float(), k.bfloat16().float(), v.bfloat16().float(),
                                              attn_mask=mask)
    assert got.dtype == torch.bfloat16
    assert torch.equal(got, expected.bfloat16())
    got.float().sum().backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in (q, k, v))
    outside = attend(q.detach(), k.detach(), v.detach(), None, causal=True)  # no autocast: untouched
    torch.testing.assert_close(outside, F.scaled_dot_product_attention(q, k, v, is_causal=True))


def test_ids_outside_vocabulary_are_refused_where_they_enter(tiny_model):
    layout = tiny_model.layout
    for bad in (TINY.vocab_size, -1):
        prompt = torch.tensor([[layout.mmu_id, 5, bad, layout.sot_id]])
        with pytest.raises(ValueError, match="outside the vocabulary"):
            generate_text(tiny_model, prompt, max_new_tokens=2)
        image = torch.full((1, TINY.num_image_tokens), layout.mask_id)
        sequence = t2i_prompt([[5, bad]], image, layout, TINY.max_text_length)
        with pytest.raises(ValueError, match="outside the vocabulary"):
            generate_image_tokens(tiny_model, sequence, guidance_scale=0, steps=2)


def test_forward_traces_as_one_graph(tiny_model, random_ids):
    """No host sync or data-dependent branch in the forward pass: dynamo captures it whole."""
    mask = omni_attention_mask(random_ids, tiny_model.layout)
    compiled = torch.compile(tiny_model, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(random_ids, attention_mask=mask), tiny_model(random_ids, attention_mask=mask))


def test_bad_masks_are_refused(tiny_model, random_ids):
    with pytest.raises(ValueError, match="boolean"):
        tiny_model(random_ids, attention_mask=torch.zeros(2, 1, 24, 24))
    with pytest.raises(ValueError, match=r"shape \(2, 1, 24, 24\)"):
        tiny_model(random_ids, attention_mask=torch.ones(2, 1, 24, 23, dtype=torch.bool))


def test_cache_overflow_is_refused(tiny_model):
    cache = tiny_model.new_cache(batch_size=1, max_length=4)
    with pytest.raises(ValueError, match="holds 4 positions"):
        tiny_model(torch.zeros(1, 5, dtype=torch.long), cache=cache)


def test_a_grown_model_computes_what_it_did_until_trained_and_round_trips(tiny_model, random_ids, tmp_path):
    old_blocks = list(tiny_model.blocks)
    with torch.no_grad():
        before = tiny_model(random_ids)
        assert tiny_model.grow_layers(5) == [1, 3, 4]  # old blocks at 0 and 2, in their order
        torch.testing.assert_close(tiny_model(random_ids), before, rtol=0, atol=0)
        assert [tiny_model.blocks[i] for i in (0, 2)] == old_blocks
        assert tiny_model.config.llm.num_layers == 5 and tiny_model.new_cache(1, 4).keys.shape[0] == 5
        tiny_model.blocks[3].mlp.fc2.weight.normal_()  # a trained new block does change the output
        changed = tiny_model(random_ids)
        assert (changed - before).abs().max() > 1e-3
    tiny_model.save_pretrained(tmp_path)
    loaded = ShowoModel.from_pretrained(tmp_path)
    assert loaded.config == tiny_model.config
    with torch.no_grad():
        torch.testing.assert_close(loaded(random_ids), changed, rtol=0, atol=0)
    with pytest.raises(ValueError, match="has 5 layers; asked for 5"):
        tiny_model.grow_layers(5)
