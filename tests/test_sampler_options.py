"""The MaskGIT sampler: the released arithmetic reproduced exactly, and the sampling
accelerations (adaptive unmasking, guidance interval, Halton order), each off by default."""

import json
import math

import numpy
import pytest
import torch
from conftest import TINY, sharp_tiny_model
from conftest import tiny_t2i_prompts as prompts

from showo.generation.generate_image import codes_to_ids, guided, image_span
from showo.generation.generate_image import generate_image_tokens as generate
from showo.generation.generation_config import FILENAME, GenerationConfig
from showo.generation.maskgit import MASKED, MaskGITSampler, _draw_codes_inverse_cdf
from showo.model.omni_attention import omni_attention_mask

N = TINY.num_image_tokens  # 64: an 8 x 8 grid
SCHEDULES = ["cosine", "linear", "sigmoid", "pow2", "pow0.5"]


def seeded(seed=1):
    return torch.Generator().manual_seed(seed)


def generators(count, first=10):
    return [seeded(first + i) for i in range(count)]


@pytest.fixture(scope="module")
def sure_model():
    """Weights scaled so far that nearly every position soon has one code of probability > 0.9."""
    return sharp_tiny_model(scale=8.0)


def all_masked(rows, n=N):
    return torch.full((rows, n), MASKED)


def record_steps(monkeypatch):
    """Every ``MaskGITSampler.step`` call's (codes in, codes out), in order."""
    calls, original = [], MaskGITSampler.step

    def step(self, index, logits, codes, *rest):
        sampled, next_codes = original(self, index, logits, codes, *rest)
        calls.append((codes.clone(), next_codes.clone()))
        return sampled, next_codes

    monkeypatch.setattr(MaskGITSampler, "step", step)
    return calls


# -- the released arithmetic (showlab/Show-o models/sampling.py, t2i_generate in modeling_showo.py) ----


def released_schedule(name, t):
    """The released noise schedules, written out in float32 torch arithmetic (the oracle)."""
    if name == "cosine":
        return torch.cos(t * math.pi * 0.5)
    if name == "linear":
        return (1 - t).clamp(min=1e-6, max=1.0)
    if name == "sigmoid":
        v_start, v_end = torch.sigmoid(torch.tensor(-3.0)), torch.sigmoid(torch.tensor(3.0))
        output = torch.sigmoid(t * 6 - 3)
        return torch.clip((v_end - output) / (v_end - v_start), 1e-6, 1.0)
    return (1.0 - t ** float(name[3:])).clamp(min=1e-6, max=1.0)


def released_mask_lens(schedule, steps, n):
    """The released ``mask_len`` of every step when all ``n`` positions start masked."""
    unknown, lens = n, []
    for step in range(steps):
        mask_ratio = released_schedule(schedule, torch.tensor(1.0 * (step + 1) / steps))
        assert mask_ratio.dtype == torch.float32
        lens.append(max(1, min(unknown - 1, int((n * mask_ratio).floor()))))
        unknown = lens[-1]
    return lens


def remask_counts(sampler, n, codebook=8):
    """Positions left masked after each step of ``sampler`` on random logits, all ``n`` masked at first."""
    codes = all_masked(1, n)
    initially, counts = (codes == MASKED).sum(-1), []
    for step in range(sampler.steps):
        logits = torch.randn(1, n, codebook, generator=seeded(100 + step))
        _, codes = sampler.step(step, logits, codes, initially, seeded(step))
        counts.append(int((codes == MASKED).sum()))
    return counts


@pytest.mark.parametrize("n", [256, 1024])
@pytest.mark.parametrize("steps", [12, 18, 50])
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_released_remask_counts_are_the_released_float32_ones(schedule, steps, n):
    sampler = MaskGITSampler(steps, schedule, 1.0, "released")
    assert remask_counts(sampler, n) == released_mask_lens(schedule, steps, n)


def test_float64_would_remask_one_more_token_at_step_11_of_18_cosine_steps():
    assert released_mask_lens("cosine", 18, 256)[11] == 127
    assert math.floor(256 * math.cos(math.pi / 2 * 12 / 18)) == 128  # what float64 arithmetic gives
    assert remask_counts(MaskGITSampler(18, "cosine", 1.0, "released"), 256)[11] == 127
    assert remask_counts(MaskGITSampler(18, "cosine", 1.0), 256)[11] == 128  # maskgit mode: unchanged


