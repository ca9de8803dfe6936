"""The generation layer: prompts in the released layouts, the MaskGIT sampler, the image, text
and mixed-modality generators, inpainting and extrapolation on the token grid, and the
sampling defaults a model folder carries (``generation_config.json``). Built on ``showo.model``
only."""

from .generate_image import generate_image_tokens
from .generate_mixed import generate_mixed
from .generate_text import generate_text
from .generation_config import GenerationConfig
from .maskgit import MaskGITSampler
from .prompting import CAPTION_QUESTION, lm_prompt, mmu_prompt, t2i_prompt, understanding_text

__all__ = [
    "CAPTION_QUESTION",
    "GenerationConfig",
    "MaskGITSampler",
    "generate_image_tokens",
    "generate_mixed",
    "generate_text",
    "lm_prompt",
    "mmu_prompt",
    "t2i_prompt",
    "understanding_text",
]
