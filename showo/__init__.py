"""showo: Show-o, one transformer for multimodal understanding and generation."""

from .attention import omni_attention_mask
from .config import MagvitConfig, PhiConfig, ShowoConfig, magvit_preset, showo_preset
from .image_processing import load_image, postprocess_images, preprocess_image, preprocess_images
from .kv_cache import KVCache
from .layout import SPECIAL_TOKENS, TokenLayout
from .magvit2 import MagvitV2
from .model import ShowoModel
from .text_tokenizer import TextTokenizer

__all__ = [
    "KVCache",
    "MagvitConfig",
    "MagvitV2",
    "PhiConfig",
    "SPECIAL_TOKENS",
    "ShowoConfig",
    "ShowoModel",
    "TextTokenizer",
    "TokenLayout",
    "load_image",
    "magvit_preset",
    "omni_attention_mask",
    "postprocess_images",
    "preprocess_image",
    "preprocess_images",
    "showo_preset",
]
__version__ = "0.1.0"
