"""Where the model shipped with the package lives (trained on the built-in synthetic world)."""

from __future__ import annotations

from pathlib import Path

SHIPPED_DIR = Path(__file__).parents[1] / "weights" / "world"


def shipped_model_dir() -> Path:
    """The folder of the shipped pipeline; a clear error when it has not been put there."""
    if not (SHIPPED_DIR / "config.json").is_file():
        raise FileNotFoundError(
            f"no shipped model at {SHIPPED_DIR} (config.json is missing): "
            "train one with `showo quickstart --retrain` or pass --model DIR"
        )
    return SHIPPED_DIR