def released_decode(step_logits, codes, steps, schedule, temperature, generator):
    """The released t2i_generate loop, given each step's guided logits: every step's codes."""
    history = []
    for step in range(steps):
        logits = step_logits(step)
        probs = logits.softmax(dim=-1)
        sampled = torch.multinomial(probs.reshape(-1, logits.size(-1)), 1, generator=generator)[:, 0]
        unknown_map = codes == MASKED
        sampled = torch.where(unknown_map, sampled.view(*logits.shape[:-1]), codes)
        ratio = 1.0 * (step + 1) / steps
        mask_ratio = released_schedule(schedule, torch.tensor(ratio))
        selected = torch.gather(probs, -1, sampled.long()[..., None]).squeeze(-1)
        selected = torch.where(unknown_map, selected, torch.finfo(selected.dtype).max)
        mask_len = (codes.shape[1] * mask_ratio).floor().unsqueeze(0)
        mask_len = torch.max(torch.tensor([1]), torch.min(unknown_map.sum(dim=-1, keepdim=True) - 1, mask_len))
        temperature = temperature * (1.0 - ratio)
        noise = torch.zeros_like(selected).uniform_(0, 1, generator=generator)
        gumbel = -torch.log((-torch.log(noise.clamp(min=1e-20))).clamp(min=1e-20))
        confidence = torch.log(selected.clamp(min=1e-20)) + temperature * gumbel
        cut_off = torch.gather(torch.sort(confidence, dim=-1).values, 1, mask_len.long())
        codes = torch.where(confidence < cut_off, MASKED, sampled)
        history.append((sampled, codes))
    return history


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_released_mode_decodes_as_the_released_loop(schedule):
    steps, codes = 10, all_masked(2)
    codes[1, :20] = torch.arange(20)  # the second row inpaints
    logits = torch.randn(steps, 2, N, 32, generator=seeded(4)) * 2
    expected = released_decode(lambda s: logits[s], codes, steps, schedule, 4.5, seeded(5))
    sampler, generator = MaskGITSampler(steps, schedule, 4.5, "released"), seeded(5)
    initially = (codes == MASKED).sum(-1)
    for step in range(steps):
        sampled, codes = sampler.step(step, logits[step], codes, initially, generator)
        assert torch.equal(sampled, expected[step][0]) and torch.equal(codes, expected[step][1])


# -- defaults: bit for bit what the sampler did before the options ----------------------------------------


def fingerprints(sampler, per_row):
    """Weighted sums of (sampled, re-masked) after each step: 6 cosine steps, one row inpainting."""
    logits = torch.randn(2, N, 16, generator=seeded(7)) * 3
    codes = all_masked(2)
    codes[1, :10] = torch.arange(10)
    initially, weights, out = (codes == MASKED).sum(-1), torch.arange(1, N + 1), []
    generator = [seeded(1), seeded(2)] if per_row else seeded(1)
    for step in range(sampler.steps):
        sampled, codes = sampler.step(step, logits + step, codes, initially, generator)
        out.append((int((sampled * weights).sum()), int(((codes == MASKED) * weights).sum())))
    return out


def test_default_sampler_is_bit_for_bit_the_one_before_the_options():
    # recorded from the sampler before the options were added
    assert fingerprints(MaskGITSampler(6), per_row=False) == [
        (30442, 3928), (29441, 3497), (31552, 2834), (28018, 2018), (29377, 1003), (29211, 64)]
    assert fingerprints(MaskGITSampler(6), per_row=True) == [
        (29619, 3988), (31222, 3540), (29460, 3045), (31422, 2069), (30334, 947), (30683, 56)]
    assert fingerprints(MaskGITSampler(5, "pow2", 2.0), per_row=True) == [
        (29619, 3950), (31566, 3473), (29479, 2684), (31056, 1427), (29886, 32)]


def test_default_options_and_a_whole_interval_change_nothing(sure_model):
    cond, uncond = prompts([[5, 6, 7], [9]])
    plain = generate(sure_model, cond, uncond, steps=5, generator=generators(2))
    explicit = generate(sure_model, cond, uncond, steps=5, generator=generators(2), unmask="schedule",
                        order="confidence", guidance_interval=None, confidence_threshold=0.5)
    whole = generate(sure_model, cond, uncond, steps=5, generator=generators(2), guidance_interval=(0, 1))
    assert torch.equal(plain, explicit) and torch.equal(plain, whole)


# -- guidance interval ----------------------------------------------------------------------------------


def full_image_logits(model, ids, codes):
    """Image-code logits of ``ids`` with its image replaced by ``codes``: the whole sequence recomputed."""
    layout = model.layout
    start, end = image_span(ids, layout)
    ids = ids.clone()
    ids[:, start:end] = codes_to_ids(codes, layout)
    logits = model(ids, attention_mask=omni_attention_mask(ids, layout))
    return logits[:, start:end, layout.image_offset : layout.image_offset + layout.codebook_size]


