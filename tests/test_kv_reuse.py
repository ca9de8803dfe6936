"""MaskGIT decoding that reuses the keys/values of unchanged image positions across steps
(``cache_refresh_every``): exact when every step is full or when the stale keys/values happen to
be exact, runs only the unknown and just-committed positions on a cheap step, keeps rows of a
batch independent, and refuses bad options."""

import dataclasses
import json

import pytest
import torch
from conftest import TINY, sharp_tiny_model

from showo.generation.generate_image import _ReusingImageLogits
from showo.generation.generate_image import generate_image_tokens as generate
from showo.generation.generation_config import FILENAME, GenerationConfig
from showo.generation.maskgit import MASKED, MaskGITSampler
from showo.generation.prompting import t2i_prompt
from showo.model.omni_attention import omni_attention_mask
from showo.model.transformer import ImagePositionEmbedding, image_token_index

N = TINY.num_image_tokens  # 64: an 8 x 8 grid
LAYOUT = TINY.layout
PROMPTS = [[5, 6, 7], [9, 3], [11, 12, 13, 14]]


def model_of(layers=TINY.llm.num_layers, image_positions=False):
    config = dataclasses.replace(TINY, llm=dataclasses.replace(TINY.llm, num_layers=layers),
                                 image_position_embeddings=image_positions)
    return sharp_tiny_model(config)


@pytest.fixture(scope="module", params=[False, True], ids=["rotary", "image-positions"])
def model(request):
    return model_of(image_positions=request.param)


def prompts(texts, image=None):
    image = torch.full((len(texts), N), LAYOUT.mask_id) if image is None else image
    cond = t2i_prompt(texts, image, LAYOUT, TINY.max_text_length)
    uncond = t2i_prompt([[] for _ in texts], image, LAYOUT, TINY.max_text_length)
    return cond, uncond


def generators(count, first=10):
    return [torch.Generator().manual_seed(first + i) for i in range(count)]


def oracle_image_logits(model, rows):
    """The whole sequences through the model: image-code logits of the image positions (R, N, C)."""
    logits = model(rows, attention_mask=omni_attention_mask(rows, LAYOUT))[:, -N - 1 : -1]
    return logits[..., LAYOUT.image_offset : LAYOUT.image_offset + LAYOUT.codebook_size]


def partly_masked_rows(masked_every):
    """One t2i row per prompt, random known codes with every k-th position [MASK] (k per row)."""
    g = torch.Generator().manual_seed(3)
    image = LAYOUT.image_ids(torch.randint(0, TINY.codebook_size, (len(masked_every), N), generator=g))
    for row, every in enumerate(masked_every):
        image[row, ::every] = LAYOUT.mask_id
    return prompts(PROMPTS[: len(masked_every)], image)[0]


# -- exactness ----------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{}, {"guidance_interval": (0.25, 0.75)}, {"order": "halton"}])
def test_a_full_step_every_step_gives_the_exact_codes(model, options):
    cond, uncond = prompts(PROMPTS[:2])
    exact = generate(model, cond, uncond, steps=8, guidance_scale=1.5, generator=generators(2), **options)
    reused = generate(model, cond, uncond, steps=8, guidance_scale=1.5, generator=generators(2),
                      cache_refresh_every=1, **options)
    assert torch.equal(reused, exact)


@torch.no_grad()
def test_a_cheap_step_on_exact_stale_values_gives_the_full_logits_of_what_it_runs(model):
    """After a full step on an image, a cheap step on the same image reuses keys/values that are
    exact; it runs only each row's [MASK] positions (a different number per row, so one row is
    padded) and must give the whole sequence's logits there, the others kept from the full step."""
    rows = partly_masked_rows([2, 5])
    step_logits = _ReusingImageLogits(model, rows, rows.shape[1] - N - 2, refresh_every=100, warmup_steps=1)
    segment = rows[:, -N - 2 :]
    expected = oracle_image_logits(model, rows)
    full = step_logits(segment)
    torch.testing.assert_close(full, expected, atol=1e-4, rtol=1e-4)
    cheap = step_logits(segment)
    runs = segment[:, 1:-1] == LAYOUT.mask_id
    torch.testing.assert_close(cheap[runs], expected[runs], atol=1e-4, rtol=1e-4)
    assert torch.equal(cheap[~runs], full[~runs])


