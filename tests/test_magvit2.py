"""MAGVIT-v2 tokenizer: LFQ bit order, shapes, released-checkpoint loading, bad inputs."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os

import pytest
import torch

from showo.model.config import MagvitConfig, magvit_preset
from showo.model.magvit2 import AttnBlock, LookupFreeQuantizer, MagvitV2, _read_config

TINY = magvit_preset("tiny")
# What a caller passes to load the tiny shapes from a folder whose config.json names none.
TINY_OVERRIDES = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(TINY).items()}


def random_model(seed: int = 0) -> MagvitV2:
    """Tiny model with every parameter random (GroupNorm too), so loading bugs cannot hide."""
    torch.manual_seed(seed)
    model = MagvitV2(TINY)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return model.eval()


def released_quantizer_buffers(z: int) -> dict[str, torch.Tensor]:
    """The two LFQ buffers as the released checkpoint stores them, built independently."""
    # product() varies the last position fastest, so position 0 is the most significant bit.
    rows = list(itertools.product([-1.0, 1.0], repeat=z))
    return {
        "quantize.embedding": torch.tensor(rows),
        "quantize.power_vals": torch.tensor([2 ** (z - 1 - k) for k in range(z)]),
    }


def save_released_layout(model: MagvitV2, folder, buffers: dict | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    state = dict(model.state_dict())
    state.update(released_quantizer_buffers(model.config.z_channels) if buffers is None else buffers)
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps({"_class_name": "MAGVITv2", "_diffusers_version": "0.27.2"}))


def pixels(batch: int = 2, size: int = 32, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=g) * 2 - 1


# ---- lookup-free quantizer ------------------------------------------------------------------


@pytest.fixture(scope="module")
def lfq13() -> LookupFreeQuantizer:
    return LookupFreeQuantizer(13)


def codes_of(lfq: LookupFreeQuantizer, vector: list[float]) -> int:
    z = torch.tensor(vector).view(1, -1, 1, 1)
    return int(lfq.latents_to_codes(z).item())


def vector_of(lfq: LookupFreeQuantizer, code: int) -> list[float]:
    return lfq.codes_to_latents(torch.tensor([[[code]]])).flatten().tolist()


def test_lfq_bit_order(lfq13):
    assert vector_of(lfq13, 0) == [-1.0] * 13
    assert vector_of(lfq13, 2**12) == [1.0] + [-1.0] * 12
    assert vector_of(lfq13, 1) == [-1.0] * 12 + [1.0]
    assert codes_of(lfq13, [-1.0] * 13) == 0
    assert codes_of(lfq13, [0.7] + [-0.3] * 11 + [2.0]) == 2**12 + 1
    # Exactly zero is "not > 0", hence the -1 bit.
    assert codes_of(lfq13, [0.0] * 13) == 0


def test_lfq_round_trip_all_codes(lfq13):
    codes = torch.randperm(8192).view(1, 64, 128)
    latents = lfq13.codes_to_latents(codes)  # (1, 13, 64, 128)
    assert latents.shape == (1, 13, 64, 128)
    assert set(latents.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(lfq13.latents_to_codes(latents), codes)


def test_lfq_buffers_match_released_layout(lfq13):
    released = released_quantizer_buffers(13)
    assert torch.equal(lfq13.embedding, released["quantize.embedding"])
    assert torch.equal(lfq13.power_vals, released["quantize.power_vals"])
    assert dict(lfq13.state_dict()) == {}  # non-persistent: never written to our checkpoints


def test_lfq_straight_through_and_losses():
    lfq = LookupFreeQuantizer(4).train()
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    q, _ = lfq(z)
    assert torch.equal(q.detach(), torch.where(z > 0, 1.0, -1.0))
    q.sum().backward()
    assert torch.equal(z.grad, torch.ones_like(z))  # the sign has no gradient; ST passes 1
    # Every token is confident, yet the batch uses both signs of every channel equally:
    # the entropy loss reaches its minimum, -0.1 * 4 * ln 2.
    confident = torch.cat([torch.full((1, 4, 3, 3), 50.0), torch.full((1, 4, 3, 3), -50.0)])
    losses = lfq.losses(confident, torch.sign(confident))
    assert losses["entropy_loss"].item() == pytest.approx(-0.1 * 4 * math.log(2), abs=1e-5)
    zeros = torch.zeros(2, 4, 3, 3)
    losses = lfq.losses(zeros, -torch.ones_like(zeros))  # every token maximally unsure
    assert losses["entropy_loss"].item() == pytest.approx(0.0, abs=1e-6)
    assert losses["commitment_loss"].item() == pytest.approx(0.1 * (1 + 0.25))


# ---- building blocks ------------------------------------------------------------------------


def test_attention_matches_naive_softmax():
    torch.manual_seed(0)
    block = AttnBlock(32, 32).eval()
    x = torch.randn(2, 32, 3, 5)
    y = block.norm(x)
    q, k, v = (m(y).flatten(2) for m in (block.q, block.k, block.v))  # (B, C, HW)
    weights = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(32), dim=-1)  # (B, HW, HW)
    naive = x + block.proj_out((v @ weights.transpose(1, 2)).view_as(x))
    torch.testing.assert_close(block(x), naive, atol=1e-5, rtol=1e-5)


def test_released_architecture_keys_and_shapes():
    """The only test that builds the full tokenizer, on the meta device: shapes only."""
    with torch.device("meta"):
        model = MagvitV2()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = {
        "encoder.conv_in.weight": (128, 3, 3, 3),
        "encoder.down.0.block.3.conv2.weight": (128, 128, 3, 3),
        "encoder.down.0.downsample.conv.weight": (128, 128, 3, 3),
        "encoder.down.1.block.0.nin_shortcut.weight": (256, 128, 1, 1),
        "encoder.down.3.block.0.nin_shortcut.weight": (512, 256, 1, 1),
        "encoder.down.4.block.3.norm2.bias": (512,),
        "encoder.mid.attn_1.proj_out.weight": (512, 512, 1, 1),
        "encoder.norm_out.weight": (512,),
        "encoder.conv_out.weight": (13, 512, 3, 3),
        "encoder.quant_conv.weight": (13, 13, 1, 1),
        "decoder.post_quant_conv.weight": (13, 13, 1, 1),
        "decoder.conv_in.weight": (512, 13, 3, 3),
        "decoder.mid.block_2.conv1.weight": (512, 512, 3, 3),
        "decoder.up.4.block.2.conv1.weight": (512, 512, 3, 3),
        "decoder.up.4.upsample.conv.weight": (512, 512, 3, 3),
        "decoder.up.3.block.0.nin_shortcut.weight": (256, 512, 1, 1),
        "decoder.up.1.block.0.nin_shortcut.weight": (128, 256, 1, 1),
        "decoder.up.0.block.3.conv2.weight": (128, 128, 3, 3),
        "decoder.conv_out.weight": (3, 128, 3, 3),
    }
    for key, shape in expected.items():
        assert shapes.get(key) == shape, key
    absent = ["encoder.down.4.downsample.conv.weight", "decoder.up.0.upsample.conv.weight",
              "encoder.down.4.block.0.nin_shortcut.weight", "decoder.up.4.block.0.nin_shortcut.weight",
              "encoder.down.0.block.4.conv1.weight", "decoder.up.2.block.3.conv1.weight"]
    assert not set(absent) & set(shapes)
    assert not any(k.startswith("quantize.") for k in shapes)
    assert sum(math.prod(s) for s in shapes.values()) == expected_param_count(MagvitConfig())


def expected_param_count(c: MagvitConfig) -> int:
    """Parameters of the released layout, counted by hand from the architecture."""
    conv = lambda i, o, k: i * o * k * k + o
    norm = lambda ch: 2 * ch
    resnet = lambda i, o: norm(i) + conv(i, o, 3) + norm(o) + conv(o, o, 3) + (conv(i, o, 1) if i != o else 0)
    mid = lambda ch: 2 * resnet(ch, ch) + norm(ch) + 4 * conv(ch, ch, 1)
    n, z, ch = len(c.encoder_channel_mult), c.z_channels, c.channels
    total, width = conv(3, ch, 3), ch
    for level, (m, blocks) in enumerate(zip(c.encoder_channel_mult, c.encoder_blocks)):
        total += resnet(width, ch * m) + (blocks - 1) * resnet(ch * m, ch * m)
        width = ch * m
        total += conv(width, width, 3) if level != n - 1 else 0
    total += mid(width) + norm(width) + conv(width, z, 3) + conv(z, z, 1)
    width = ch * c.decoder_channel_mult[-1]
    total += conv(z, z, 1) + conv(z, width, 3) + mid(width)
    for level in reversed(range(n)):
        out = ch * c.decoder_channel_mult[level]
        total += resnet(width, out) + (c.decoder_blocks[level] - 1) * resnet(out, out)
        width = out
        total += conv(width, width, 3) if level != 0 else 0
    return total + norm(width) + conv(width, 3, 3)


# ---- encode / decode ------------------------------------------------------------------------


def test_encode_decode_shapes_and_consistency():
    model = random_model()
    x = pixels(batch=2, size=32)
    codes = model.encode(x)
    assert codes.shape == (2, 16) and codes.dtype == torch.long
    assert codes.min() >= 0 and codes.max() < TINY.codebook_size
    # Codes are the signs of the encoder's latents, flattened row-major.
    latents = model.encode_latents(x)  # (2, 10, 4, 4)
    bits = (latents > 0).long()
    manual = sum(bits[:, k] * 2 ** (TINY.z_channels - 1 - k) for k in range(TINY.z_channels)).flatten(1)
    assert torch.equal(codes, manual)
    assert model.decode(codes).shape == (2, 3, 32, 32)
    q = model.codes_to_latents(codes)
    assert torch.equal(model.quantize.latents_to_codes(q).flatten(1), codes)
    # A non-square image: 32 x 48 gives a 4 x 6 grid, decodable with grid=(4, 6).
    wide = model.encode(pixels(batch=1, size=48)[..., :32, :])
    assert wide.shape == (1, 24)
    assert model.decode(wide, grid=(4, 6)).shape == (1, 3, 32, 48)


def test_decode_depends_on_code_positions():
    model = random_model()
    codes = torch.randint(0, TINY.codebook_size, (1, 16))
    out = model.decode(codes)
    flipped = codes.clone()
    flipped[0, 0] = (codes[0, 0] + 1) % TINY.codebook_size
    diff = (model.decode(flipped) - out).abs().sum(dim=1)[0]  # (32, 32)
    # The top-left token changed; mid-block attention spreads it, but its own patch moves most.
    assert diff[:8, :8].mean() > diff[24:, 24:].mean()


def test_training_forward_returns_losses_and_gradients():
    model = random_model().train()
    recon, losses = model(pixels(batch=2, size=32))
    assert recon.shape == (2, 3, 32, 32)
    assert set(losses) == {"commitment_loss", "entropy_loss"}
    ((recon - pixels()) ** 2).mean().backward()
    # Straight-through: the reconstruction loss reaches the encoder through the quantizer.
    assert model.encoder.conv_in.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.zeros(1, 1, 32, 32), r"\(B, 3, H, W\).*\(1, 1, 32, 32\)"),
        (torch.zeros(3, 32, 32), r"\(B, 3, H, W\).*\(3, 32, 32\)"),
        (torch.zeros(1, 3, 30, 32), r"multiples of the downsample factor 8, got 30x32"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), r"float pixels"),
    ],
)
def test_encode_rejects_bad_pixels(bad, match):
    with pytest.raises(ValueError, match=match):
        random_model().encode(bad)


@pytest.mark.parametrize(
    "codes, grid, match",
    [
        (torch.tensor([[0] * 15 + [1024]]), None, r"\[0, 1024\).*max 1024"),
        (torch.tensor([[-1] + [0] * 15]), None, r"min -1"),
        (torch.zeros(1, 15, dtype=torch.long), None, r"square grid"),
        (torch.zeros(1, 16, dtype=torch.long), (4, 5), r"needs 20 codes.*got 16"),
        (torch.zeros(1, 16), None, r"integer codes"),
    ],
)
def test_decode_rejects_bad_codes(codes, grid, match):
    with pytest.raises(ValueError, match=match):
        random_model().decode(codes, grid=grid)


# ---- checkpoints ----------------------------------------------------------------------------


def test_loads_released_layout_exactly(tmp_path):
    model = random_model(seed=3)
    save_released_layout(model, tmp_path / "magvitv2")
    loaded = MagvitV2.from_pretrained(tmp_path / "magvitv2", **TINY_OVERRIDES)
    assert not loaded.training and loaded.config == TINY
    x = pixels(batch=2, size=32)
    codes = model.encode(x)
    assert torch.equal(loaded.encode(x), codes)
    assert torch.equal(loaded.decode(codes), model.decode(codes))
    # A weight file path works as well as its folder.
    direct = MagvitV2.from_pretrained(tmp_path / "magvitv2" / "pytorch_model.bin", **TINY_OVERRIDES)
    assert torch.equal(direct.encode(x), codes)


def test_config_source(tmp_path):
    """No config.json or the released diffusers-style one: the released shapes (defaults)."""
    assert _read_config(tmp_path) == MagvitConfig()
    save_released_layout(random_model(), tmp_path)
    assert _read_config(tmp_path) == MagvitConfig()
    random_model().save_pretrained(tmp_path / "ours")
    assert _read_config(tmp_path / "ours") == TINY


def test_wrong_z_channels_is_listed_with_the_other_keys(tmp_path):
    save_released_layout(random_model(), tmp_path / "m")
    with pytest.raises(ValueError) as err:
        MagvitV2.from_pretrained(tmp_path / "m", **{**TINY_OVERRIDES, "z_channels": 11})
    message = str(err.value)
    assert "quantize.embedding: expected (2048, 11), got (1024, 10)" in message
    assert "encoder.quant_conv.weight: expected (11, 11, 1, 1)" in message


def test_save_pretrained_round_trip(tmp_path):
    model = random_model(seed=4)
    model.save_pretrained(tmp_path / "ours")
    saved = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert saved["format"] == "showo-magvit2" and saved["channels"] == 32
    loaded = MagvitV2.from_pretrained(tmp_path / "ours")  # shapes come from config.json
    assert loaded.config == TINY
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    model.save_pretrained(tmp_path / "ours", overwrite=True)  # replacing a showo folder, when asked
    assert sorted(p.name for p in (tmp_path / "ours").iterdir()) == ["config.json", "model.safetensors"]


def test_unknown_override_is_named(tmp_path):
    random_model().save_pretrained(tmp_path / "m")
    with pytest.raises(ValueError, match="z_chanels"):
        MagvitV2.from_pretrained(tmp_path / "m", z_chanels=13)


def test_folder_without_weights(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="empty"):
        MagvitV2.from_pretrained(tmp_path / "empty")


def test_key_problems_are_all_listed(tmp_path):
    state = dict(random_model().state_dict())
    del state["decoder.conv_out.bias"]
    state["encoder.extra.weight"] = torch.zeros(3)
    state["encoder.conv_in.weight"] = torch.zeros(32, 3, 1, 1)
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError) as err:
        MagvitV2.from_pretrained(tmp_path, **TINY_OVERRIDES)
    message = str(err.value)
    for key in ("decoder.conv_out.bias", "encoder.extra.weight", "encoder.conv_in.weight"):
        assert key in message


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('x')",))

    state = dict(random_model().state_dict())
    state["encoder.conv_in.weight"] = Payload()
    torch.save(state, tmp_path / "pytorch_model.bin")
    # The payload is real: a plain unpickle would run it.
    torch.load(tmp_path / "pytorch_model.bin", weights_only=False)
    assert marker.exists()
    os.remove(marker)
    with pytest.raises(ValueError, match="refused to unpickle"):
        MagvitV2.from_pretrained(tmp_path, **TINY_OVERRIDES)
    assert not marker.exists()


def test_corrupt_safetensors(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(os.urandom(4096))
    with pytest.raises(ValueError, match="safetensors"):
        MagvitV2.from_pretrained(tmp_path, **TINY_OVERRIDES)


def test_wrong_bit_order_in_checkpoint(tmp_path):
    buffers = released_quantizer_buffers(TINY.z_channels)
    buffers["quantize.embedding"] = buffers["quantize.embedding"].flip(-1)  # LSB-first order
    save_released_layout(random_model(), tmp_path / "m", buffers)
    with pytest.raises(ValueError, match="bit order"):
        MagvitV2.from_pretrained(tmp_path / "m", **TINY_OVERRIDES)


def test_showo_config_with_unknown_field(tmp_path):
    random_model().save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "depth": 3}))
    with pytest.raises(ValueError, match=r"config\.json.*depth"):
        MagvitV2.from_pretrained(tmp_path / "m")


def test_convert_folder_turns_released_magvit_into_ours(tmp_path):
    from showo.model.convert import convert_folder

    model = random_model(seed=5)
    save_released_layout(model, tmp_path / "released")
    assert convert_folder(tmp_path / "released", tmp_path / "ours", **TINY_OVERRIDES) == "MAGVIT-v2"
    converted = MagvitV2.from_pretrained(tmp_path / "ours")  # no overrides: our config.json says the shapes
    x = pixels(batch=1, size=32)
    assert converted.config == TINY and torch.equal(converted.encode(x), model.encode(x))
