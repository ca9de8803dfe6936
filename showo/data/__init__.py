"""Streaming, shardable, exactly resumable training data (see ``stream.py`` for the contract).

Every source yields dict samples:
``{"kind": "t2i", "caption", "image" | "codes", "source"}``,
``{"kind": "class", "label", "class_name", "image" | "codes", "source"}``,
``{"kind": "lm", "text", "source"}``,
``{"kind": "mmu", "image" | "codes", "turns": [(question, answer), ...], "source"}``,
``{"kind": "interleaved", "segments": [str | PIL.Image | codes, ...], "source"}``.
"""

from .image_folder import ImageFolderSource
from .interleaved import InterleavedSource
from .llava import LlavaSource
from .pre_encode import pre_encode
from .sources import SOURCE_TYPES, Mixture, build_source
from .stream import BadSample, BadSampleWarning, Source, StreamingSource
from .text import TextSource
from .token_shards import TokenShardSource
from .webdataset import WebDatasetSource

__all__ = [
    "SOURCE_TYPES",
    "BadSample",
    "BadSampleWarning",
    "ImageFolderSource",
    "InterleavedSource",
    "LlavaSource",
    "Mixture",
    "Source",
    "StreamingSource",
    "TextSource",
    "TokenShardSource",
    "WebDatasetSource",
    "build_source",
    "pre_encode",
]
