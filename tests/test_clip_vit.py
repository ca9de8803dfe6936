"""The CLIP-ViT variant on tiny random models: features, prompt layout, mask, generation."""

import dataclasses
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from showo import ShowoModel, TextTokenizer, showo_preset
from showo.generation.clip_answer import SYSTEM_PROMPT, answer_with_clip, clip_understanding_inputs
from showo.generation.generate_text import generate_text
from showo.model.clip_vit import ClipVisionEncoder

transformers = pytest.importorskip("transformers")

QUESTIONS = ["what is red?", "is there a small yellow star on the left of the blue square?"]
CORPUS = [SYSTEM_PROMPT, "USER: what is red? ASSISTANT: a red circle", "a small yellow star on the left"]


@pytest.fixture(scope="module")
def vision_model():
    config = transformers.CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        image_size=28, patch_size=14,
    )
    torch.manual_seed(0)
    return transformers.CLIPVisionModel(config).eval()


@pytest.fixture(scope="module")
def vision(vision_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    vision_model.save_pretrained(folder)
    return ClipVisionEncoder.from_folder(folder)


@pytest.fixture(scope="module")
def tokenizer():
    return TextTokenizer.train_bpe(CORPUS * 10, vocab_size=300)


@pytest.fixture(scope="module")
def model(tokenizer):
    config = dataclasses.replace(
        showo_preset("tiny"), clip_vit=True, clip_hidden_size=32,
        text_vocab_size=tokenizer.text_vocab_size, bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id,
    )
    torch.manual_seed(0)
    model = ShowoModel(config).eval()
    with torch.no_grad():  # larger weights so positions and masks visibly change the answers
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.copy_(0.2 * torch.randn_like(p))
        model.lm_head.bias[config.text_vocab_size :] = -1e4  # answers are text, so they decode to strings
        model.lm_head.bias[config.eos_id] = -1e4  # and run to max_new_tokens
    return model


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in ((45, 31), (30, 57))]


def naive_inputs(model, tokenizer, features, question):
    """One unpadded prompt built by concatenation, and its mask built cell by cell."""
    layout = model.layout
    head = [layout.mmu_id, *tokenizer.encode(SYSTEM_PROMPT), layout.soi_id]
    tail = [layout.eoi_id, *tokenizer.encode("USER: " + question + " ASSISTANT:")]
    embed = lambda ids: model.embed(torch.tensor([ids]))
    embeds = torch.cat([embed(head), model.mm_projector(features[None]), embed(tail)], dim=1)
    prefix = len(head) + features.shape[0]
    return embeds, naive_mask(embeds.shape[1], prefix)


def naive_mask(length, prefix):
    mask = torch.zeros(1, 1, length, length, dtype=torch.bool)
    for i in range(length):
        for j in range(length):
            mask[0, 0, i, j] = j <= i or j < prefix
    return mask


def test_features_are_penultimate_patch_states(vision, vision_model, images):
    features = vision.features(images)
    assert features.shape == (2, 4, 32)
    pixels = vision.preprocess(images)
    with torch.no_grad():
        direct = vision_model(pixel_values=pixels, output_hidden_states=True).hidden_states[-2][:, 1:]
    torch.testing.assert_close(features, direct, rtol=0, atol=0)
    torch.testing.assert_close(vision.features(pixels), features, rtol=0, atol=0)
    with pytest.raises(ValueError, match="pixel values of shape"):
        vision.features(torch.zeros(1, 3, 32, 32))


