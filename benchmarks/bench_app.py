"""The app server under load: latency percentiles and resident memory before and after page predictions.

    python benchmarks/bench_app.py [--page 200] [--rest 100] [--clients 4] [--seconds 8]

Starts `python app.py` (the shipped models) on a free port on 127.0.0.1, then sends ``--page``
predictions through the page's own handler (the figure included, via gradio_client) and ``--rest``
`POST /api/predict` requests, ``--clients`` at a time, with a clip of ``--seconds`` (a bundled
example). Prints p50 / p95 / max latency of each route, the time from starting the server to its "ready"
line, and the server's resident memory after start-up,
after the page predictions and at the end: memory that stays flat means figures and uploads are freed.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

from instrec import runtime

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "instrec" / "examples" / "piano.flac"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentiles(times: list[float]) -> str:
    q = statistics.quantiles(times, n=20, method="inclusive")  # within the data, however few the requests
    return f"p50 {1000 * statistics.median(times):6.0f} ms   p95 {1000 * q[18]:6.0f} ms   max {1000 * max(times):6.0f} ms"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--page", type=int, default=200)
    ap.add_argument("--rest", type=int, default=100)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args(argv)
    from gradio_client import Client, handle_file

    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_TEMP_DIR": str(Path(tmp) / "gradio"),
               "GRADIO_ANALYTICS_ENABLED": "False", "INSTREC_QUEUE": str(4 * args.clients)}
        log = Path(tmp) / "server.log"
        t0 = time.perf_counter()
        server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=open(log, "w"),
                                  stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            while "ready at" not in log.read_text():
                if server.poll() is not None:
                    raise SystemExit(log.read_text())
                time.sleep(0.3)
            ready_s = time.perf_counter() - t0
            proc = psutil.Process(server.pid)
            rss = [("after start-up", proc.memory_info().rss)]
            clients = [Client(url, verbose=False) for _ in range(args.clients)]

            def page(i):
                t = time.perf_counter()
                clients[i % len(clients)].predict(handle_file(str(CLIP)), api_name="/analyse")
                return time.perf_counter() - t

            def rest(i):
                t = time.perf_counter()
                r = httpx.post(f"{url}/api/predict", files={"file": (CLIP.name, CLIP.read_bytes())}, timeout=300)
                r.raise_for_status()
                return time.perf_counter() - t

            with ThreadPoolExecutor(args.clients) as pool:
                page_times = []
                for start in range(0, args.page, 50):  # memory every 50: growth that stops is caches, not a leak
                    page_times += pool.map(page, range(start, min(start + 50, args.page)))
                    rss.append((f"after {len(page_times)} page predictions", proc.memory_info().rss))
                rest_times = list(pool.map(rest, range(args.rest)))
                rss.append((f"after {args.rest} REST predictions", proc.memory_info().rss))
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"{platform.machine()}, {runtime.cores()} cores; {CLIP.name}, {args.clients} clients at a time")
    print(f"  page (figure included)  {percentiles(page_times)}")
    print(f"  REST /api/predict       {percentiles(rest_times)}")
    print(f"  server ready (models loaded, warm-up answered) after {ready_s:.1f} s")
    for what, value in rss:
        print(f"  server RSS {what:28} {value / 2**20:6.0f} MB")


if __name__ == "__main__":
    main()
