"""The real app server on 127.0.0.1: Gradio API, REST routes, errors, load, and a real browser."""

import os
import re
import select
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from tests.conftest import ROOT, write

MAX_UPLOAD_MB = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(models, tmp, **settings):
    """A real `python app.py` on a free port; returns url, tmp, proc and its log file."""
    port = free_port()
    env = {**os.environ, "INSTREC_MODELS": str(models), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_SERVER_PORT": str(port), "INSTREC_MAX_UPLOAD_MB": str(MAX_UPLOAD_MB), "TMPDIR": str(tmp),
           "GRADIO_TEMP_DIR": str(tmp / "gradio"), "GRADIO_ANALYTICS_ENABLED": "False",
           **{k: str(v) for k, v in settings.items()}}
    log = tmp / "server.log"
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=open(log, "w"),
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited with {proc.returncode}: {log.read_text()[-3000:]}")
        if f"ready at {url}" in log.read_text():
            break
        time.sleep(0.3)
    else:
        proc.kill()
        raise RuntimeError("app did not start in 180 s")
    return {"url": url, "tmp": tmp, "proc": proc, "log": log}


def stop(server):
    server["proc"].terminate()
    server["proc"].wait(timeout=30)


@pytest.fixture(scope="module")
def server(tiny_models, tmp_path_factory):
    server = start_server(tiny_models, tmp_path_factory.mktemp("server-tmp"), INSTREC_QUEUE=64)
    yield server
    stop(server)


@pytest.fixture(scope="module")
def clip(tiny_corpus):
    return sorted((tiny_corpus / "test").glob("*.wav"))[0]


def test_startup_line_and_quiet_errors(server):
    lines = server["log"].read_text().splitlines()
    ready = [line for line in lines if "instrec ready at" in line]
    assert len(ready) == 1 and server["url"] in ready[0]
    assert "CPUExecutionProvider" in ready[0] or "CUDAExecutionProvider" in ready[0]


def test_health(server):
    r = httpx.get(f"{server['url']}/api/health")
    body = r.json()
    assert r.status_code == 200 and body["status"] == "ok" and body["provider"] in ("CPUExecutionProvider", "CUDAExecutionProvider")
    assert set(body["models"]) == {"mel", "modgd", "cqt"} and body["classes"][0] == "cel"
    assert body["min_seconds"] == 0.15 and body["max_seconds"] > 0  # the limits a client can plan for


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
    before = server["log"].read_text().count("\n")
    r = httpx.post(f"{server['url']}/api/predict", timeout=30)
    assert r.status_code == 400 and "no file" in r.json()["error"] and r.json()["kind"] == "no_input"
    r = httpx.post(f"{server['url']}/api/predict", data={"other": "field"}, files={"notfile": ("a.wav", b"x")})
    assert r.status_code == 400 and r.json()["kind"] == "no_input"
    r = httpx.get(f"{server['url']}/api/predict")
    assert r.status_code == 405 and r.headers["allow"] == "POST" and "POST" in r.json()["error"]
    r = post(server, "big.wav", b"\0" * (MAX_UPLOAD_MB * 1024 * 1024 + 10))
    assert r.status_code == 413 and "larger than" in r.json()["error"] and r.json()["kind"] == "too_large"
    r = post(server, "notes.wav", b"these are not samples" * 50)
    assert r.status_code == 415 and "not a readable audio file" in r.json()["error"] and r.json()["kind"] == "not_audio"
    assert "instrec-" not in r.json()["error"]  # the server's paths are never shown
    r = post(server, "empty.mp3", b"")
    assert r.status_code == 415 and r.json()["kind"] == "empty"
    # a silent file whose name says "empty" is still unusable, not undecodable
    silent = write(tmp_path / "s.wav", np.zeros(22050, np.float32)).read_bytes()
    r = post(server, "empty_room.wav", silent)
    assert r.status_code == 422 and "silent" in r.json()["error"] and r.json()["kind"] == "unusable"
    nan = np.ones(22050, np.float32)
    nan[5] = np.nan
    r = post(server, "nan.wav", write(tmp_path / "n.wav", nan, subtype="FLOAT").read_bytes())
    assert r.status_code == 422 and "NaN" in r.json()["error"]
    r = post(server, "blip.wav", write(tmp_path / "b.wav", np.ones(2205, np.float32) * 0.5).read_bytes())
    assert r.status_code == 422 and "under the minimum" in r.json()["error"] and r.json()["kind"] == "too_short"
    # the uploaded name is shown back as a base name and never used as a path
    r = post(server, "../../../etc/evil.wav", b"junk" * 10)
    assert r.json()["file"] == "evil.wav"
    assert not (ROOT.parent / "etc" / "evil.wav").exists()
    assert httpx.get(f"{server['url']}/api/health").status_code == 200
    # each refusal is one log line, without a traceback
    new_lines = server["log"].read_text().splitlines()[before:]
    assert "Traceback" not in "\n".join(new_lines)
    assert sum("refused" in line for line in new_lines) >= 8


