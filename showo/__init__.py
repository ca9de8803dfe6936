"""showo: Show-o, one transformer for multimodal understanding and generation."""

from .attention import omni_attention_mask
from .config import MagvitConfig, PhiConfig, ShowoConfig, magvit_preset, showo_preset
from .kv_cache import KVCache
from .layout import SPECIAL_TOKENS, TokenLayout
from .model import ShowoModel
from .text_tokenizer import TextTokenizer

__all__ = [
    "KVCache",
    "MagvitConfig",
    "PhiConfig",
    "SPECIAL_TOKENS",
    "ShowoConfig",
    "ShowoModel",
    "TextTokenizer",
    "TokenLayout",
    "magvit_preset",
    "omni_attention_mask",
    "showo_preset",
]
__version__ = "0.1.0"