@torch.no_grad()
@pytest.mark.parametrize("image_positions", [False, True])
def test_a_cheap_step_after_commits_is_exact_when_keys_do_not_depend_on_context(image_positions):
    """In a one-layer model a token's keys/values depend on its own id and place only, so a cheap
    step that runs the unknown and just-committed positions gives the exact logits there."""
    model = model_of(layers=1, image_positions=image_positions)
    rows = partly_masked_rows([2, 3])
    step_logits = _ReusingImageLogits(model, rows, rows.shape[1] - N - 2, refresh_every=100, warmup_steps=1)
    step_logits(rows[:, -N - 2 :])
    committed = rows.clone()
    committed[0, -N - 1 : -1 : 4] = LAYOUT.image_ids(torch.tensor(1))  # some [MASK] of row 0 get a code
    cheap = step_logits(committed[:, -N - 2 :])
    image = committed[:, -N - 1 : -1]
    runs = (image == LAYOUT.mask_id) | (image != rows[:, -N - 1 : -1])
    torch.testing.assert_close(cheap[runs], oracle_image_logits(model, committed)[runs], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("image_positions", [False, True])
def test_reuse_in_a_one_layer_model_decodes_the_exact_codes(image_positions):
    model = model_of(layers=1, image_positions=image_positions)
    cond, uncond = prompts(PROMPTS[:2])
    exact = generate(model, cond, uncond, steps=10, guidance_scale=1.5, generator=generators(2))
    reused = generate(model, cond, uncond, steps=10, guidance_scale=1.5, generator=generators(2),
                      cache_refresh_every=4)
    assert torch.equal(reused, exact)


# -- what a cheap step runs ---------------------------------------------------------------------


def test_a_cheap_step_runs_only_the_unknown_and_just_committed_positions(model, monkeypatch):
    lengths, unknown_before, original = [], [], MaskGITSampler.step

    def spy(*args, **kwargs):
        lengths.append(kwargs["input_ids"].shape[1] if "input_ids" in kwargs else args[0].shape[1])
        return type(model).hidden_states(model, *args, **kwargs)

    def step(self, index, logits, codes, *rest):
        unknown_before.append(int((codes == MASKED).sum()))
        return original(self, index, logits, codes, *rest)

    monkeypatch.setattr(model, "hidden_states", spy)
    monkeypatch.setattr(MaskGITSampler, "step", step)
    cond, uncond = prompts(PROMPTS[:1])
    steps, every = 12, 4
    generate(model, cond, uncond, steps=steps, guidance_scale=1.5, generator=generators(1), cache_refresh_every=every)
    runs = lengths[1:]  # the first call is the text prefix
    assert len(runs) == steps
    for s in range(steps):
        # unknown at step s, plus those committed at step s - 1: the unknown before step s - 1
        expected = N + 2 if s % every == 0 else unknown_before[s - 1]
        assert runs[s] == expected, s
    assert runs[-1] <= N // 4  # late in decoding a cheap step runs a quarter of the image or less


# -- batches ------------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{}, {"guidance_interval": (0.3, 0.8)},
                                     {"unmask": "confidence", "confidence_threshold": 0.5}])
def test_each_row_of_a_guided_batch_decodes_as_it_would_alone(model, options):
    cond, uncond = prompts(PROMPTS)
    run = dict(steps=10, guidance_scale=1.5, cache_refresh_every=3, cache_warmup_steps=2, **options)
    batch = generate(model, cond, uncond, generator=generators(3), **run)
    for i in range(3):
        alone = generate(model, cond[i : i + 1], uncond[i : i + 1], generator=generators(1, first=10 + i), **run)
        assert torch.equal(batch[i : i + 1], alone), i