def raw_request(server, head: bytes, body_chunks, limit_bytes: int) -> tuple[bytes, int]:
    """Send a request by hand, body chunk by chunk, stopping as soon as the server answers.
    Returns (the answer's first bytes, body bytes sent)."""
    host, port = server["url"].removeprefix("http://").split(":")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        for chunk in body_chunks:
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
            if sent > limit_bytes:
                break
        sock.settimeout(30)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < int(
                re.search(rb"content-length: (\d+)", answer, re.I).group(1)):
            more = sock.recv(4096)
            if not more:
                break
            answer += more
        return answer, sent


def test_upload_limits_while_streaming(server):
    limit = MAX_UPLOAD_MB * 1024 * 1024
    head = (f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b0\r\n"
            f"Content-Length: {1 << 30}\r\n\r\n").encode()
    answer, sent = raw_request(server, head, [], 0)  # a declared 1 GB: refused before any body is sent
    assert answer.startswith(b"HTTP/1.1 413") and sent == 0
    # no Content-Length: the body is read as it comes and cut at the limit, long before 1 GB
    head = (b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b0\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    part = b"--b0\r\nContent-Disposition: form-data; name=\"file\"; filename=\"huge.wav\"\r\n\r\n"
    block = b"\0" * (1 << 16)

    def chunks():
        yield b"%x\r\n%s\r\n" % (len(part), part)
        for _ in range(1 << 14):  # up to 1 GiB
            yield b"%x\r\n%s\r\n" % (len(block), block)

    answer, sent = raw_request(server, head, chunks(), 1 << 30)
    assert answer.startswith(b"HTTP/1.1 413") and b"too_large" in answer
    assert sent < 20 * limit  # stopped by the server near the limit (plus socket buffers), not by the client
    assert not list(server["tmp"].glob("instrec-*"))


def test_gradio_api_error_is_json(server, tmp_path):
    from gradio_client import Client, handle_file

    silent = write(tmp_path / "quiet.wav", np.zeros(22050, np.float32))
    answer = Client(server["url"], verbose=False).predict(handle_file(str(silent)), api_name="/predict")
    assert answer["file"] == "quiet.wav" and "silent" in answer["error"] and answer["kind"] == "unusable"


def test_temporary_files_removed(server, clip):
    with open(clip, "rb") as f:
        assert post(server, clip.name, f.read()).status_code == 200
    assert not list(server["tmp"].glob("instrec-*"))


def test_fifty_mixed_concurrent_requests(server, tiny_corpus, recognizer, tmp_path):
    from gradio_client import Client, handle_file

    clips = []  # five different 4-s excerpts of the corpus, under the upload limit
    for k, f in enumerate(sorted(tiny_corpus.rglob("*.wav"))[:5]):
        y, sr = sf.read(str(f), frames=4 * 22050, start=k * 11025, dtype="float32")
        clips.append(write(tmp_path / f"mix{k}.wav", y, sr=sr, subtype="PCM_16"))
    expected = {c.name: recognizer.predict(c).to_dict() for c in clips}
    clients = [Client(server["url"], verbose=False) for _ in range(5)]

    def one(i):
        c = clips[i % len(clips)]
        if i % 2:
            r = post(server, c.name, c.read_bytes(), timeout=600)
            assert r.status_code == 200, r.text
            return c.name, r.json()
        return c.name, clients[i % len(clients)].predict(handle_file(str(c)), api_name="/predict")

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(one, range(50)))
    for name, answer in answers:
        assert answer["file"] == name
        assert answer["scores"] == expected[name]["scores"] and answer["timeline"] == expected[name]["timeline"]
    assert server["proc"].poll() is None
    assert httpx.get(f"{server['url']}/api/health").status_code == 200


