"""Training: the Show-o transformer (four flows) and the MAGVIT-v2 image tokenizer."""

from .config import TrainConfig, build_config
from .presets import PRESETS, train_preset

__all__ = ["PRESETS", "TrainConfig", "build_config", "train_preset"]
