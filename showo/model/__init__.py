"""The model layer: token layout, configs, the transformer, its KV cache and attention mask, the
MAGVIT-v2 and CLIP image encoders, the text tokenizer, image processing and checkpoint files.

Nothing here imports from the layers above (generation, pipeline, data, training, ...).
"""

from .config import MagvitConfig, PhiConfig, ShowoConfig, magvit_preset, showo_preset
from .convert import convert_folder
from .hub import resolve_folder
from .image_processing import grid, load_image, postprocess_images, preprocess_image, preprocess_images
from .kv_cache import KVCache
from .layout import SPECIAL_TOKENS, TokenLayout
from .magvit2 import MagvitV2
from .omni_attention import omni_attention_mask
from .text_tokenizer import TextTokenizer
from .transformer import ShowoModel, check_compatible

__all__ = [
    "SPECIAL_TOKENS",
    "KVCache",
    "MagvitConfig",
    "MagvitV2",
    "PhiConfig",
    "ShowoConfig",
    "ShowoModel",
    "TextTokenizer",
    "TokenLayout",
    "check_compatible",
    "convert_folder",
    "grid",
    "load_image",
    "magvit_preset",
    "omni_attention_mask",
    "postprocess_images",
    "preprocess_image",
    "preprocess_images",
    "resolve_folder",
    "showo_preset",
]
