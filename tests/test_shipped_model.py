"""The model that ships in the repository: small enough, loadable, and the reduced quickstart
runs on it end to end (so the README's first command cannot silently break)."""

import json

import pytest

from showo.cli.main import main
from showo.pipeline import SHIPPED_DIR, shipped_model_dir

KEYS = ("t2i_overall", "t2i_single_object", "t2i_two_objects", "t2i_counting", "t2i_colors", "t2i_position",
        "t2i_attribute_binding", "vqa_accuracy", "caption_accuracy", "recon_psnr", "inpaint_accuracy",
        "extrapolation_accuracy", "mixed_modality_consistency", "evaluator_accuracy")


def test_shipped_weights_are_in_the_repository_and_small():
    folder = shipped_model_dir()
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 40 * 2**20
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= {p.name for p in files}
    assert (folder / "vq" / "model.safetensors").is_file()


def test_shipped_image_tokenizer_reconstructs_the_world():
    """Held-out pictures through the shipped MAGVIT-v2: the issue's 30 dB, and every object readable."""
    import numpy as np
    import torch

    from showo.evaluation.tasks import psnr
    from showo.model.image_processing import postprocess_images, preprocess_images
    from showo.model.magvit2 import MagvitV2
    from showo.world import read_scene
    from showo.world.scene import sample_scene

    vq = MagvitV2.from_pretrained(shipped_model_dir() / "vq").eval()
    rng = np.random.default_rng(2024)
    scenes = [sample_scene("heldout", rng) for _ in range(48)]
    pixels = preprocess_images([s.render() for s in scenes], 64)
    with torch.no_grad():
        decoded = vq.decode(vq.encode(pixels)).clamp(-1, 1)
    assert psnr((pixels + 1) / 2, (decoded + 1) / 2).mean() >= 29.0
    read_back = [read_scene(image) == scene for image, scene in zip(postprocess_images(decoded), scenes)]
    assert np.mean(read_back) >= 0.95


def test_reduced_quickstart_on_the_shipped_model(tmp_path):
    assert main(["quickstart", "--ci", "--output", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in KEYS:
        assert key in metrics and metrics[key] >= 0
    assert "seconds" in metrics and (tmp_path / "report.html").stat().st_size > 1000
    assert metrics["evaluator_accuracy"] >= 0.99


def test_missing_shipped_model_is_a_clear_error(monkeypatch, tmp_path):
    from showo import pipeline as shipped

    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="quickstart --retrain"):
        shipped.shipped_model_dir()
    assert SHIPPED_DIR.name == "world"
