"""Token layout numbers for phi-1.5 and the text tokenizer (phi-style and self-trained BPE)."""

import json

import pytest
import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

from showo import SPECIAL_TOKENS, TextTokenizer, TokenLayout, showo_preset

PHI = TokenLayout(text_vocab_size=50295, codebook_size=8192, bos_id=50256, eos_id=50256)


def test_phi_1_5_layout_numbers():
    assert PHI.vocab_size == 58498
    assert PHI.mask_id == 58497
    assert PHI.image_offset == 50305
    assert [PHI.special_id(t) for t in SPECIAL_TOKENS] == list(range(50295, 50305))
    assert (PHI.pad_id, PHI.soi_id, PHI.eoi_id, PHI.t2i_id, PHI.mmu_id, PHI.lvg_id) == (
        50295, 50296, 50297, 50300, 50301, 50304)
    assert PHI.sot_id == PHI.eot_id == 50256
    assert showo_preset("show-o-256").layout == PHI
    assert showo_preset("show-o-256").num_image_tokens == 256
    assert showo_preset("show-o-512").num_image_tokens == 1024


def test_image_codes_round_trip_and_range_checks():
    codes = torch.tensor([[0, 1, 8191]])
    ids = PHI.image_ids(codes)
    assert ids.tolist() == [[50305, 50306, 58496]]
    assert torch.equal(PHI.image_codes(ids), codes)
    with pytest.raises(ValueError, match=r"\[0, 8192\)"):
        PHI.image_ids(torch.tensor([8192]))
    with pytest.raises(ValueError, match="image-code ids"):
        PHI.image_codes(torch.tensor([PHI.mask_id]))
    assert PHI.is_image_code(torch.tensor([50304, 50305, 58496, 58497])).tolist() == [False, True, True, False]


def test_bad_layouts_are_refused():
    with pytest.raises(ValueError, match="bos_id=600"):
        TokenLayout(text_vocab_size=512, codebook_size=16, bos_id=600, eos_id=0)
    with pytest.raises(ValueError, match="unknown special token"):
        PHI.special_id("<|nope|>")


def _phi_like_tokenizer_folder(tmp_path):
    """A GPT-2/phi-1.5 shaped tokenizer.json: 50257 BPE ids (<|endoftext|> = 50256) plus
    38 added whitespace tokens up to 50294, like microsoft/phi-1_5 ships."""
    vocab = {f"t{i}": i for i in range(50256)}
    vocab["<|endoftext|>"] = 50256
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True)])
    tok.add_tokens([" " * n for n in range(2, 40)])
    tok.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"bos_token": "<|endoftext|>", "eos_token": {"content": "<|endoftext|>"}}))
    return tmp_path


def test_phi_shaped_tokenizer_gets_the_released_ids(tmp_path):
    tok = TextTokenizer.from_folder(_phi_like_tokenizer_folder(tmp_path))
    assert tok.text_vocab_size == 50295
    assert tok.bos_id == tok.eos_id == 50256
    assert [tok.tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] == list(range(50295, 50305))
    assert tok.layout(8192) == PHI


def test_trained_bpe_round_trips_and_saves(tmp_path):
    corpus = ["a red circle left of a blue square", "two green triangles", "what colour is the circle?"] * 20
    tok = TextTokenizer.train_bpe(corpus, vocab_size=300)
    layout = tok.layout(codebook_size=64)
    assert layout.pad_id == tok.text_vocab_size and tok.text_vocab_size <= 300
    assert [tok.tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] == list(
        range(tok.text_vocab_size, tok.text_vocab_size + 10))
    ids = tok.encode("a red circle")
    assert all(0 <= i < tok.text_vocab_size for i in ids)
    assert tok.decode(ids) == "a red circle"
    assert tok.decode([layout.soi_id, *ids, layout.image_offset + 3, layout.mask_id]) == "a red circle"
    tok.save(tmp_path / "tok")
    again = TextTokenizer.from_folder(tmp_path / "tok")
    assert again.text_vocab_size == tok.text_vocab_size and again.encode("two green") == tok.encode("two green")
    assert again.encode_batch(["a", "two green"]) == [tok.encode("a"), tok.encode("two green")]


def test_tokenizer_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"tokenizer\.json"):
        TextTokenizer.from_folder(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a valid tokenizers file"):
        TextTokenizer.from_folder(tmp_path)
    tok = Tokenizer(models.BPE(vocab={"a": 0, "b": 1}, merges=[]))
    with pytest.raises(ValueError, match="no bos_token"):
        TextTokenizer(tok)
