"""A running web demo for the web tests: a tiny random pipeline on a free 127.0.0.1 port."""

import contextlib
import socket

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_demo(limits, temp_dir, pipe=None):
    """Yield the launched ``gr.Blocks``; the server stops and the environment is restored after."""
    from conftest import build_tiny_pipeline

    from showo.web.server import build_app, launch

    with pytest.MonkeyPatch.context() as env:
        env.setenv("GRADIO_TEMP_DIR", str(temp_dir))  # build_app sets it too; this restores it after
        env.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        demo = build_app(pipe or build_tiny_pipeline(), limits, temp_dir)
        launch(demo, limits, host="127.0.0.1", port=free_port(), block=False)
        try:
            yield demo
        finally:
            demo.close()
