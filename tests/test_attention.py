"""Omni-attention masks against hand-written expectations and a per-element reference."""

import torch

from showo import TokenLayout, omni_attention_mask

# text 0..9 (BOS = EOS = 0), [PAD]=10, <soi>=11, <eoi>=12, <t2i>=15, <mmu>=16, <lvg>=19,
# image codes 20..23, [MASK]=24
L = TokenLayout(text_vocab_size=10, codebook_size=4, bos_id=0, eos_id=0)
PAD, SOI, EOI, T2I, MMU, LVG, MASK = 10, 11, 12, 15, 16, 19, 24


def grid(*rows: str) -> torch.Tensor:
    return torch.tensor([[c == "1" for c in r.replace(" ", "")] for r in rows])


def mask_of(ids: list[int]) -> torch.Tensor:
    return omni_attention_mask(torch.tensor([ids]), L)[0, 0]


def test_layout_ids_used_here():
    assert (L.pad_id, L.soi_id, L.eoi_id, L.t2i_id, L.mmu_id, L.lvg_id, L.mask_id) == (
        PAD, SOI, EOI, T2I, MMU, LVG, MASK)


def test_t2i_padding_excluded_and_image_bidirectional():
    ids = [PAD, PAD, T2I, 0, 5, 0, SOI, 20, MASK, EOI]
    expected = grid(
        "1000000000",  # pad rows stay causal among themselves
        "1100000000",
        "0010000000",  # <t2i>: never sees the padding
        "0011000000",
        "0011100000",
        "0011110000",
        "0011111111",  # <soi> .. <eoi>: all text (no pad) + the whole image
        "0011111111",
        "0011111111",
        "0011111111",
    )
    assert torch.equal(mask_of(ids), expected)


def test_understanding_prefix_fully_visible():
    ids = [MMU, SOI, 20, 21, EOI, 0, 3, 4]
    expected = grid(
        "11111000",
        "11111000",
        "11111000",
        "11111000",
        "11111000",
        "11111100",
        "11111110",
        "11111111",
    )
    assert torch.equal(mask_of(ids), expected)


def test_left_padded_understanding_ignores_padding():
    ids = [PAD, PAD, MMU, SOI, 20, EOI, 0, 3]
    m = mask_of(ids)
    assert not m[2:, :2].any(), "no real token may attend to [PAD]"
    assert m[2:, 2:6].all(), "the <mmu> <soi> image <eoi> prefix is visible to every real row"
    assert torch.equal(m[6:, 6:], grid("10", "11"))


def test_pure_text_is_causal():
    ids = [0, 3, 4, 5, 0, PAD, PAD]
    assert torch.equal(mask_of(ids), torch.ones(7, 7, dtype=torch.bool).tril())


def test_several_image_segments():
    ids = [LVG, 0, 3, 0, SOI, 20, EOI, 0, 4, 0, SOI, 21, 22, EOI]
    m = mask_of(ids)
    expected = torch.ones(14, 14, dtype=torch.bool).tril()
    expected[4:7, 4:7] = True
    expected[10:14, 10:14] = True
    assert torch.equal(m, expected)
    assert not m[4:7, 7:].any(), "the first image does not see the text or image after it"


def test_open_image_segment_runs_to_end():
    ids = [LVG, 0, 3, 0, SOI, MASK, MASK]
    m = mask_of(ids)
    assert m[4:, 4:].all() and not m[:4, 4:].any()


def _reference(ids: list[int]) -> torch.Tensor:
    """Element by element, straight from the paper's omni-attention rules."""
    n = len(ids)
    seg, current, depth = [0] * n, 0, 0
    for i, t in enumerate(ids):
        if t == SOI:
            current, depth = current + 1, 1
        seg[i] = current if depth else 0
        if t == EOI:
            depth = 0
    real = [t for t in ids if t != PAD]
    eoi = ids.index(EOI) if EOI in ids else None
    prefix = eoi if (real and real[0] == MMU and eoi is not None) else -1
    m = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        for j in range(n):
            ok = j <= i or (seg[i] and seg[i] == seg[j]) or j <= prefix
            if ids[j] == PAD and ids[i] != PAD:
                ok = False
            m[i, j] = ok
    return m


def test_batch_matches_reference_on_random_sequences():
    g = torch.Generator().manual_seed(0)
    batch = []
    for _ in range(24):
        kind = torch.randint(0, 3, (1,), generator=g).item()
        text = torch.randint(1, 10, (3,), generator=g).tolist()
        img = (torch.randint(20, 25, (4,), generator=g)).tolist()
        pads = [PAD] * torch.randint(0, 4, (1,), generator=g).item()
        if kind == 0:
            seq = pads + [T2I, 0] + text + [0, SOI] + img + [EOI]
        elif kind == 1:
            seq = pads + [MMU, SOI] + img + [EOI, 0] + text
        else:
            seq = [LVG, 0] + text[:1] + [0, SOI] + img[:2] + [EOI, 0] + text + pads
        batch.append(seq[:14] + [PAD] * (14 - len(seq[:14])) if kind == 2 else ([PAD] * (14 - len(seq)) + seq))
    ids = torch.tensor(batch)
    got = omni_attention_mask(ids, L)
    assert got.shape == (24, 1, 14, 14) and got.dtype == torch.bool
    for b, seq in enumerate(batch):
        assert torch.equal(got[b, 0], _reference(seq)), f"row {b}: {seq}"
