"""LoRA adapters through peft (``showo.model.adapters``): a new adapter changes nothing, merging
and unmerging are exact, a merged model computes what the adapter computes, an adapter saved
alone loads back exactly (and into peft's own ``PeftModel``), and the pipeline loads, merges and
switches adapters off."""

import json

import pytest
import torch
from conftest import TINY, build_tiny_pipeline, sharp_tiny_model
from safetensors.torch import load_file

from showo import ShowoModel
from showo.model import adapters
from showo.model.adapters import LORA_TARGETS, add_adapter, lora_config

pytest.importorskip("peft")


def randomise_adapter(model: torch.nn.Module, seed: int = 1) -> None:
    """Give every adapter weight a random value (B starts at zero, which would hide mistakes)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name or "trainable_tokens_delta" in name:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def base_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in adapters.base_state_dict(model, allow_unmerged=True).items()}


@pytest.fixture
def adapted(random_ids):
    """(the base model, a copy of it with a random rank-4 adapter on every default target); weights
    at their initial scale, so that logits are O(1) and 1e-5 is float rounding, not a loose bound"""
    base = sharp_tiny_model(scale=1.0)
    model = sharp_tiny_model(scale=1.0)
    add_adapter(model, lora_config(rank=4, alpha=8))
    randomise_adapter(model)
    return base, model.eval()


def test_a_new_adapter_leaves_the_logits_exactly_as_they_were(random_ids):
    base, model = sharp_tiny_model(), sharp_tiny_model()
    add_adapter(model, lora_config(rank=4, token_ids=[3, 7]))
    wrapped = {n.removesuffix(".token_adapter").rsplit(".", 1)[-1] for n, m in model.named_modules()
               if hasattr(m, "base_layer")}
    assert wrapped == set(LORA_TARGETS) | {"embed"}  # every default target, and the token rows
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "trainable_tokens" in n for n in trainable)  # the base is frozen
    with torch.no_grad():
        assert torch.equal(model(random_ids), base(random_ids))


def test_merge_then_unmerge_restores_the_base_weights_bit_for_bit(adapted):
    _, model = adapted
    before = base_weights(model)
    adapters.merge_adapters(model)
    merged = adapters.base_state_dict(model)
    assert any(not torch.equal(merged[k], before[k]) for k in before)  # merging changed the weights
    adapters.unmerge_adapters(model)
    after = adapters.base_state_dict(model, allow_unmerged=True)
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_a_merged_model_computes_what_the_adapter_computes(adapted, random_ids):
    base, model = adapted
    with torch.no_grad():
        unmerged = model(random_ids)
        assert not torch.allclose(unmerged, base(random_ids), atol=1e-3)  # the adapter does something
        adapters.merge_adapters(model)
        assert torch.allclose(model(random_ids), unmerged, atol=1e-5, rtol=0)


def test_switched_off_the_model_is_its_base_merged_or_not(adapted, random_ids):
    base, model = adapted
    with torch.no_grad():
        expected, adapted_logits = base(random_ids), model(random_ids)
        for merge in (False, True):
            if merge:
                adapters.merge_adapters(model)
            with adapters.adapters_disabled(model):
                assert torch.allclose(model(random_ids), expected, atol=1e-5, rtol=0)
            assert torch.allclose(model(random_ids), adapted_logits, atol=1e-5, rtol=0)


def test_an_adapter_saves_alone_and_loads_exactly(adapted, random_ids, tmp_path):
    _, model = adapted
    adapters.save_adapter(model, tmp_path / "adapter", base="showo/weights/world")
    assert sorted(p.name for p in (tmp_path / "adapter").iterdir()) == sorted(adapters.ADAPTER_FILES)
    config = json.loads((tmp_path / "adapter" / adapters.CONFIG_FILE).read_text())
    assert (config["peft_type"], config["r"], config["lora_alpha"]) == ("LORA", 4, 8)
    assert sorted(config["target_modules"]) == sorted(LORA_TARGETS)
    assert config["base_model_name_or_path"] == "showo/weights/world"
    stored = load_file(tmp_path / "adapter" / adapters.WEIGHTS_FILE)
    assert stored and all(k.startswith("base_model.model.blocks.") and ".lora_" in k for k in stored)  # alone
    assert sum(v.numel() for v in stored.values()) < sum(p.numel() for p in model.parameters()) / 4

    fresh = sharp_tiny_model(scale=1.0)
    adapters.load_adapter(fresh, tmp_path / "adapter")
    with torch.no_grad():
        assert torch.equal(fresh(random_ids), model(random_ids))
    assert not any(p.requires_grad for p in fresh.parameters())  # loaded for inference


def test_peft_itself_reads_the_saved_adapter(adapted, random_ids, tmp_path):
    from peft import PeftModel

    _, model = adapted
    adapters.save_adapter(model, tmp_path / "adapter")
    peft_model = PeftModel.from_pretrained(sharp_tiny_model(scale=1.0), tmp_path / "adapter").eval()
    with torch.no_grad():
        assert torch.equal(peft_model(random_ids), model(random_ids))


def test_token_rows_train_only_the_rows_named(random_ids):
    model = sharp_tiny_model()
    add_adapter(model, lora_config(rank=2, token_ids=[5]))
    randomise_adapter(model)
    adapters.merge_adapters(model)
    merged, base = adapters.base_state_dict(model), sharp_tiny_model().state_dict()
    changed = (merged["embed.weight"] != base["embed.weight"]).any(dim=1).nonzero().flatten().tolist()
    assert changed == [5]


def test_save_pretrained_refuses_an_unmerged_adapter_and_writes_a_merged_one(adapted, random_ids, tmp_path):
    _, model = adapted
    with pytest.raises(ValueError, match="not merged"):
        model.save_pretrained(tmp_path / "unmerged")
    assert not (tmp_path / "unmerged").exists()
    adapters.merge_adapters(model)
    model.save_pretrained(tmp_path / "merged")
    plain = ShowoModel.from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():
        assert torch.allclose(plain(random_ids), model(random_ids), atol=1e-5, rtol=0)


def test_bad_adapters_are_clear_errors(tmp_path, adapted):
    model = sharp_tiny_model()
    with pytest.raises(ValueError, match=r"\['qkv'\] name no layer.*'fc1'"):
        add_adapter(model, lora_config(targets=["qkv"]))
    with pytest.raises(ValueError, match="rank must be an integer >= 1, got 0"):
        lora_config(rank=0)
    with pytest.raises(FileNotFoundError, match=r"no adapter_config\.json"):
        adapters.load_adapter(model, tmp_path)
    _, other = adapted
    adapters.save_adapter(other, tmp_path / "adapter")
    import dataclasses

    wider = ShowoModel(dataclasses.replace(TINY, llm=dataclasses.replace(TINY.llm, num_layers=TINY.llm.num_layers + 1)))
    with pytest.raises(ValueError, match=r"adapter_model\.safetensors: the adapter does not fit the model: missing"):
        adapters.load_adapter(wider, tmp_path / "adapter")
    assert adapters.adapter_names(wider) == []  # nothing half-loaded stays behind
    adapters.save_adapter(other, tmp_path / "adapter", overwrite=True)  # its own adapter folder: replaced
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="files showo did not write"):
        adapters.save_adapter(other, tmp_path / "mine", overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_the_pipeline_loads_merges_and_switches_off_an_adapter(tmp_path):
    pipe = build_tiny_pipeline()
    base_images = pipe.generate_codes(["a red circle"], steps=3, seed=0)
    add_adapter(pipe.model, lora_config(rank=4))
    randomise_adapter(pipe.model, seed=3)
    pipe.save_adapter(tmp_path / "adapter")

    fresh = build_tiny_pipeline()
    fresh.load_adapter(tmp_path / "adapter")
    with_adapter = fresh.generate_codes(["a red circle"], steps=3, seed=0)
    assert not torch.equal(with_adapter, base_images)
    assert torch.equal(with_adapter, pipe.generate_codes(["a red circle"], steps=3, seed=0))
    with fresh.adapters_disabled():
        assert torch.equal(fresh.generate_codes(["a red circle"], steps=3, seed=0), base_images)
    fresh.merge_adapters()
    assert torch.equal(fresh.generate_codes(["a red circle"], steps=3, seed=0), with_adapter)
    fresh.unmerge_adapters()
    assert torch.equal(fresh.generate_codes(["a red circle"], steps=3, seed=0), with_adapter)
