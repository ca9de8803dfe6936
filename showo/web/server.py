"""``showo serve``: the web demo, hardened for a shared machine.

``build_app(pipe, limits)`` makes the gradio page (tabs in ``web_ui``, the work in
``web_tasks``, the bounds in ``web_limits``); ``launch`` starts it with the server-side
settings; ``serve`` does both for a model folder. By default the server listens on
127.0.0.1 only, takes uploads up to ``Limits.max_upload_bytes``, runs one model call at a
time with a bounded queue, and serves no file outside its own temporary folder.

This module imports gradio only when an app is built, so ``showo --help`` works without it.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ..pipeline import ShowoPipeline, shipped_model_dir
from .limits import Limits

log = logging.getLogger("showo.web")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# The model's pictures are small (64x64 for the built-in world): show them large and sharp.
CSS = """
.pixelated img, .pixelated canvas { image-rendering: pixelated; }
.pixelated .image-frame img { object-fit: contain !important; }
"""


def build_app(pipe, limits: Limits = Limits(), temp_dir: str | Path | None = None):
    """The demo as a ``gr.Blocks`` with its queue set up (not launched).

    gradio reads its upload and cache folder from ``GRADIO_TEMP_DIR`` when components are
    made, so this sets that variable to ``temp_dir`` (default: a fresh folder that only this
    user can read, removed when the process exits)."""
    if temp_dir is None:
        temp_dir = Path(tempfile.mkdtemp(prefix="showo-web-"))
        atexit.register(shutil.rmtree, temp_dir, ignore_errors=True)
    temp_dir = Path(temp_dir)
    temp_dir.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(temp_dir.resolve())
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from .ui import make_blocks

    demo = make_blocks(pipe, limits, temp_dir)
    demo.queue(default_concurrency_limit=limits.concurrency, max_size=limits.queue_size, api_open=False)
    return demo


def launch(demo, limits: Limits = Limits(), host: str = "127.0.0.1", port: int = 7860, block: bool = True):
    """Start the server; with ``block=False`` return at once (tests, notebooks)."""
    if os.environ.pop("GRADIO_ALLOWED_PATHS", None):
        log.warning("ignoring GRADIO_ALLOWED_PATHS: the demo serves no files outside its own temp folder")
    if host not in LOOPBACK:
        print(f"showo serve: listening on {host}, reachable from other machines", file=sys.stderr)
    demo.launch(
        server_name=host, server_port=port, max_file_size=limits.max_upload_bytes, show_error=False,
        prevent_thread_lock=True, share=False, inbrowser=False, ssr_mode=False, mcp_server=False,
        run_history=False, footer_links=["api"], css=CSS, quiet=True,
    )
    if block:
        print(f"showo serve: {demo.local_url} (Ctrl+C to stop)", file=sys.stderr)
        demo.block_thread()
    return demo


def serve(model_dir: str | Path | None = None, host: str = "127.0.0.1", port: int = 7860,
          limits: Limits = Limits(), device: str = "cpu", block: bool = True):
    """Load the pipeline in ``model_dir`` (default: the shipped model) and serve the demo."""
    pipe = ShowoPipeline.from_pretrained(model_dir or shipped_model_dir(), device=device)
    return launch(build_app(pipe, limits), limits, host, port, block)
