"""Small models and released-layout checkpoints that the tests build themselves."""

import json
from pathlib import Path

import pytest
import torch

from showo import ShowoModel, TextTokenizer, showo_preset, t2i_prompt
from showo.data.world_source import world_texts
from showo.training.metrics import read_metrics

TINY = showo_preset("tiny")


@pytest.fixture(autouse=True)
def ci_machine_cpu(monkeypatch):
    """Every test sees the CI machine's CPU, one with AVX512-BF16, so ``dtype="auto"`` (the default
    of ``from_pretrained`` and the CLI) picks bf16 on any machine the suite runs on; tests of the
    probe itself replace these answers."""
    from showo.model import precision

    monkeypatch.setattr(precision, "_proc_cpuinfo_flags", lambda: {"avx512_bf16"})
    monkeypatch.setattr(precision, "_torch_cpu_flags", lambda: set())


def tiny_t2i_prompts(texts, image=None):
    """(cond, uncond) t2i sequences of the tiny preset for token lists ``texts``; the image all
    [MASK] unless given."""
    layout = TINY.layout
    image = torch.full((len(texts), TINY.num_image_tokens), layout.mask_id) if image is None else image
    cond = t2i_prompt(texts, image, layout, TINY.max_text_length)
    uncond = t2i_prompt([[] for _ in texts], image, layout, TINY.max_text_length)
    return cond, uncond


def tiny_hf_phi(seed: int = 0):
    """transformers' PhiForCausalLM with QK-Norm, tiny shapes, every weight randomised."""
    from transformers import PhiConfig as HFPhiConfig
    from transformers import PhiForCausalLM

    llm = TINY.llm
    config = HFPhiConfig(
        vocab_size=TINY.vocab_size,
        hidden_size=llm.hidden_size,
        intermediate_size=llm.intermediate_size,
        num_hidden_layers=llm.num_layers,
        num_attention_heads=llm.num_heads,
        max_position_embeddings=llm.max_position_embeddings,
        partial_rotary_factor=llm.rotary_fraction,
        qk_layernorm=True,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attention_dropout=0.0,
        bos_token_id=TINY.bos_id,
        eos_token_id=TINY.eos_id,
        tie_word_embeddings=False,
        attn_implementation="eager",
    )
    torch.manual_seed(seed)
    return redraw_weights(PhiForCausalLM(config).eval(), 0.2, norm="layernorm")


def redraw_weights(model, scale: float, norm: str = "norm"):
    """``model`` with every weight redrawn from the global torch generator: norm weights (names with
    ``norm``) near 1 (1 + 0.2 N(0, 1)), the rest ``scale`` N(0, 1); so that greedy answers are not
    one repeated token. Returns the model."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if norm in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(scale * torch.randn_like(p))
    return model


def released_config_json(clip_vit: bool = False) -> dict:
    return {
        "_class_name": "Showo",
        "_diffusers_version": "0.30.1",
        "codebook_size": TINY.codebook_size,
        "llm_model_path": "microsoft/phi-1_5",
        "llm_vocab_size": TINY.text_vocab_size,
        "load_from_showo": False,
        "mask_token_id": TINY.layout.mask_id,
        "num_new_special_tokens": 10,
        "num_vq_tokens": TINY.num_image_tokens,
        "vocab_size": TINY.vocab_size,
        "w_clip_vit": clip_vit,
    }


def write_released_folder(folder: Path, state: dict, file_name: str) -> Path:
    """A folder in the released layout: config.json + weights under the released key names."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(released_config_json()))
    if file_name.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(folder / file_name))
    else:
        torch.save(state, folder / file_name)
    return folder


@pytest.fixture
def hf_phi():
    return tiny_hf_phi()


@pytest.fixture
def llm_config_dir(tmp_path, hf_phi):
    """The base LLM's own config.json, as phi-1.5's folder holds it."""
    folder = tmp_path / "phi"
    hf_phi.config.save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return ShowoModel(TINY).eval()


def sharp_tiny_model(config=TINY, scale: float = 3.0) -> ShowoModel:
    """A model of ``config`` (seed 0) with its weights scaled up, so the logits are far from uniform."""
    torch.manual_seed(0)
    model = ShowoModel(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model


@pytest.fixture
def random_ids():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, TINY.vocab_size, (2, 24), generator=g)


CORPUS = [
    "a red circle above a blue square", "two green triangles on the left", "what colour is the circle?",
    "USER: \nwhat is in the picture? ASSISTANT: a small yellow star", "Please describe this image in detail.",
]


def build_tiny_pipeline(seed: int = 0, weight_scale: float = 3.0):
    """Tokenizer, MAGVIT-v2 and Show-o of the tiny presets, random weights, sharing one vocabulary."""
    import dataclasses

    from showo import MagvitV2, TextTokenizer, magvit_preset
    from showo.pipeline import ShowoPipeline

    tokenizer = TextTokenizer.train_bpe(CORPUS * 5, vocab_size=320)
    vq_config = magvit_preset("tiny")
    config = dataclasses.replace(
        TINY, text_vocab_size=tokenizer.text_vocab_size, bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id,
        codebook_size=vq_config.codebook_size, downsample_factor=vq_config.downsample_factor,
    )
    torch.manual_seed(seed)
    model = ShowoModel(config)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(weight_scale)
    return ShowoPipeline(model, MagvitV2(vq_config), tokenizer)


@pytest.fixture(scope="session")
def tiny_pipeline():
    return build_tiny_pipeline()


# -- training runs at test size ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def world_tokenizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("world_tokenizer")
    TextTokenizer.train_bpe(world_texts(300), vocab_size=400).save(folder)
    return folder


def small(tokenizer, *extra):
    """The tiny preset at test size."""
    return [f"tokenizer={tokenizer}", 'batch_size={"t2i": 4, "lm": 2, "mmu": 4, "mixed": 2}',
            "warmup_steps=3", "learning_rate=3e-3", *extra]


def train_cli(output, tokenizer, steps, every, *extra):
    return ["train", "--preset", "tiny", "--output", str(output), "--max-steps", str(steps),
            "--checkpoint-every", str(every), *small(tokenizer, *extra)]


def losses(output):
    return [(r["step"], r["loss"]) for r in read_metrics(output)]