def test_guidance_interval_guides_only_inside_it(sure_model, monkeypatch):
    cond, uncond = prompts([[5, 6, 7], [9, 3]])
    steps, scale = 8, 1.75  # guided: steps 2..5, whose progress step / 8 lies in [0.25, 0.75)
    seen, rows_run = [], []
    calls = record_steps(monkeypatch)
    hidden_states = sure_model.hidden_states
    monkeypatch.setattr(sure_model, "hidden_states",
                        lambda ids, *a, **k: rows_run.append(ids.shape[0]) or hidden_states(ids, *a, **k))
    generate(sure_model, cond, uncond, steps=steps, guidance_scale=scale, generator=generators(2),
             guidance_interval=(0.25, 0.75), callback=lambda s, logits, _: seen.append(logits))
    assert rows_run == [4] + [2, 2, 4, 4, 4, 4, 2, 2]  # the text prefix of all rows, then each step
    for step, (logits, (codes, _)) in enumerate(zip(seen, calls)):
        conditional = full_image_logits(sure_model, cond, codes)
        guided_logits = guided(conditional, full_image_logits(sure_model, uncond, codes), scale)
        expected, other = (guided_logits, conditional) if 2 <= step < 6 else (conditional, guided_logits)
        torch.testing.assert_close(logits, expected, atol=1e-3, rtol=1e-4)  # logits of size ~100s
        assert (logits - other).abs().max() > 0.1


# -- adaptive unmasking -----------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [dict(unmask="confidence", confidence_threshold=0.9),
                                     dict(unmask="entropy", entropy_budget=5.0)])
def test_adaptive_unmasking_stops_early_with_every_position_committed(sure_model, monkeypatch, options):
    cond, uncond = prompts([[5, 6, 7], [9], [1, 2, 3, 4]])
    calls = record_steps(monkeypatch)
    out = generate(sure_model, cond, uncond, steps=12, generator=generators(3), **options)
    assert len(calls) < 12
    assert (calls[-1][1] != MASKED).all() and torch.equal(out, calls[-1][1])
    assert (calls[-2][1] == MASKED).any()  # it stopped on the first step that left nothing unknown


def peaked_logits(sure_positions, codebook=64):
    """(1, N, C): each position in ``sure_positions`` has one code of probability ~1, the rest are flat."""
    logits = torch.zeros(1, N, codebook)
    logits[0, sure_positions, 3] = 30.0
    return logits


def committed_after_first_step(sampler, logits):
    codes = all_masked(logits.shape[0])
    _, codes = sampler.step(0, logits, codes, (codes == MASKED).sum(-1), seeded())
    return codes != MASKED


def test_confidence_rule_commits_exactly_the_sure_tokens_when_they_outnumber_the_schedule():
    sure = [0, 5, 9, 10, 11, 30, 31, 40, 41, 42, 50, 63]
    sampler = MaskGITSampler(12, unmask="confidence", confidence_threshold=0.9)  # the schedule commits 1
    committed = committed_after_first_step(sampler, peaked_logits(sure))
    assert committed[0].nonzero().flatten().tolist() == sure
    # with 2 steps the schedule commits 64 - floor(64 cos(pi / 4)) = 19: the sure ones and 7 more
    committed = committed_after_first_step(MaskGITSampler(2, unmask="confidence", confidence_threshold=0.9),
                                           peaked_logits(sure))
    assert int(committed.sum()) == 19 and committed[0, sure].all()


def test_entropy_rule_commits_the_lowest_entropies_within_the_budget():
    logits = torch.zeros(1, N, 64)  # flat: ln 64 = 4.16 nats
    spread = {5: 2, 17: 3, 40: 4, 50: 5}  # position -> codes sharing its mass: ln 2, ln 3, ln 4, ln 5 nats
    for position, k in spread.items():
        logits[0, position, k:] = -1e4
    # ln 2 + ln 3 + ln 4 = 3.18 <= 3.5 < 3.18 + ln 5; the schedule alone would commit 1
    committed = committed_after_first_step(MaskGITSampler(12, unmask="entropy", entropy_budget=3.5), logits)
    assert committed[0].nonzero().flatten().tolist() == [5, 17, 40]


def test_adaptive_counts_are_per_row():
    logits = torch.cat([peaked_logits([1, 2, 3]), peaked_logits(list(range(20)))])
    committed = committed_after_first_step(MaskGITSampler(12, unmask="confidence", confidence_threshold=0.9), logits)
    assert committed.sum(-1).tolist() == [3, 20]


