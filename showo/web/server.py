"""``showo serve``: the web demo, hardened for a shared machine.

``build_app(pipe, limits)`` makes the gradio page (tabs in ``web_ui``, the work in
``web_tasks``, the bounds in ``web_limits``); ``launch`` starts it with the server-side
settings; ``serve`` does both for a model folder. By default the server listens on
127.0.0.1 only, takes uploads up to ``Limits.max_upload_bytes`` and other request bodies up
to ``Limits.max_request_bytes`` (``RequestGuard``), runs one model call at a time with a
bounded queue, serves no file outside its own temporary folder, has no monitoring page, and
removes that folder when it stops, on SIGTERM and SIGINT too.

This module imports gradio only when an app is built, so ``showo --help`` works without it.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

import torch

from ..pipeline import ShowoPipeline, shipped_model_dir
from .limits import Limits, check_body_size

log = logging.getLogger("showo.web")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# The model's pictures are small (64x64 for the built-in world): show them large and sharp.
# Every picture is shown whole (tests/test_web_browser.py measures it): the gallery takes the height
# of its pictures (gradio's scrolls at a fixed height, cropping one large picture to its top and
# hiding all rows but the first), at most 440 px wide: one picture large, two to four two a row.
# The label of a gallery, an image or a chat floats over its top left and its buttons over its top
# right: pictures and the chat history start below them.
CSS = """
.pixelated img, .pixelated canvas { image-rendering: pixelated; }
.pixelated .image-frame img { object-fit: contain !important; }
.fit-gallery { height: auto !important; }
.fit-gallery .grid-wrap { height: auto !important; min-height: 0 !important; max-height: none !important;
  overflow: visible !important; padding: 40px var(--size-2) var(--size-2) !important; }
.fit-gallery .grid-container { max-width: 440px; margin: 0 auto; padding-top: 0 !important;
  grid-template-columns: repeat(var(--grid-cols), minmax(0, 1fr)) !important; grid-template-rows: none !important;
  grid-auto-rows: auto !important; }
.fit-gallery .thumbnail-item { aspect-ratio: 1 / 1; height: auto !important; border-radius: 0 !important; }
.fit-gallery .thumbnail-item img { object-fit: contain !important; border-radius: 0 !important; }
.below-label .image-container { padding-top: 40px; box-sizing: border-box; }
.fit-strip .image-frame { width: 100%; height: auto !important; }
.fit-strip .image-frame img { width: 100%; height: auto !important; max-height: 320px; }
.chat-pictures .message .image-frame img { width: min(160px, 40vw) !important; height: auto !important;
  aspect-ratio: 1 / 1; object-fit: contain !important; }
.below-toolbar .bubble-wrap { margin-top: 40px; height: calc(100% - 40px) !important; padding-top: var(--spacing-md); }
.below-toolbar > [data-testid=status-tracker]:has(> .error) { display: none !important; }
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
    """Start the server; with ``block=False`` return at once (tests, notebooks).

    A blocking server stops on SIGTERM and SIGINT through ``stop_on_signals``; one that does
    not block leaves the signal handlers of its process alone."""
    from starlette.middleware import Middleware  # gradio's web framework, installed with it

    if os.environ.pop("GRADIO_ALLOWED_PATHS", None):
        log.warning("ignoring GRADIO_ALLOWED_PATHS: the demo serves no files outside its own temp folder")
    if host not in LOOPBACK:
        print(f"showo serve: listening on {host}, reachable from other machines", file=sys.stderr)
    previous = stop_on_signals(demo) if block else {}
    try:
        demo.launch(
            server_name=host, server_port=port, max_file_size=limits.max_upload_bytes, show_error=False,
            prevent_thread_lock=True, share=False, inbrowser=False, ssr_mode=False, mcp_server=False,
            run_history=False, footer_links=["api"], css=CSS, quiet=True, enable_monitoring=False,
            app_kwargs={"middleware": [Middleware(RequestGuard, limits=limits, demo=demo)]},
        )
        if block:
            print(f"showo serve: {demo.local_url} (Ctrl+C to stop)", file=sys.stderr)
            demo.block_thread()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return demo


