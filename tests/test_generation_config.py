"""generation_config.json: sampling defaults stored with a model and used wherever none are given."""

import json

import pytest
import torch

from showo.generation.generation_config import FILENAME, GenerationConfig
from showo.pipeline import ShowoPipeline, shipped_model_dir


def test_a_folder_without_the_file_gets_the_papers_values(tmp_path):
    assert GenerationConfig.from_folder(tmp_path) == GenerationConfig(steps=18, guidance_scale=1.75)


def test_saved_values_come_back(tmp_path):
    config = GenerationConfig(steps=7, guidance_scale=2.5, schedule="pow2", temperature=0.8, plan_prompts=True,
                              answer_marker="answer:", reasoning_tokens=64)
    config.save(tmp_path)
    assert GenerationConfig.from_folder(tmp_path) == config


@pytest.mark.parametrize("values, message", [
    ({"stepz": 3}, r"unknown fields \['stepz'\]"),
    ({"steps": 0}, "steps must be an integer >= 1, got 0"),
    ({"steps": 2.5}, "steps must be an integer >= 1, got 2.5"),
    ({"guidance_scale": -1}, "guidance_scale must be >= 0"),
    ({"schedule": "wavy"}, "unknown schedule 'wavy'"),
    ({"plan_prompts": "yes"}, "plan_prompts must be true or false, got 'yes'"),
    ({"answer_marker": " "}, "answer_marker must be null or a non-empty string, got ' '"),
    ({"answer_marker": 3}, "answer_marker must be null or a non-empty string, got 3"),
    ({"reasoning_tokens": -1}, "reasoning_tokens must be an integer >= 0, got -1"),
    ({"reasoning_tokens": True}, "reasoning_tokens must be an integer >= 0, got True"),
])
def test_bad_files_are_named(tmp_path, values, message):
    (tmp_path / FILENAME).write_text(json.dumps(values))
    with pytest.raises(ValueError, match=message) as error:
        GenerationConfig.from_folder(tmp_path)
    assert str(tmp_path / FILENAME) in str(error.value)
    (tmp_path / FILENAME).write_text("{steps: 3")
    with pytest.raises(ValueError, match="not valid JSON"):
        GenerationConfig.from_folder(tmp_path)


def test_the_pipeline_samples_with_its_folders_defaults(tiny_pipeline, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path)
    GenerationConfig(steps=3, guidance_scale=0.5).save(tmp_path)
    pipe = ShowoPipeline.from_pretrained(tmp_path, torch_dtype=torch.float32)  # compared with the fp32 one
    assert pipe.generation == GenerationConfig(steps=3, guidance_scale=0.5)
    seen = []
    codes = pipe.generate_codes(["a red circle"], seed=4, callback=lambda s, lg, c: seen.append(s))
    assert seen == [0, 1, 2]
    explicit = tiny_pipeline.generate_codes(["a red circle"], seed=4, steps=3, guidance_scale=0.5)
    assert torch.equal(codes, explicit)
    seen.clear()  # an explicit argument wins over the folder's value
    pipe.generate_codes(["a red circle"], seed=4, steps=5, callback=lambda s, lg, c: seen.append(s))
    assert seen == [0, 1, 2, 3, 4]
    pipe.save_pretrained(tmp_path / "again")
    assert GenerationConfig.from_folder(tmp_path / "again") == pipe.generation


def test_the_shipped_model_samples_as_its_recipe_says():
    from showo.training.presets import train_preset

    config = GenerationConfig.from_folder(shipped_model_dir())
    assert config == GenerationConfig(**train_preset("world")["transformer"]["generation"])
    assert config.accelerations()["draw"] == "inverse_cdf"  # the fast path is the shipped default
    exact = config.without_accelerations()  # the exact sampler, at the shipped steps and guidance
    assert exact == GenerationConfig(steps=config.steps, guidance_scale=config.guidance_scale)
    assert exact.accelerations() == GenerationConfig().accelerations() != config.accelerations()