# -- Halton order ---------------------------------------------------------------------------------------


def halton_oracle(side):
    """Cells of a side x side grid in the order of the 2D Halton sequence (bases 2, 3; from point 1),
    each radical inverse spelled as the reversed digits of the index."""
    def radical_inverse(i, base):
        digits = numpy.base_repr(i, base)
        return int(digits[::-1], base) / base ** len(digits)

    order, i = [], 0
    while len(order) < side * side:
        i += 1
        cell = int(radical_inverse(i, 2) * side) * side + int(radical_inverse(i, 3) * side)
        if cell not in order:
            order.append(cell)
    return order


def commit_order(sampler, codes):
    """Positions in the order the sampler commits them (a list per step, the last filled by ``sampled``)."""
    initially, steps = (codes == MASKED).sum(-1), []
    for step in range(sampler.steps):
        logits = torch.randn(1, codes.shape[1], 16, generator=seeded(step))
        _, next_codes = sampler.step(step, logits, codes, initially, seeded(50 + step))
        steps.append(((codes == MASKED) & (next_codes != MASKED))[0].nonzero().flatten().tolist())
        codes = next_codes
    steps.append((codes == MASKED)[0].nonzero().flatten().tolist())
    return steps


def test_halton_order_commits_positions_in_the_halton_sequence():
    oracle = halton_oracle(8)
    assert oracle[:6] == [4 * 8 + 2, 2 * 8 + 5, 6 * 8 + 0, 1 * 8 + 3, 5 * 8 + 6, 3 * 8 + 1]  # (1/2, 1/3), ...
    steps = commit_order(MaskGITSampler(10, order="halton"), all_masked(1))
    flat = [p for committed in steps for p in committed]
    assert sorted(flat) == list(range(N))  # every position once
    done = 0
    for committed in steps:  # each step commits the next stretch of the Halton order
        assert sorted(committed) == sorted(oracle[done : done + len(committed)])
        done += len(committed)
    by_confidence = commit_order(MaskGITSampler(10), all_masked(1))
    assert [len(c) for c in steps] == [len(c) for c in by_confidence]  # the counts follow the schedule
    assert [sorted(c) for c in steps] != [sorted(c) for c in by_confidence]


def test_halton_order_keeps_known_positions_and_skips_them():
    codes = all_masked(1)
    known = torch.arange(0, N, 3)
    codes[0, known] = 7
    steps = commit_order(MaskGITSampler(6, order="halton"), codes)
    done, expected = 0, [p for p in halton_oracle(8) if p % 3 != 0]
    for committed in steps:
        assert sorted(committed) == sorted(expected[done : done + len(committed)])
        done += len(committed)
    assert done == len(expected)


def test_halton_order_needs_a_square_grid():
    with pytest.raises(ValueError, match=r"order='halton' needs a square grid.*got 60"):
        commit_order(MaskGITSampler(3, order="halton"), all_masked(1, 60))


# -- batches: a row's result does not depend on the others -------------------------------------------------


@pytest.mark.parametrize("options", [
    dict(unmask="confidence", confidence_threshold=0.9, guidance_interval=(0.0, 0.5)),
    dict(unmask="entropy", entropy_budget=4.0, guidance_interval=(0.3, 1.0)),
    dict(order="halton", guidance_interval=(0.2, 0.6)),
])
def test_a_guided_batch_of_three_equals_each_row_alone(sure_model, options):
    cond, uncond = prompts([[5, 6, 7], [9], [1, 2, 3, 4]])
    batch = generate(sure_model, cond, uncond, steps=8, generator=generators(3), **options)
    for i in range(3):
        alone = generate(sure_model, cond[i : i + 1], uncond[i : i + 1], steps=8, generator=[seeded(10 + i)],
                         **options)
        assert torch.equal(batch[i : i + 1], alone)
    assert (batch >= 0).all() and not torch.equal(batch[0], batch[1])


