"""The web demo under abuse: one test per defect that a stress pass of the running server found.

Each test talks to a real server on 127.0.0.1 (in this process, or ``serve`` in a child process
where the test needs the server's own memory or its signals), checks that the reply names the
problem, and that nothing was lost or left behind."""

import json
import signal
import time
import uuid
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.filterwarnings("ignore:.*no_silent_downcasting", "ignore:The copy keyword is deprecated")
gr = pytest.importorskip("gradio")
pytest.importorskip("gradio_client")
import httpx
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from showo.web.limits import MB, Limits
from showo.web.tasks import draw_scene

LIMITS = Limits(max_steps=4, max_batch=2, max_new_tokens=8, max_images=2, max_upload_bytes=256 * 1024,
                max_request_bytes=256 * 1024, max_image_side=512, max_image_pixels=512 * 512)
BODY = 32 * MB  # the over-limit bodies sent to the child server (its bounds: 1 MB, and 8 MB for an upload)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from web_server import running_demo

    with running_demo(LIMITS, tmp_path_factory.mktemp("web")) as demo:
        yield demo


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scene") / "scene.png"
    draw_scene([("circle", "red", (0.25, 0.25))]).save(path)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_pipeline) -> Path:
    folder = tmp_path_factory.mktemp("served") / "model"
    tiny_pipeline.save_pretrained(folder)
    return folder


def fn_index(demo, name: str) -> int:
    """The fn_index of the event with this API name (or, for "page only", of one with no Python function)."""
    return next(i for i, fn in demo.fns.items() if (fn.api_name == name if name != "page only" else not fn.fn))


def upload(url: str, path: Path) -> dict:
    """Upload ``path`` and return the file reference that a request sends for it."""
    with open(path, "rb") as f:
        response = httpx.post(f"{url}gradio_api/upload", files={"files": (path.name, f, "image/png")}, timeout=30)
    assert response.status_code == 200, response.text
    return {"path": response.json()[0], "meta": {"_type": "gradio.FileData"}}


def run_event(url: str, index: int, data: list, timeout: float = 60) -> dict:
    """Join the queue with one event and return its ``process_completed`` message (the SSE stream
    is read for at most ``timeout`` seconds)."""
    session = uuid.uuid4().hex
    joined = httpx.post(f"{url}gradio_api/queue/join", json={"data": data, "fn_index": index, "session_hash": session})
    assert joined.status_code == 200, joined.text
    deadline = time.monotonic() + timeout
    with httpx.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": session}, timeout=timeout) as r:
        for line in r.iter_lines():
            assert time.monotonic() < deadline, "no reply in time"
            if line.startswith("data:") and (message := json.loads(line[5:]))["msg"] == "process_completed":
                return message
    raise AssertionError("the stream ended without a reply")


def caption_works(url: str, index: int, scene: Path) -> bool:
    message = run_event(url, index, [upload(url, scene), 4])
    return message["success"] and isinstance(message["output"]["data"][0], str)


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) * 1024


