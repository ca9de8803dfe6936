"""showo: Show-o, one transformer for multimodal understanding and generation.

The package is layered, each layer importing only from those below it (import-linter checks
it): ``model`` (token layout, configs, transformer, image and text tokenizers, checkpoint files)
at the bottom; ``generation`` (prompts, sampler, generators); ``world`` (the built-in data set);
the pipeline and ``data``; ``training``; ``evaluation`` and ``web``; ``cli`` on top.
"""

from .generation import (
    GenerationConfig,
    generate_image_tokens,
    generate_mixed,
    generate_text,
    lm_prompt,
    mmu_prompt,
    t2i_prompt,
)
from .model import (
    SPECIAL_TOKENS,
    KVCache,
    MagvitConfig,
    MagvitV2,
    PhiConfig,
    ShowoConfig,
    ShowoModel,
    TextTokenizer,
    TokenLayout,
    load_image,
    magvit_preset,
    omni_attention_mask,
    postprocess_images,
    preprocess_image,
    preprocess_images,
    showo_preset,
)
from .pipeline import ShowoPipeline, shipped_model_dir

__all__ = [
    "SPECIAL_TOKENS",
    "GenerationConfig",
    "KVCache",
    "MagvitConfig",
    "MagvitV2",
    "PhiConfig",
    "ShowoConfig",
    "ShowoModel",
    "ShowoPipeline",
    "TextTokenizer",
    "TokenLayout",
    "generate_image_tokens",
    "generate_mixed",
    "generate_text",
    "lm_prompt",
    "load_image",
    "magvit_preset",
    "mmu_prompt",
    "omni_attention_mask",
    "postprocess_images",
    "preprocess_image",
    "preprocess_images",
    "shipped_model_dir",
    "showo_preset",
    "t2i_prompt",
]
__version__ = "0.1.0"