def stop_on_signals(demo) -> dict:
    """On SIGTERM or SIGINT: close the server, then exit with 128 + the signal's number. Returns
    the handlers it replaced, for ``launch`` to put back when it returns.

    A signal's default action ends the process without the ``atexit`` clean-up that removes
    ``build_app``'s temporary folder (uploads, results); exiting through ``SystemExit`` runs it.
    A second signal while the server closes takes the default action. Only the main thread can
    set signal handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def stop(signum, frame):
        for each in (signal.SIGTERM, signal.SIGINT):
            signal.signal(each, signal.SIG_DFL)
        print(f"showo serve: {signal.Signals(signum).name}, stopping", file=sys.stderr)
        try:
            demo.close()
        finally:
            raise SystemExit(128 + signum)

    return {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}


def serve(model_dir: str | Path | None = None, host: str = "127.0.0.1", port: int = 7860,
          limits: Limits = Limits(), device: str = "cpu", dtype: str | torch.dtype | None = "auto",
          block: bool = True, adapter: str | Path | None = None):
    """Load the pipeline in ``model_dir`` (default: the shipped model) on ``device`` in ``dtype``
    (``ShowoPipeline.from_pretrained``'s ``torch_dtype``: ``"auto"`` is bf16 where the hardware runs
    it fast; the examples hold in both fp32 and bf16), with the LoRA ``adapter`` folder on it when
    given, and serve the demo."""
    pipe = ShowoPipeline.from_pretrained(model_dir or shipped_model_dir(), device=device, torch_dtype=dtype)
    if adapter is not None:
        pipe.load_adapter(adapter)
    return launch(build_app(pipe, limits), limits, host, port, block)


# -- the guard in front of gradio's routes --------------------------------------------------------
API_PREFIX = "/gradio_api"
UPLOAD_ROUTES = ("upload", "component_server", "process_recording")  # take multipart forms with files
MONITORING = "/monitoring"  # gradio's traffic dashboard and the routes that hand out its key


class RequestGuard:
    """ASGI middleware on the app that gradio makes (``launch`` passes it in ``app_kwargs``).

    * Every request body is bounded by ``Limits.max_body_bytes``: one declared longer by its
      Content-Length is refused with 413 before a byte of it is read, one sent without a length
      as soon as it passes the bound (the server then discards the rest as it arrives).
    * A call of a function or an endpoint that the app does not have (an unknown ``fn_index``,
      API name or component id, which gradio answers with a 500) is refused with 404.
    * The monitoring routes answer 404 (``launch`` turns monitoring off too).
    Each refusal is JSON ``{"detail": message}`` like FastAPI's own errors."""

    def __init__(self, app, limits: Limits, demo) -> None:
        self.app, self.limits, self.demo = app, limits, demo

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, root = scope["path"], scope.get("root_path", "")
        path = path[len(root):] if root and path.startswith(root) else path
        route = path[len(API_PREFIX):].strip("/").split("/") if path.startswith(API_PREFIX + "/") else []
        upload = bool(route) and route[0] in UPLOAD_ROUTES
        exchange = _Exchange(receive, send, self.limits.max_body_bytes(upload))
        if path == MONITORING or path.startswith(MONITORING + "/"):
            await exchange.refuse(404, "Not Found")
            return
        try:
            check_body_size(_content_length(scope), exchange.limit)
        except ValueError as e:
            await exchange.refuse(413, str(e))
            return
        problem = await self._unknown_function(scope, route, exchange)
        if problem:
            await exchange.refuse(404, problem)
        if exchange.refused:  # for that, or for a body that was read ahead and is too long
            return
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except Exception:
            if not exchange.refused:  # refused mid-body, the app saw a disconnect and may complain
                raise

    async def _unknown_function(self, scope, route: list[str], exchange: _Exchange) -> str | None:
        """What the request names that the app does not have, or None."""
        method = scope["method"]
        if method == "GET" and len(route) == 3 and route[0] == "call":  # /call/{api_name}/{event_id}
            return self._unknown_name(route[1])
        if method != "POST" or not route:
            return None
        if route[0] == "call" and len(route) in (2, 3):  # /call/{api_name}, /call/v2/{api_name}
            return self._unknown_name(route[-1]) if len(route) == 2 or route[1] == "v2" else None
        json_body = not _header(scope, b"content-type").startswith("multipart/")
        if not (route == ["queue", "join"] or (route[0] in ("run", "api") and len(route) == 2)
                or (route == ["component_server"] and json_body)):
            return None
        body = await exchange.read_json()
        if not isinstance(body, dict):
            return None  # not JSON (gradio's validation answers) or too long (refused)
        if route[0] == "component_server":
            component = _as_int(body.get("component_id"))
            known = component is None or component in self.demo.blocks
            return None if known else f"this page has no component {component}"
        fn_index = _as_int(body.get("fn_index"))
        if fn_index is not None:
            return None if fn_index in self.demo.fns else f"this server has no function with fn_index {fn_index}"
        return self._unknown_name(route[1]) if route[0] in ("run", "api") else None

    def _unknown_name(self, name: str) -> str | None:
        names = {fn.api_name for fn in self.demo.fns.values() if isinstance(fn.api_name, str)}
        return None if name in names else f"this server has no API endpoint /{name}"


class _Exchange:
    """One request as ``RequestGuard`` sees it: its body counted against ``limit`` (and, when the
    guard must look inside, read ahead and replayed to the app), its reply watched."""

    def __init__(self, receive, send, limit: int) -> None:
        self._receive, self._send, self.limit = receive, send, limit
        self.received = 0
        self.started = False  # the reply has begun
        self.refused = False  # the guard replied; whatever the app sends is dropped
        self.ahead: list[dict] = []  # body messages read ahead, replayed to the app

    async def receive(self) -> dict:
        """What the app reads: the messages read ahead, then the rest of the body, counted."""
        return self.ahead.pop(0) if self.ahead else await self._counted()

    async def _counted(self) -> dict:
        if self.refused:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            try:
                check_body_size(self.received, self.limit, declared=False)
            except ValueError as e:
                await self.refuse(413, str(e))
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: dict) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)

    async def refuse(self, status: int, detail: str) -> None:
        """Reply ``status`` with ``detail`` unless a reply has begun (then it is cut short)."""
        if self.refused:
            return
        self.refused = True
        if self.started:
            return
        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})

    async def read_json(self):
        """The whole body (within the limit) parsed as JSON, kept to be replayed; None when it is
        not JSON or was refused."""
        chunks = []
        while True:
            message = await self._counted()
            if self.refused or message["type"] != "http.request":
                return None
            self.ahead.append(message)
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        try:
            return json.loads(b"".join(chunks))
        except ValueError:
            return None


def _header(scope, name: bytes) -> str:
    """The value of header ``name`` (lower case), or ""."""
    return next((value.decode("latin-1") for key, value in scope.get("headers", []) if key.lower() == name), "")


def _content_length(scope) -> int:
    """The declared length of the body; 0 when there is none (the body is counted as it arrives)."""
    value = _header(scope, b"content-length").strip()
    return int(value) if value.isdigit() else 0


def _as_int(value) -> int | None:
    """``value`` as the int that gradio's request models would read from it, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)
    return None