# -- the model-level pieces ---------------------------------------------------------------------


def test_per_row_slot_writes_equal_writing_each_row_alone():
    cache = TINY.llm
    g = torch.Generator().manual_seed(0)
    k, v = (torch.randn(2, cache.num_heads, 3, cache.head_dim, generator=g) for _ in range(2))
    slots = torch.tensor([[4, 0, 7], [2, 5, 1]])
    model = model_of()
    together = model.new_cache(2, 8)
    together.write(0, slots, k, v)
    for row in range(2):
        alone = model.new_cache(1, 8)
        alone.write(0, slots[row], k[row : row + 1], v[row : row + 1])
        assert torch.equal(together.keys[0, row], alone.keys[0, 0])
        assert torch.equal(together.values[0, row], alone.values[0, 0])


def test_image_cells_place_a_gathered_subset_as_in_its_whole_image():
    embedding = ImagePositionEmbedding(TINY.image_grid_side, 16, LAYOUT)
    ids = partly_masked_rows([2, 3])
    whole = embedding(ids)
    subset = torch.tensor([[50, 3, 20], [7, 63, 0]])
    gathered = ids[:, -N - 1 : -1].gather(1, subset)
    torch.testing.assert_close(embedding(gathered, subset), whole[:, -N - 1 : -1].gather(
        1, subset[..., None].expand(-1, -1, 16)))
    assert torch.equal(embedding(ids, image_token_index(ids, LAYOUT).clamp(min=0)), whole)
    with pytest.raises(ValueError, match=r"image_cells must be a long tensor of the ids' shape \(2, 3\)"):
        embedding(gathered, subset[:1])


# -- refused options ----------------------------------------------------------------------------


@pytest.mark.parametrize("name, value", [("cache_refresh_every", 0), ("cache_refresh_every", -2),
                                         ("cache_refresh_every", 2.0), ("cache_refresh_every", True),
                                         ("cache_warmup_steps", 0), ("cache_warmup_steps", None),
                                         ("cache_warmup_steps", "2")])
def test_bad_reuse_options_are_refused_naming_them(name, value):
    cond, uncond = prompts(PROMPTS[:1])
    with pytest.raises(ValueError, match=rf"^{name} must be .*got {value!r}"):
        generate(model_of(), cond, uncond, steps=4, **{name: value})
    with pytest.raises(ValueError, match=name):
        GenerationConfig(**{name: value})


def test_released_mode_and_compile_refuse_reuse():
    cond, uncond = prompts(PROMPTS[:1])
    with pytest.raises(ValueError, match=r"mode='released' .* cache_refresh_every=3"):
        generate(model_of(), cond, uncond, steps=4, mode="released", cache_refresh_every=3)
    with pytest.raises(ValueError, match=r"compile=True .* cache_refresh_every=3"):
        generate(model_of(), cond, uncond, steps=4, compile=True, cache_refresh_every=3)


def test_generation_configs_keep_the_reuse_options_and_old_files_load(tmp_path):
    (tmp_path / FILENAME).write_text(json.dumps({"steps": 12, "guidance_scale": 2.0}))
    old = GenerationConfig.from_folder(tmp_path)
    assert (old.cache_refresh_every, old.cache_warmup_steps) == (None, 1)
    GenerationConfig(cache_refresh_every=4, cache_warmup_steps=2).save(tmp_path)
    loaded = GenerationConfig.from_folder(tmp_path)
    assert (loaded.cache_refresh_every, loaded.cache_warmup_steps) == (4, 2)
    (tmp_path / FILENAME).write_text(json.dumps({"cache_refresh_every": 0}))
    with pytest.raises(ValueError, match=r"cache_refresh_every must be None .* got 0"):
        GenerationConfig.from_folder(tmp_path)