def test_preprocessing_matches_clip_image_processor(vision, images):
    processor_class = getattr(transformers, "CLIPImageProcessorPil", None)
    if processor_class is None:
        pytest.skip("this transformers has no PIL CLIP image processor")
    processor = processor_class(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    expected = processor(images=images, return_tensors="pt").pixel_values
    torch.testing.assert_close(vision.preprocess(images), expected, rtol=0, atol=1e-5)


def test_embedding_layout(model, tokenizer):
    layout = model.layout
    features = torch.randn(1, 4, 32)
    system = tokenizer.encode(SYSTEM_PROMPT)
    text = tokenizer.encode("USER: " + QUESTIONS[0] + " ASSISTANT:")
    with torch.no_grad():
        embeds, mask = clip_understanding_inputs(model, tokenizer, features, QUESTIONS[:1])
        s = len(system)
        assert embeds.shape == (1, 1 + s + 1 + 4 + 1 + len(text), 64)
        ids = torch.tensor([[layout.mmu_id, *system, layout.soi_id]])
        torch.testing.assert_close(embeds[:, : s + 2], model.embed(ids))
        torch.testing.assert_close(embeds[:, s + 2 : s + 6], model.mm_projector(features))
        torch.testing.assert_close(embeds[:, s + 6 :], model.embed(torch.tensor([[layout.eoi_id, *text]])))
    assert torch.equal(mask, naive_mask(embeds.shape[1], s + 6))


def test_padded_mask(model, tokenizer):
    features = torch.randn(2, 4, 32)
    with torch.no_grad():
        embeds, mask = clip_understanding_inputs(model, tokenizer, features, QUESTIONS)
        pad = model.embed(torch.tensor([model.layout.pad_id]))[0]
    texts = [tokenizer.encode("USER: " + q + " ASSISTANT:") for q in QUESTIONS]
    long_length = embeds.shape[1]
    p = len(texts[1]) - len(texts[0])
    short_length = long_length - p
    assert p > 0 and torch.equal(embeds[0, :p], pad.expand(p, -1))
    prefix = 1 + len(tokenizer.encode(SYSTEM_PROMPT)) + 1 + 4
    expected = torch.eye(long_length, dtype=torch.bool)[None, None].repeat(2, 1, 1, 1)
    expected[0, :, p:, p:] = naive_mask(short_length, prefix)[0]
    expected[1] = naive_mask(long_length, prefix)[0]
    assert torch.equal(mask, expected)


def test_forward_matches_naive_recomputation(model, tokenizer):
    features = torch.randn(2, 4, 32)
    with torch.no_grad():
        embeds, mask = clip_understanding_inputs(model, tokenizer, features, QUESTIONS)
        length = embeds.shape[1]
        start = (~mask[:, 0, -1]).sum(1)  # (B,) pad count: the last row sees every real column
        positions = (torch.arange(length)[None] - start[:, None]).clamp(min=0)
        logits = model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions)[:, -1]
        for i, question in enumerate(QUESTIONS):
            alone_embeds, alone_mask = naive_inputs(model, tokenizer, features[i], question)
            alone = model(inputs_embeds=alone_embeds, attention_mask=alone_mask)[:, -1]
            torch.testing.assert_close(logits[i : i + 1], alone, rtol=1e-5, atol=1e-5)


def naive_greedy(model, embeds, mask, steps):
    """Recompute the whole sequence for every new token."""
    tokens = []
    for _ in range(steps):
        length = embeds.shape[1]
        full = torch.ones(1, 1, length, length, dtype=torch.bool).tril()
        full[..., : mask.shape[-2], : mask.shape[-1]] = mask
        token = model(inputs_embeds=embeds, attention_mask=full)[:, -1].argmax(-1)  # (1,)
        tokens.append(int(token))
        embeds = torch.cat([embeds, model.embed(token[:, None])], dim=1)
    return tokens


def test_generate_matches_naive_loop(model, tokenizer):
    features = torch.randn(1, 4, 32)
    with torch.no_grad():
        embeds, mask = clip_understanding_inputs(model, tokenizer, features, QUESTIONS[:1])
        cached = generate_text(model, max_new_tokens=6, temperature=0, inputs_embeds=embeds, prefill_mask=mask)
        naive = naive_greedy(model, embeds, mask, 6)
    assert cached[0].tolist() == naive


def test_answers_equal_alone_and_naive(model, tokenizer, vision, images):
    questions = [QUESTIONS[0], QUESTIONS[1], QUESTIONS[0]]
    batch = answer_with_clip(model, tokenizer, vision, images + images[:1], questions, max_new_tokens=5, temperature=0)
    alone = [
        answer_with_clip(model, tokenizer, vision, [image], [q], max_new_tokens=5, temperature=0)[0]
        for image, q in zip(images + images[:1], questions)
    ]
    assert batch == alone and batch[0] == batch[2] and batch[0] != batch[1]
    features = vision.features(images)
    with torch.no_grad():
        for i, question in enumerate(QUESTIONS):
            ids = naive_greedy(model, *naive_inputs(model, tokenizer, features[i], question), 5)
            assert batch[i] == tokenizer.decode(ids) != ""


def test_errors(model, tokenizer, monkeypatch, tmp_path):
    plain = ShowoModel(dataclasses.replace(model.config, clip_vit=False))
    with pytest.raises(ValueError, match="no mm_projector: not the CLIP-ViT variant"):
        clip_understanding_inputs(plain, tokenizer, torch.randn(1, 4, 32), ["q"])
    with pytest.raises(ValueError, match=r"width 48 .* clip_hidden_size=32"):
        clip_understanding_inputs(model, tokenizer, torch.randn(1, 4, 48), ["q"])
    with pytest.raises(ValueError, match="one question per image"):
        clip_understanding_inputs(model, tokenizer, torch.randn(2, 4, 32), ["q"])
    with pytest.raises(FileNotFoundError, match=r"no CLIP config\.json"):
        ClipVisionEncoder.from_folder(tmp_path / "missing")
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r'pip install "showo\[clip\]"'):
        ClipVisionEncoder.from_folder(tmp_path)
