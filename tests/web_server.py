"""A running web demo for the web tests: a tiny random pipeline on a free 127.0.0.1 port, in
this process (``running_demo``) or as a foreground ``serve`` in a child process (``serving_process``)."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The foreground server of ``showo serve``: ``serve(model_dir, port=port)``, blocking until a signal.
SERVE = "import sys; from showo.web.server import serve; serve(sys.argv[1], port=int(sys.argv[2]))"


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


@contextlib.contextmanager
def serving_process(model_dir, temp_root, log_path, startup_s: float = 180):
    """Yield ``(process, url)`` of ``serve(model_dir)`` in a child process whose temporary folders
    go under ``temp_root`` (its TMPDIR) and whose output goes to ``log_path``, once it answers.
    After, a process that still runs gets SIGTERM (and SIGKILL if it has not stopped in 30 s)."""
    import httpx

    port = free_port()
    env = {**os.environ, "TMPDIR": str(temp_root), "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("GRADIO_TEMP_DIR", None)
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-c", SERVE, str(model_dir), str(port)], cwd=ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}:\n{Path(log_path).read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}config", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not answer in {startup_s} s:\n{Path(log_path).read_text()}")
            time.sleep(0.25)
        yield process, url
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