def test_full_queue_answers_503_and_page_uploads_are_cleaned(tiny_models, tiny_corpus, tmp_path):
    from gradio_client import Client, handle_file

    small = start_server(tiny_models, tmp_path, INSTREC_CONCURRENCY=1, INSTREC_QUEUE=0, INSTREC_CACHE_SECONDS=4)
    try:
        clip = sorted((tiny_corpus / "test").glob("*.wav"))[0]
        data = clip.read_bytes()
        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(lambda i: post(small, f"q{i}.wav", data, timeout=300), range(8)))
        codes = sorted(r.status_code for r in responses)
        assert codes[0] == 200 and 503 in codes and set(codes) <= {200, 503}
        busy = next(r for r in responses if r.status_code == 503)
        assert busy.headers["retry-after"] == "5" and busy.json()["kind"] == "busy"
        # a page-style upload lands in Gradio's cache, and the cache clean-up removes it
        assert "error" not in Client(small["url"], verbose=False).predict(handle_file(str(clip)), api_name="/predict")
        cache = tmp_path / "gradio"
        cached = lambda: sorted(f.name for f in cache.rglob("*") if f.is_file() and f.stat().st_size > 0)  # noqa: E731
        examples = sorted(f.name for f in (ROOT / "instrec" / "examples").glob("*.flac"))
        assert cached() == sorted([clip.name, *examples])
        deadline = time.time() + 30
        while time.time() < deadline and clip.name in cached():
            time.sleep(1)
        assert cached() == examples  # the upload is gone; the examples are kept for the page
    finally:
        stop(small)


ARTIFACTS = Path(os.environ.get("INSTREC_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))


def test_browser_upload_and_microphone(server, clip, tmp_path):
    """Headless Chromium: upload a file, then record from a fake microphone that plays a tone; each gives
    the answer in words, the ranking, a figure that loads, and the JSON. Screenshots are kept in ARTIFACTS."""
    from playwright.sync_api import sync_playwright

    sr = 48000
    t = np.arange(6 * sr) / sr
    mic = write(tmp_path / "mic.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr=sr, subtype="PCM_16")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={mic}"])
        page = browser.new_context(viewport={"width": 1280, "height": 1800}, permissions=["microphone"]).new_page()
        page.goto(server["url"], wait_until="networkidle", timeout=120_000)

        def check_answer(name: str) -> float:
            """Checks the page's answer; returns the duration it states."""
            heading = page.locator(".prose h3").first
            heading.wait_for(timeout=120_000)
            said = re.fullmatch(r"(.+), ([0-9.]+) s, on (CPU|GPU)", heading.inner_text())
            assert said, heading.inner_text()
            figure = page.locator("img[src^='data:image']").first  # gr.Plot shows the figure as an image
            figure.wait_for(timeout=60_000)
            width, height, complete = figure.evaluate("e => [e.naturalWidth, e.naturalHeight, e.complete]")
            assert complete and width > 800 and height > 800  # decoded: seven panels, not a broken icon
            text = page.inner_text("body")
            for instrument in ("cello", "voice", "electric guitar"):  # the ranking names all 11
                assert instrument in text
            assert '"instruments"' in text and '"provider"' in text  # the JSON answer
            page.screenshot(path=str(ARTIFACTS / f"app-{name}.png"), full_page=True)
            return float(said.group(2))

        page.locator("input[type=file]").first.set_input_files(str(clip))
        page.get_by_role("button", name="Recognise").click()
        assert check_answer("upload") == round(sf.info(str(clip)).duration, 1)
        first = page.locator(".prose h3").first.inner_text()

        page.get_by_role("button", name="Record audio").click()
        page.get_by_role("button", name="Record", exact=True).click()
        page.wait_for_timeout(2500)
        page.get_by_role("button", name="Stop", exact=True).click()
        page.wait_for_timeout(1000)
        page.get_by_role("button", name="Recognise").click()
        page.wait_for_function("prev => { const h = document.querySelector('.prose h3'); "
                               "return h && h.innerText !== prev; }", arg=first, timeout=120_000)
        assert 1.5 < check_answer("microphone") < 6  # the 2.5 s recorded from the fake microphone

        # too short a file: the page says why in words, and shows no answer
        blip = write(tmp_path / "blip.wav", (0.3 * np.sin(2 * np.pi * 440 * t[: sr // 10])).astype(np.float32), sr=sr)
        page.goto(server["url"], wait_until="networkidle", timeout=120_000)  # a fresh page: the recording cleared
        page.locator("input[type=file]").first.set_input_files(str(blip))
        page.get_by_role("button", name="Recognise").click()
        said = page.get_by_text("Could not analyse this audio")
        said.wait_for(timeout=120_000)
        assert "blip.wav: 0.1 s long, under the minimum of 0.15 s" in page.inner_text("body")
        assert page.locator(".prose h3").count() == 0
        page.screenshot(path=str(ARTIFACTS / "app-too-short.png"), full_page=True)
        browser.close()
    assert (ARTIFACTS / "app-microphone.png").stat().st_size > 20_000