def chunks(total: int, piece: bytes = b" " * (1 << 16)):
    """``total`` bytes as a stream without a Content-Length (chunked), never held whole."""
    for _ in range(total // len(piece)):
        yield piece


def multipart_files(total: int, file_size: int = 6 * MB, boundary: str = "showo-test"):
    """A multipart upload of files of ``file_size`` (each within the per-file bound) adding up to
    ``total``, streamed without a Content-Length."""
    piece = b"\0" * (1 << 16)
    for n in range(total // file_size):
        yield (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="f{n}.png"\r\n'
               "Content-Type: image/png\r\n\r\n").encode()
        for _ in range(file_size // len(piece)):
            yield piece
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


# -- 1. request bodies of any size --------------------------------------------------------------
def over_limit(url: str, size: int) -> list[httpx.Response]:
    """Send ``size`` bytes three ways: JSON with a Content-Length, JSON streamed without one, and
    an upload of several files (each within the per-file bound) streamed without one."""
    join, headers = f"{url}gradio_api/queue/join", {"content-type": "application/json"}
    return [httpx.post(join, content=b" " * size, headers=headers, timeout=60),
            httpx.post(join, content=chunks(size), headers=headers, timeout=60),
            httpx.post(f"{url}gradio_api/upload", content=multipart_files(size), timeout=60,
                       headers={"content-type": "multipart/form-data; boundary=showo-test"})]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's memory from /proc")
def test_request_bodies_are_bounded(model_dir, scene, tmp_path):
    """Was: a 200 MB body to /queue/join got 200 and the server kept +420 MB."""
    from web_server import serving_process

    (tmp_path / "tmp").mkdir()
    with serving_process(model_dir, tmp_path / "tmp", tmp_path / "server.log") as (process, url):
        client = Client(url, verbose=False)
        assert client.predict(handle_file(scene), 4, api_name="/caption")
        assert [r.status_code for r in over_limit(url, 12 * MB)] == [413] * 3  # warm: the code of a refusal
        before = rss_bytes(process.pid)
        declared, streamed, files = over_limit(url, BODY)
        grown = rss_bytes(process.pid) - before
        assert [declared.status_code, streamed.status_code, files.status_code] == [413] * 3
        assert declared.json()["detail"] == "the request body is 32.0 MB; this server takes at most 1.0 MB here"
        assert streamed.json()["detail"] == ("the request body is over 1.0 MB and still coming; "
                                             "this server takes at most 1.0 MB here")
        assert files.json()["detail"] == ("the request body is over 8.1 MB and still coming; "
                                          "this server takes at most 8.1 MB here")
        assert grown < BODY // 4, f"the server grew by {grown / MB:.1f} MB"
        assert client.predict(handle_file(scene), 4, api_name="/caption")  # it still serves
        small = httpx.post(f"{url}gradio_api/queue/join", json={"data": [], "fn_index": 0, "session_hash": "s"})
        assert small.status_code == 200 and small.json()["event_id"]
    assert not list((tmp_path / "tmp").glob("showo-web-*"))  # stopped with SIGTERM: no upload left


# -- 2. /monitoring ---------------------------------------------------------------------------
def test_monitoring_is_off_and_prints_no_key(demo, capfd):
    """Was: /monitoring answered and printed the dashboard's key into the server's log."""
    key = demo.app.analytics_key
    for path in ["monitoring", "monitoring/", "monitoring/summary", f"monitoring/{key}",
                 f"monitoring/{key}/dashboard"]:
        response = httpx.get(f"{demo.local_url}{path}")
        assert response.status_code == 404 and response.json() == {"detail": "Not Found"}, path
    log = "".join(capfd.readouterr())
    assert key not in log and "Monitoring URL" not in log
    assert demo.enable_monitoring is False
    assert httpx.get(f"{demo.local_url}config").status_code == 200


# -- 3. unknown functions and endpoints ---------------------------------------------------------
@pytest.mark.parametrize("method, path, body, detail", [
    ("POST", "queue/join", {"data": [], "fn_index": 999, "session_hash": "s"}, "no function with fn_index 999"),
    ("POST", "queue/join", {"data": [], "fn_index": -1, "session_hash": "s"}, "no function with fn_index -1"),
    ("POST", "queue/join", {"data": [], "fn_index": "999", "session_hash": "s"}, "no function with fn_index 999"),
    ("POST", "run/predict", {"data": [], "fn_index": 999}, "no function with fn_index 999"),
    ("POST", "run/nope", {"data": []}, "no API endpoint /nope"),
    ("POST", "api/nope", {"data": []}, "no API endpoint /nope"),
    ("POST", "call/nope", {"data": []}, "no API endpoint /nope"),
    ("POST", "call/v2/nope", {}, "no API endpoint /nope"),
    ("GET", "call/nope/123", None, "no API endpoint /nope"),
    ("POST", "component_server", {"data": 1, "component_id": 999, "session_hash": "s", "fn_name": "x"},
     "no component 999"),
])
def test_unknown_functions_and_endpoints_get_404(demo, scene, method, path, body, detail):
    """Was: an unknown fn_index (and API name, component id) got HTTP 500."""
    response = httpx.request(method, f"{demo.local_url}gradio_api/{path}", json=body, timeout=30)
    assert response.status_code == 404 and detail in response.json()["detail"]
    assert caption_works(demo.local_url, fn_index(demo, "caption"), scene)  # nothing else was disturbed


# -- 4. error messages "None" -------------------------------------------------------------------
@pytest.mark.parametrize("event, data, message", [
    ("text_to_image", ["a"], "text_to_image takes 5 inputs (Prompt, Steps, Guidance scale, Seed, Images); "
                             "the request has 1"),
    ("text_to_image", ["a", "many", 1.0, 0, 1], "Steps: expected a number, got &#x27;many&#x27;"),
    ("text_to_image", [None] * 5, "Steps: expected a number, got None"),
    ("text_to_image", ["a", 2, "x", 0, 1], "Guidance scale: expected a number"),
    ("caption", ["notafile", 4], "Image: expected an uploaded image"),
    ("caption", ["OUTSIDE", 4], "a file in the request was not uploaded to this server"),
    ("answer", ["SCENE", "q", "hist", 4], "Chat about the image: expected a list of chat messages"),
    ("answer", ["SCENE", "q", [{"role": "x"}], 4], "expected a list of chat messages"),
    ("inpaint", [{"background": 5}, "a", 2, 1.0, 0], "expected an editor value"),
    ("load_example", ["abc"], "Examples: expected the index of an example, got &#x27;abc&#x27;"),
    ("load_example", [99], "Examples: expected the index of an example, got 99"),
    ("page only", [], "runs in the page only; the server has nothing to run"),
])
def test_every_error_says_what_happened(demo, scene, event, data, message):
    """Was: 17 of 67 error replies carried the message None (gradio's own failures, with show_error=False)."""
    url = demo.local_url
    files = {"SCENE": lambda: upload(url, scene),  # an uploaded image, and one on the server that was not uploaded
             "OUTSIDE": lambda: {"path": str(scene), "meta": {"_type": "gradio.FileData"}}}
    data = [files[value]() if isinstance(value, str) and value in files else value for value in data]
    reply = run_event(url, fn_index(demo, event), data)
    assert reply["success"] is False
    error = reply["output"]["error"]
    assert isinstance(error, str) and message in error
    temp_dir = next(iter(demo.blocks.values())).GRADIO_CACHE
    for internals in ["Traceback", " object at 0x", "gradio.", "Error:", temp_dir]:
        assert internals not in error
    assert caption_works(url, fn_index(demo, "caption"), scene)


def test_gradio_client_shows_the_message(demo):
    client = Client(demo.local_url, verbose=False)
    with pytest.raises(AppError, match="Steps: expected a number"):
        client.predict("a", "many", 1.0, 0, 1, api_name="/text_to_image")


# -- 5. temporary folders left after SIGTERM ------------------------------------------------------
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signals_stop_the_server_and_remove_its_temp_folder(model_dir, scene, tmp_path, signum):
    """Was: the temp folder (uploads, results) was removed by atexit only on a normal exit."""
    from web_server import serving_process

    temp_root = tmp_path / "tmp"
    temp_root.mkdir()
    with serving_process(model_dir, temp_root, tmp_path / "server.log") as (process, url):
        uploaded = Path(upload(url, scene)["path"])
        [folder] = temp_root.glob("showo-web-*")
        assert uploaded.is_file() and uploaded.is_relative_to(folder.resolve())
        process.send_signal(signum)
        assert process.wait(timeout=60) == 128 + signum
    assert not folder.exists() and not list(temp_root.glob("showo-web-*"))
    assert f"{signum.name}, stopping" in (tmp_path / "server.log").read_text()


def test_a_server_that_does_not_block_leaves_the_signal_handlers_alone(demo):
    for signum in (signal.SIGTERM, signal.SIGINT):
        assert "stop_on_signals" not in getattr(signal.getsignal(signum), "__qualname__", "")


# -- found on the way: any path on the server -------------------------------------------------------
def test_files_that_were_not_uploaded_are_refused(demo, scene, tmp_path):
    """A file reference without gradio's meta tag named any path, and the model read the image there."""
    outside = tmp_path / "outside.png"
    Image.new("RGB", (64, 64), "red").save(outside)
    url = demo.local_url
    tagged = {"path": str(outside), "meta": {"_type": "gradio.FileData"}}
    for event, data, message in [
        ("caption", [{"path": str(outside)}, 4], "the image was not uploaded to this server"),
        ("extrapolate", [{"path": str(outside)}, "a", "right", 2, 1.0, 0], "the image was not uploaded to this server"),
        ("caption", [tagged, 4], "a file in the request was not uploaded to this server"),  # gradio's own check
        ("inpaint", [{"background": tagged, "layers": [], "composite": None}, "a", 2, 1.0, 0],
         "a file in the request was not uploaded to this server"),
        ("inpaint", [{"background": {"path": str(outside)}, "layers": [], "composite": None}, "a", 2, 1.0, 0],
         "expected an editor value"),  # gradio requires the tag inside the editor's value
    ]:
        reply = run_event(url, fn_index(demo, event), data)
        assert reply["success"] is False and message in reply["output"]["error"], event
    assert caption_works(url, fn_index(demo, "caption"), scene)