# -- bad values ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("options, message", [
    (dict(unmask="fast"), r"unmask must be one of \('schedule', 'confidence', 'entropy'\), got 'fast'"),
    (dict(unmask="confidence"), "unmask='confidence' needs confidence_threshold"),
    (dict(unmask="confidence", confidence_threshold=0),
     r"confidence_threshold must be None or a probability in \(0, 1\], got 0"),
    (dict(unmask="confidence", confidence_threshold=1.5), "confidence_threshold must be .* got 1.5"),
    (dict(unmask="confidence", confidence_threshold=float("nan")), "confidence_threshold must be .* got nan"),
    (dict(unmask="entropy"), "unmask='entropy' needs entropy_budget"),
    (dict(unmask="entropy", entropy_budget=-1), "entropy_budget must be >= 0, got -1"),
    (dict(order="random"), r"order must be one of \('confidence', 'halton'\), got 'random'"),
    (dict(guidance_interval=(0.5, 0.5)), r"guidance_interval must be None or \(lo, hi\).* got \(0.5, 0.5\)"),
    (dict(guidance_interval=(-0.1, 0.5)), "guidance_interval must be .* got"),
    (dict(guidance_interval=(0.2,)), "guidance_interval must be .* got"),
    (dict(guidance_interval="0,1"), "guidance_interval must be .* got '0,1'"),
    (dict(mode="released", unmask="confidence", confidence_threshold=0.9),
     "mode='released' .* no acceleration, got unmask='confidence'"),
    (dict(mode="released", order="halton"), "mode='released' .* got order='halton'"),
    (dict(mode="released", guidance_interval=(0, 0.5)), r"mode='released' .* got guidance_interval=\(0, 0.5\)"),
])
def test_bad_options_are_refused_before_any_forward_pass(sure_model, monkeypatch, options, message):
    cond, uncond = prompts([[5]])
    monkeypatch.setattr(sure_model, "hidden_states", lambda *a, **k: pytest.fail("the model ran"))
    with pytest.raises(ValueError, match=message):
        generate(sure_model, cond, uncond, steps=4, **options)


# -- generation_config.json ------------------------------------------------------------------------------


def test_the_config_carries_the_options_and_old_files_still_load(tmp_path):
    (tmp_path / FILENAME).write_text(json.dumps({"steps": 7, "guidance_scale": 2.0}))
    old = GenerationConfig.from_folder(tmp_path)
    assert (old.unmask, old.order, old.guidance_interval) == ("schedule", "confidence", None)
    config = GenerationConfig(unmask="entropy", entropy_budget=2.5, order="halton", guidance_interval=[0.1, 0.9])
    assert config.guidance_interval == (0.1, 0.9)
    config.save(tmp_path)
    assert json.loads((tmp_path / FILENAME).read_text())["guidance_interval"] == [0.1, 0.9]
    assert GenerationConfig.from_folder(tmp_path) == config


@pytest.mark.parametrize("values, message", [
    ({"unmask": "fast"}, "unmask must be one of"),
    ({"unmask": "confidence"}, "unmask='confidence' needs confidence_threshold"),
    ({"confidence_threshold": 2}, r"confidence_threshold must be null or a probability in \(0, 1\], got 2"),
    ({"entropy_budget": "lots"}, "entropy_budget must be null or a number of nats >= 0, got 'lots'"),
    ({"order": "zigzag"}, "order must be one of"),
    ({"guidance_interval": [0.9, 0.1]}, r"guidance_interval must be None or \(lo, hi\)"),
])
def test_bad_options_in_a_config_file_are_named(tmp_path, values, message):
    (tmp_path / FILENAME).write_text(json.dumps(values))
    with pytest.raises(ValueError, match=message) as error:
        GenerationConfig.from_folder(tmp_path)
    assert str(tmp_path / FILENAME) in str(error.value)


# -- draw="inverse_cdf": the distribution of torch.multinomial, from other random numbers ----------


def test_the_inverse_cdf_draw_samples_the_multinomial_distribution():
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(3, 2, 16) * 2, dim=-1)  # (B, N, C)
    draws = 20000
    counts = torch.zeros_like(probs)
    generator = torch.Generator().manual_seed(1)
    for _ in range(draws // 100):
        batch = probs.repeat(100, 1, 1)
        codes = _draw_codes_inverse_cdf(batch, generator).view(100, 3, 2)
        counts += torch.nn.functional.one_hot(codes, 16).sum(0).float()
    frequencies = counts / draws
    # within 5 standard errors of every probability; a shift by one code would be far outside
    tolerance = 5 * (probs * (1 - probs) / draws).sqrt() + 1e-3
    assert ((frequencies - probs).abs() <= tolerance).all()
    zero = torch.tensor([[[0.0, 1.0, 0.0, 0.0]]])
    assert (_draw_codes_inverse_cdf(zero.repeat(50, 1, 1), generator) == 1).all()  # never a code of probability 0


def test_the_draw_option_is_checked_and_refused_in_released_mode():
    with pytest.raises(ValueError, match="draw"):
        MaskGITSampler(8, draw="gumbel")
    with pytest.raises(ValueError, match="draw='inverse_cdf'"):
        MaskGITSampler(8, mode="released", draw="inverse_cdf")
    assert GenerationConfig(draw="inverse_cdf").accelerations()["draw"] == "inverse_cdf"
