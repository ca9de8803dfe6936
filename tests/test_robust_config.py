"""Config files with bad fields: every kind of config showo reads (our ``config.json``, the
released Show-o one and its base LLM's, the MAGVIT-v2 one, ``generation_config.json``), each bad
field written to a file, then loaded the way showo loads it. The error is one line that names the
file, the field, what it must be and what it got; nothing runs on a bad config, and the file is
byte-identical afterwards. Valid configs (presets, the shipped model) load as before."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time

import pytest
import torch
from conftest import TINY, released_config_json

from showo import MagvitV2, ShowoModel
from showo.generation.generation_config import FILENAME, GenerationConfig
from showo.model.checkpoint_io import MAX_JSON_BYTES
from showo.model.config import MAGVIT_PRESETS, SHOWO_PRESETS, MagvitConfig, PhiConfig, ShowoConfig
from showo.pipeline import ShowoPipeline, shipped_model_dir

NAN, INF = float("nan"), float("inf")
DEEP = "[" * 100_000 + "]" * 100_000


def write(path, value) -> bytes:
    """Write ``value`` as JSON (NaN and Infinity as Python writes them), or a str as it is."""
    text = value if isinstance(value, str) else json.dumps(value)
    path.write_text(text)
    return path.read_bytes()


def refused(load, path, before: bytes, *fragments: str) -> str:
    """``load()`` raises one one-line ValueError naming ``path`` and each fragment; ``path`` is unchanged."""
    with pytest.raises(ValueError) as error:
        load()
    message = str(error.value)
    assert "\n" not in message, message
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert path.read_bytes() == before, "the file must be left as it was"
    return message


def with_field(d: dict, dotted: str, value) -> dict:
    d = json.loads(json.dumps(d))
    node, *parents, last = [d, *dotted.split(".")]
    for part in parents:
        node = node[part]
    node[last] = value
    return d


# -- our config.json (ShowoConfig) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "m"
    torch.manual_seed(0)
    ShowoModel(TINY).save_pretrained(folder)
    return folder


@pytest.fixture
def model_folder(saved_model, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(saved_model, folder)
    return folder


SHOWO_CASES = [
    ("image_size", 0, ["image_size", "greater than or equal to 1", "got 0"]),
    ("downsample_factor", 0, ["downsample_factor", "greater than or equal to 1", "got 0"]),
    ("downsample_factor", 3, ["downsample_factor must be a power of two, got 3"]),
    ("image_size", 100, ["image_size (100) must be a multiple of downsample_factor (8)"]),
    ("image_size", 2**40, ["image_size", "less than or equal to 2147483647", "got 1099511627776"]),
    ("text_vocab_size", 1.5, ["text_vocab_size", "valid integer", "got 1.5"]),
    ("bos_id", 10**6, ["bos_id (1000000) must be < text_vocab_size (512)"]),
    ("eos_id", -1, ["eos_id", "greater than or equal to 0", "got -1"]),
    ("max_text_length", 2, ["max_text_length", "greater than or equal to 3", "got 2"]),
    ("clip_vit", "yes", ["clip_vit", "valid boolean", "got 'yes'"]),
    ("codebook_size", None, ["codebook_size", "valid integer", "got None"]),
    ("colour", "red", ["colour: unknown field", "known: "]),
    ("llm", [], ["llm", "dictionary or an instance of PhiConfig", "got []"]),
    ("llm.layer_norm_eps", NAN, ["llm.layer_norm_eps", "finite number", "got nan"]),
    ("llm.rope_base", INF, ["llm.rope_base", "finite number", "got inf"]),
    ("llm.layer_norm_eps", 0, ["llm.layer_norm_eps", "greater than 0", "got 0"]),
    ("llm.max_position_embeddings", -1, ["llm.max_position_embeddings", "greater than or equal to 1", "got -1"]),
    ("llm.max_position_embeddings", 64, ["text-to-image sequence", "99", "max_position_embeddings (64)"]),
    ("llm.num_heads", 0, ["llm.num_heads", "greater than or equal to 1", "got 0"]),
    ("llm.num_heads", 3, ["llm: hidden_size (64) must be divisible by num_heads (3)"]),
    ("llm.rotary_fraction", 0.2, ["llm: rotary dims per head must be even, got 3"]),
    ("llm.rotary_fraction", 1.5, ["llm.rotary_fraction", "less than or equal to 1", "got 1.5"]),
    ("llm.hidden_size", "64", ["llm.hidden_size", "valid integer", "got '64'"]),
    ("llm.num_layers", 1e9, ["llm.num_layers", "valid integer", "got 1000000000.0"]),
    ("llm.qk_norm", 1, ["llm.qk_norm", "valid boolean", "got 1"]),
    ("llm.hidden_sise", 64, ["llm.hidden_sise: unknown field", "known: hidden_size"]),
    ("llm.hidden_size", [[[[[[[[1]]]]]]]], ["llm.hidden_size", "valid integer", "[[[[...]]]]"]),
    ("llm.hidden_size", "x" * 10_000, ["llm.hidden_size", "valid integer", "..."]),
]


@pytest.mark.parametrize("field, value, fragments", SHOWO_CASES, ids=[f"{c[0]}={c[1]!r}"[:40] for c in SHOWO_CASES])
def test_bad_showo_config_fields_are_named(model_folder, field, value, fragments):
    path = model_folder / "config.json"
    before = write(path, with_field(json.loads(path.read_text()), field, value))
    message = refused(lambda: ShowoModel.from_pretrained(model_folder), path, before, *fragments)
    assert len(message) < 600, "long or nested values are shown cut short"


def test_every_bad_field_is_listed_at_once(model_folder):
    path = model_folder / "config.json"
    d = with_field(with_field(json.loads(path.read_text()), "image_size", 0), "llm.num_heads", "4")
    before = write(path, d)
    refused(lambda: ShowoModel.from_pretrained(model_folder), path, before, "image_size", "llm.num_heads")


@pytest.mark.parametrize("text, fragment", [
    (DEEP, "nested too deeply"),
    ("[1, 2]", "expected a JSON object, got list"),
    ("{\"image_size\": 64,", "not valid JSON"),
    ("{\"image_size\": " + "9" * 5000 + "}", "not valid JSON"),
])
def test_unreadable_showo_config_files(model_folder, text, fragment):
    path = model_folder / "config.json"
    before = write(path, text)
    start = time.perf_counter()
    refused(lambda: ShowoModel.from_pretrained(model_folder), path, before, fragment)
    assert time.perf_counter() - start < 5


def test_a_config_file_too_large_to_be_one_is_not_read(model_folder):
    path = model_folder / "config.json"
    before = write(path, json.dumps({"format": "showo", "pad": " " * MAX_JSON_BYTES}))
    refused(lambda: ShowoModel.from_pretrained(model_folder), path, before, "too large for a config file")


# -- the released Show-o config.json and its base LLM's -----------------------------------------------


@pytest.fixture
def released_folder(tmp_path):
    folder = tmp_path / "rel"
    folder.mkdir()
    write(folder / "config.json", released_config_json())
    (folder / "pytorch_model.safetensors").write_bytes(b"")  # the config is refused before the weights are read
    return folder


@pytest.mark.parametrize("field, value, fragments", [
    ("llm_vocab_size", 0, ["llm_vocab_size", "greater than or equal to 1", "got 0"]),
    ("codebook_size", "1024", ["codebook_size", "valid integer", "got '1024'"]),
    ("num_vq_tokens", NAN, ["num_vq_tokens", "valid integer", "got nan"]),
    ("num_vq_tokens", 15, ["num_vq_tokens=15 is not a square grid"]),
    ("num_new_special_tokens", 9, ["num_new_special_tokens is 9, expected 10"]),
    ("w_clip_vit", "no", ["w_clip_vit", "valid boolean", "got 'no'"]),
    ("mask_token_id", 1.5, ["mask_token_id", "valid integer", "got 1.5"]),
])
def test_bad_released_config_fields_are_named(released_folder, field, value, fragments):
    path = released_folder / "config.json"
    before = write(path, {**released_config_json(), field: value})
    refused(lambda: ShowoModel.from_pretrained(released_folder), path, before, *fragments)


def tiny_hf_config() -> dict:
    llm = TINY.llm
    return {"model_type": "phi", "hidden_size": llm.hidden_size, "num_hidden_layers": llm.num_layers,
            "num_attention_heads": llm.num_heads, "intermediate_size": llm.intermediate_size,
            "partial_rotary_factor": 0.5, "rope_theta": 10000.0, "layer_norm_eps": 1e-5,
            "max_position_embeddings": llm.max_position_embeddings, "bos_token_id": TINY.bos_id,
            "eos_token_id": TINY.eos_id}


@pytest.mark.parametrize("field, value, fragments", [
    ("num_attention_heads", 0, ["num_attention_heads", "greater than or equal to 1", "got 0"]),
    ("num_attention_heads", 3, ["hidden_size (64) must be divisible by num_heads (3)"]),
    ("rope_theta", NAN, ["rope_theta", "finite number", "got nan"]),
    ("partial_rotary_factor", 2, ["partial_rotary_factor", "less than or equal to 1", "got 2"]),
    ("max_position_embeddings", -1, ["max_position_embeddings", "greater than or equal to 1", "got -1"]),
    ("layer_norm_eps", "1e-5", ["layer_norm_eps", "valid number", "got '1e-5'"]),
    ("bos_token_id", -1, ["bos_token_id", "greater than or equal to 0", "got -1"]),
    ("eos_token_id", [0, 1], ["eos_token_id", "valid integer", "got [0, 1]"]),
    ("rope_parameters", 3, ["rope_parameters must be a JSON object, got int"]),
])
def test_bad_base_llm_config_fields_are_named_in_its_own_terms(released_folder, tmp_path, field, value, fragments):
    path = tmp_path / "phi" / "config.json"
    path.parent.mkdir()
    before = write(path, {**tiny_hf_config(), field: value})
    refused(lambda: ShowoModel.from_pretrained(released_folder, llm_config=path.parent), path, before, *fragments)


def test_deep_released_and_llm_configs(released_folder, tmp_path):
    path = released_folder / "config.json"
    refused(lambda: ShowoModel.from_pretrained(released_folder), path, write(path, DEEP), "nested too deeply")
    write(path, released_config_json())
    llm = tmp_path / "phi.json"
    refused(lambda: ShowoModel.from_pretrained(released_folder, llm_config=llm), llm, write(llm, DEEP),
            "nested too deeply")


# -- the MAGVIT-v2 config.json ---------------------------------------------------------------------------


@pytest.fixture
def magvit_folder(tmp_path):
    folder = tmp_path / "vq"
    torch.manual_seed(0)
    MagvitV2(MAGVIT_PRESETS["tiny"]).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("field, value, fragments", [
    ("channels", 0, ["channels", "greater than or equal to 1", "got 0"]),
    ("channels", 10**6, ["channels", "less than or equal to 4096", "got 1000000"]),
    ("z_channels", 64, ["z_channels", "less than or equal to 20", "got 64"]),
    ("z_channels", 10.0, ["z_channels", "valid integer", "got 10.0"]),
    ("encoder_channel_mult", [], ["encoder_channel_mult", "at least 1 item", "got []"]),
    ("encoder_channel_mult", [1, 2, "2", 4], ["encoder_channel_mult.2", "valid integer", "got '2'"]),
    ("encoder_channel_mult", [1, 2, 2, 4096], ["channels * mult = 131072 is over 4096"]),
    ("encoder_blocks", [1, 1], ["encoder_channel_mult has 4 levels but encoder_blocks has 2"]),
    ("decoder_blocks", [1, 1, 1, 0], ["decoder_blocks.3", "greater than or equal to 1", "got 0"]),
    ("norm_groups", 7, ["not divisible by norm_groups=7"]),
    ("image_channels", True, ["image_channels", "valid integer", "got True"]),
    ("depth", 3, ["depth: unknown field"]),
])
def test_bad_magvit_config_fields_are_named(magvit_folder, field, value, fragments):
    path = magvit_folder / "config.json"
    before = write(path, {**json.loads(path.read_text()), field: value})
    refused(lambda: MagvitV2.from_pretrained(magvit_folder), path, before, *fragments)


def test_deep_magvit_config(magvit_folder):
    path = magvit_folder / "config.json"
    refused(lambda: MagvitV2.from_pretrained(magvit_folder), path, write(path, DEEP), "nested too deeply")


# -- generation_config.json ---------------------------------------------------------------------------------


@pytest.mark.parametrize("field, value, fragments", [
    ("steps", 1e9, ["steps must be an integer >= 1, got 1000000000.0"]),
    ("steps", 10**9, ["steps must be an integer <= 1000", "got 1000000000"]),
    ("steps", NAN, ["steps must be an integer >= 1, got nan"]),
    ("steps", "18", ["steps must be an integer >= 1, got '18'"]),
    ("guidance_scale", NAN, ["guidance_scale must be a finite number, got nan"]),
    ("guidance_scale", -INF, ["guidance_scale must be a finite number, got -inf"]),
    ("guidance_scale", 1e6, ["guidance_scale must be <= 100", "got 1000000.0"]),
    ("temperature", INF, ["temperature must be a finite number, got inf"]),
    ("temperature", -1, ["temperature must be >= 0, got -1"]),
    ("schedule", "pownan", ["schedule 'pownan': the exponent must be a finite number > 0, got nan"]),
    ("schedule", "pow0", ["schedule 'pow0': the exponent must be a finite number > 0, got 0.0"]),
    ("schedule", 7, ["schedule must be a string", "got int 7"]),
    ("plan_prompts", 1, ["plan_prompts must be true or false, got 1"]),
    ("answer_marker", "\ud800", ["answer_marker must be null or a non-empty string, got '\\ud800'"]),
    ("reasoning_tokens", -1, ["reasoning_tokens must be an integer >= 0, got -1"]),
    ("stepz", 3, ["unknown fields ['stepz']"]),
])
def test_bad_generation_config_fields_are_named(tmp_path, field, value, fragments):
    path = tmp_path / FILENAME
    before = write(path, {"steps": 8, field: value})
    refused(lambda: GenerationConfig.from_folder(tmp_path), path, before, *fragments)


def test_a_pipeline_folder_with_a_bad_generation_config_is_refused(tiny_pipeline, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path / "p")
    path = tmp_path / "p" / FILENAME
    before = write(path, {"steps": 18, "guidance_scale": NAN})
    refused(lambda: ShowoPipeline.from_pretrained(tmp_path / "p"), path, before, "guidance_scale", "got nan")
    refused(lambda: ShowoPipeline.from_pretrained(tmp_path / "p"), path, write(path, DEEP), "nested too deeply")
    path.unlink()
    tokenizer_config = tmp_path / "p" / "tokenizer_config.json"
    refused(lambda: ShowoPipeline.from_pretrained(tmp_path / "p"), tokenizer_config, write(tokenizer_config, DEEP),
            "nested too deeply")


# -- built in code: the same checks, one line, no ZeroDivisionError ---------------------------------------------


@pytest.mark.parametrize("make, fragment", [
    (lambda: PhiConfig(num_heads=0), "num_heads: input should be greater than or equal to 1, got 0"),
    (lambda: PhiConfig(layer_norm_eps=NAN), "layer_norm_eps: input should be a finite number, got nan"),
    (lambda: ShowoConfig(image_size=0), "image_size: input should be greater than or equal to 1, got 0"),
    (lambda: dataclasses.replace(TINY, downsample_factor=0), "downsample_factor"),
    (lambda: dataclasses.replace(MAGVIT_PRESETS["tiny"], z_channels=0), "z_channels"),
    (lambda: GenerationConfig(steps=0), "steps must be an integer >= 1, got 0"),
])
def test_configs_built_in_code_are_checked_the_same_way(make, fragment):
    with pytest.raises(ValueError) as error:
        make()
    assert fragment in str(error.value) and "\n" not in str(error.value)


# -- valid configs: nothing changes ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SHOWO_PRESETS))
def test_every_preset_round_trips_through_its_file(tmp_path, name):
    config = SHOWO_PRESETS[name]
    config.save(tmp_path / "config.json")
    again = ShowoConfig.from_dict(json.loads((tmp_path / "config.json").read_text()), "config.json")
    assert again == config and dataclasses.asdict(again) == dataclasses.asdict(config)
    assert dataclasses.replace(config, image_size=config.image_size) == config


@pytest.mark.parametrize("name", sorted(MAGVIT_PRESETS))
def test_every_magvit_preset_round_trips(name):
    config = MAGVIT_PRESETS[name]
    assert MagvitConfig(**dataclasses.asdict(config)) == config


def test_the_shipped_model_loads_as_before():
    folder = shipped_model_dir()
    before = {p: p.read_bytes() for p in folder.rglob("*.json")}
    pipe = ShowoPipeline.from_pretrained(folder, torch_dtype=torch.float32)  # the weights as stored
    assert pipe.config == SHOWO_PRESETS["world"] and pipe.vq.config == MAGVIT_PRESETS["world"]
    stored = json.loads(before[folder / "generation_config.json"])  # every field the file names, as written
    assert {name: getattr(pipe.generation, name) for name in stored} == stored
    from safetensors.torch import load_file

    state = load_file(str(folder / "model.safetensors"))
    assert all(torch.equal(state[k], v) for k, v in pipe.model.state_dict().items())
    assert {p: p.read_bytes() for p in folder.rglob("*.json")} == before
