"""The ``showo`` command (``python -m showo`` too)."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
