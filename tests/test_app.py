"""The real app server on 127.0.0.1: Gradio API, REST routes, errors, load, and a real browser."""

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from tests.conftest import ROOT, write

MAX_UPLOAD_MB = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_models, tmp_path_factory):
    port = free_port()
    tmp = tmp_path_factory.mktemp("server-tmp")
    env = {**os.environ, "INSTREC_MODELS": str(tiny_models), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_SERVER_PORT": str(port), "INSTREC_MAX_UPLOAD_MB": str(MAX_UPLOAD_MB), "TMPDIR": str(tmp),
           "GRADIO_TEMP_DIR": str(tmp / "gradio"), "GRADIO_ANALYTICS_ENABLED": "False"}
    log = open(tmp_path_factory.mktemp("log") / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited with {proc.returncode}: {open(log.name).read()[-3000:]}")
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("app did not start in 180 s")
    yield {"url": url, "tmp": tmp, "proc": proc}
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def clip(tiny_corpus):
    return sorted((tiny_corpus / "test").glob("*.wav"))[0]


def test_health(server):
    r = httpx.get(f"{server['url']}/api/health")
    body = r.json()
    assert r.status_code == 200 and body["status"] == "ok" and body["provider"] in ("CPUExecutionProvider", "CUDAExecutionProvider")
    assert set(body["models"]) == {"mel", "modgd", "cqt"} and body["classes"][0] == "cel"


def test_gradio_client_and_rest_match_the_recognizer(server, recognizer, clip):
    from gradio_client import Client, handle_file

    expected = recognizer.predict(clip).to_dict()
    via_client = Client(server["url"], verbose=False).predict(handle_file(str(clip)), api_name="/predict")
    assert via_client["scores"] == expected["scores"] and via_client["instruments"] == expected["instruments"]
    assert via_client["file"] == clip.name
    with open(clip, "rb") as f:
        r = httpx.post(f"{server['url']}/api/predict", files={"file": (clip.name, f, "audio/wav")}, timeout=120)
    assert r.status_code == 200
    body = r.json()
    assert body["scores"] == expected["scores"] and body["timeline"] == expected["timeline"]
    assert body["file"] == clip.name


def post(server, name, data, timeout=60):
    return httpx.post(f"{server['url']}/api/predict", files={"file": (name, data)}, timeout=timeout)


def test_rest_errors(server, tmp_path):
    r = httpx.post(f"{server['url']}/api/predict", timeout=30)
    assert r.status_code == 400 and "no file" in r.json()["error"]
    r = post(server, "big.wav", b"\0" * (MAX_UPLOAD_MB * 1024 * 1024 + 10))
    assert r.status_code == 413 and "larger than" in r.json()["error"]
    r = post(server, "notes.wav", b"these are not samples" * 50)
    assert r.status_code == 415 and "not a readable audio file" in r.json()["error"]
    assert "instrec-" not in r.json()["error"]  # the server's paths are never shown
    r = post(server, "empty.mp3", b"")
    assert r.status_code == 415
    silent = write(tmp_path / "s.wav", np.zeros(22050, np.float32)).read_bytes()
    r = post(server, "s.wav", silent)
    assert r.status_code == 422 and "silent" in r.json()["error"]
    nan = np.ones(22050, np.float32)
    nan[5] = np.nan
    r = post(server, "nan.wav", write(tmp_path / "n.wav", nan, subtype="FLOAT").read_bytes())
    assert r.status_code == 422 and "NaN" in r.json()["error"]
    # the uploaded name is shown back as a base name and never used as a path
    r = post(server, "../../../etc/evil.wav", b"junk" * 10)
    assert r.json()["file"] == "evil.wav"
    assert not (ROOT.parent / "etc" / "evil.wav").exists()
    assert httpx.get(f"{server['url']}/api/health").status_code == 200


def test_gradio_api_error_is_json(server, tmp_path):
    from gradio_client import Client, handle_file

    silent = write(tmp_path / "quiet.wav", np.zeros(22050, np.float32))
    answer = Client(server["url"], verbose=False).predict(handle_file(str(silent)), api_name="/predict")
    assert answer["file"] == "quiet.wav" and "silent" in answer["error"]


def test_temporary_files_removed(server, clip):
    with open(clip, "rb") as f:
        assert post(server, clip.name, f.read()).status_code == 200
    assert not list(server["tmp"].glob("instrec-*"))


def test_twenty_concurrent_requests(server, clip, recognizer):
    data = clip.read_bytes()
    expected = recognizer.predict(clip).scores
    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda i: post(server, f"c{i}.wav", data, timeout=300), range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    assert all(r.json()["scores"] == expected for r in responses)
    assert server["proc"].poll() is None
    assert httpx.get(f"{server['url']}/api/health").status_code == 200


def test_browser_upload_shows_predictions_and_figures(server, clip, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync"])
        page = browser.new_page(viewport={"width": 1280, "height": 1800})
        page.goto(server["url"], wait_until="networkidle", timeout=120_000)
        page.locator("input[type=file]").first.set_input_files(str(clip))
        page.get_by_role("button", name="Recognise").click()
        page.get_by_text("Present:").wait_for(timeout=120_000)
        figure = page.locator("img[src^='data:image/webp']").first  # gr.Plot shows the matplotlib figure so
        figure.wait_for(timeout=60_000)
        assert figure.bounding_box()["height"] > 500  # four panels and their strips, not an icon
        text = page.inner_text("body")
        for name in ("cello (cel)", "voice (voi)", "electric guitar (gel)"):  # the ranking lists all 11
            assert name in text
        assert '"instruments"' in text and '"provider"' in text  # the JSON answer
        shot = tmp_path / "app.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 20_000
        browser.close()
