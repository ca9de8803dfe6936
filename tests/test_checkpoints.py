"""Released-layout checkpoints (.bin and .safetensors), our format, and bad files."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import TINY, released_config_json, write_released_folder

from showo import ShowoModel
from showo.model.released_checkpoint import ours_to_released


def _marker_pickle(path, marker):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"showo.lm_head.weight": Evil()}, path)


@pytest.mark.parametrize("file_name", ["pytorch_model.bin", "pytorch_model.safetensors"])
@torch.no_grad()
def test_released_layout_gives_identical_logits(tmp_path, tiny_model, random_ids, file_name):
    folder = write_released_folder(tmp_path / "rel", ours_to_released(tiny_model.state_dict()), file_name)
    loaded = ShowoModel.from_pretrained(folder, llm_config=_tiny_llm_config(tmp_path))
    assert torch.equal(loaded(random_ids), tiny_model(random_ids))


def _tiny_llm_config(tmp_path):
    folder = tmp_path / "llm"
    folder.mkdir(exist_ok=True)
    llm = TINY.llm
    (folder / "config.json").write_text(json.dumps({
        "model_type": "phi", "hidden_size": llm.hidden_size, "num_hidden_layers": llm.num_layers,
        "num_attention_heads": llm.num_heads, "intermediate_size": llm.intermediate_size,
        "partial_rotary_factor": 0.5, "rope_theta": 10000.0, "layer_norm_eps": 1e-5,
        "max_position_embeddings": llm.max_position_embeddings, "bos_token_id": TINY.bos_id,
        "eos_token_id": TINY.eos_id,
    }))
    return folder


def test_released_keys_are_the_documented_names(tiny_model):
    names = set(ours_to_released(tiny_model.state_dict()))
    for n in ("showo.model.embed_tokens.weight", "showo.model.layers.1.input_layernorm.bias",
              "showo.model.layers.0.self_attn.dense.weight", "showo.model.layers.0.self_attn.q_layernorm.weight",
              "showo.model.layers.1.self_attn.k_layernorm.bias", "showo.model.layers.0.mlp.fc2.bias",
              "showo.model.final_layernorm.weight", "showo.lm_head.bias"):
        assert n in names
    assert all(n.startswith("showo.") for n in names)


@torch.no_grad()
def test_save_load_round_trip_is_exact(tmp_path, tiny_model, random_ids):
    tiny_model.save_pretrained(tmp_path / "ours")
    assert sorted(p.name for p in (tmp_path / "ours").iterdir()) == ["config.json", "model.safetensors"]
    loaded = ShowoModel.from_pretrained(tmp_path / "ours")
    assert loaded.config == tiny_model.config
    for (k, a), (k2, b) in zip(tiny_model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    assert torch.equal(loaded(random_ids), tiny_model(random_ids))


def test_save_over_a_showo_folder_replaces_it_when_asked(tmp_path, tiny_model):
    target = tmp_path / "ours"
    ShowoModel(TINY).save_pretrained(target)
    tiny_model.save_pretrained(target, overwrite=True)
    reloaded = ShowoModel.from_pretrained(target)
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), tiny_model.state_dict().values()))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary folder left behind"


@torch.no_grad()
def test_convert_command_turns_released_into_ours(tmp_path, tiny_model, random_ids):
    src = write_released_folder(tmp_path / "rel", ours_to_released(tiny_model.state_dict()), "pytorch_model.bin")
    dst = tmp_path / "converted"
    run = subprocess.run(
        [sys.executable, "-m", "showo", "convert", str(src), str(dst), "--llm-config", str(_tiny_llm_config(tmp_path))],
        capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads((dst / "config.json").read_text())["format"] == "showo"
    assert torch.equal(ShowoModel.from_pretrained(dst)(random_ids), tiny_model(random_ids))


# -- bad input --------------------------------------------------------------------------------------


def test_folder_without_weights(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(released_config_json()))
    with pytest.raises(FileNotFoundError, match="no weights found"):
        ShowoModel.from_pretrained(tmp_path)


def test_missing_unexpected_and_misshaped_keys_are_listed(tmp_path, tiny_model):
    state = ours_to_released(tiny_model.state_dict())
    del state["showo.model.layers.1.mlp.fc1.weight"]
    state["showo.model.layers.0.self_attn.rotary_extra"] = torch.zeros(1)
    state["showo.lm_head.bias"] = torch.zeros(7)
    folder = write_released_folder(tmp_path / "rel", state, "pytorch_model.bin")
    with pytest.raises(ValueError) as err:
        ShowoModel.from_pretrained(folder, llm_config=_tiny_llm_config(tmp_path))
    msg = str(err.value)
    assert "missing keys (1): blocks.1.mlp.fc1.weight" in msg
    assert "unexpected keys (1): showo.model.layers.0.self_attn.rotary_extra" in msg
    assert f"lm_head.bias: expected ({TINY.vocab_size},), got (7,)" in msg
    assert "pytorch_model.bin" in msg


def test_pickle_that_would_run_code_is_refused(tmp_path):
    folder = tmp_path / "rel"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(released_config_json()))
    marker = tmp_path / "pwned"
    _marker_pickle(folder / "pytorch_model.bin", marker)
    with pytest.raises(ValueError, match="refused to unpickle"):
        ShowoModel.from_pretrained(folder, llm_config=_tiny_llm_config(tmp_path))
    assert not marker.exists(), "the pickle's code must never run"


def test_corrupt_safetensors_is_refused(tmp_path):
    folder = tmp_path / "rel"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(released_config_json()))
    (folder / "pytorch_model.safetensors").write_bytes(os.urandom(256))
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        ShowoModel.from_pretrained(folder, llm_config=_tiny_llm_config(tmp_path))


def test_config_that_disagrees_with_the_layout(tmp_path, tiny_model):
    state = ours_to_released(tiny_model.state_dict())
    folder = write_released_folder(tmp_path / "rel", state, "pytorch_model.bin")
    config = released_config_json()
    config["mask_token_id"] = 5
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="mask_token_id is 5"):
        ShowoModel.from_pretrained(folder, llm_config=_tiny_llm_config(tmp_path))


def test_released_llm_defaults_are_phi_1_5(tmp_path):
    from showo.model.released_checkpoint import released_config

    config = released_config({"llm_vocab_size": 50295, "codebook_size": 8192, "num_vq_tokens": 256,
                              "vocab_size": 58498, "mask_token_id": 58497}, None, "config.json")
    llm = config.llm
    assert (llm.hidden_size, llm.num_layers, llm.num_heads, llm.intermediate_size) == (2048, 24, 32, 8192)
    assert (llm.rotary_dims, llm.rope_base, llm.max_position_embeddings) == (32, 10000.0, 2048)
    assert config.image_size == 256 and config.num_image_tokens == 256
    assert released_config({"llm_vocab_size": 50295, "codebook_size": 8192, "num_vq_tokens": 1024},
                           None, "c").image_size == 512
