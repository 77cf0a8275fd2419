"""instrec web app and HTTP API: Gradio page, Gradio API (/predict) and REST routes on one server.

    instrec serve        # or python app.py: http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT)

Environment:
    INSTREC_MODELS           ONNX models folder (default: the models shipped in the package)
    INSTREC_MAX_UPLOAD_MB    largest upload accepted (default 50)
    INSTREC_MAX_SECONDS      longest audio analysed (default 600)
    INSTREC_CONCURRENCY      requests analysed at once (default 2); each gets cores / concurrency threads
    INSTREC_QUEUE            requests waiting beyond those before the server answers 503 (default 16)
    INSTREC_CACHE_SECONDS    page and microphone uploads older than this are deleted (default 600)

All the work is done by :class:`instrec.recognizer.Recognizer`; :func:`create_app` wires it up,
loading the models when it is called (never at import). Errors follow :mod:`instrec.errors`: each
kind has its HTTP status; an unexpected fault is a JSON 500 with a short message, its traceback
in the log; expected input errors are one log line each.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
import time
from pathlib import Path

import gradio as gr
import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

import instrec
from instrec import errors, plots, runtime
from instrec.labels import CODES, NAMES
from instrec.recognizer import Recognizer, default_models_dir

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
SAFE_SUFFIX = re.compile(r"^\.[a-z0-9]{1,5}$")
#: Seconds of audio drawn in the page's figure.
FIGURE_SECONDS = 60
log = logging.getLogger("instrec.app")


def settings() -> dict:
    """The app's settings from the environment, with their defaults."""
    return {"models": default_models_dir(),
            "max_upload_mb": float(os.environ.get("INSTREC_MAX_UPLOAD_MB", 50)),
            "max_seconds": float(os.environ.get("INSTREC_MAX_SECONDS", 600)),
            "concurrency": int(os.environ.get("INSTREC_CONCURRENCY", 2)),
            "queue": int(os.environ.get("INSTREC_QUEUE", 16)),
            "cache_seconds": int(os.environ.get("INSTREC_CACHE_SECONDS", 600))}


class Gate:
    """At most ``concurrency`` analyses at once and ``queue`` waiting; past that, :class:`Busy` at once."""

    def __init__(self, concurrency: int, queue: int):
        self.running = threading.BoundedSemaphore(concurrency)
        self.limit = concurrency + queue
        self.inside = 0
        self.lock = threading.Lock()

    def __enter__(self):
        with self.lock:
            if self.inside >= self.limit:
                raise Busy("the server is busy: too many requests waiting; try again in a few seconds")
            self.inside += 1
        self.running.acquire()
        return self

    def __exit__(self, *exc):
        self.running.release()
        with self.lock:
            self.inside -= 1


class Busy(errors.InstrecError):
    kind = "busy"


def words(prediction) -> str:
    """'Piano and voice, 8.0 s, on CPU'."""
    names = [NAMES[c] for c in prediction.instruments]
    if not names:
        present = "No instrument over its threshold"
    else:
        present = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        present = present[0].upper() + present[1:]
    device = "GPU" if prediction.provider.startswith("CUDA") else "CPU"
    return f"{present}, {prediction.duration_s:.1f} s, on {device}"


def about_models(recognizer: Recognizer) -> str:
    """How the models were trained and how they fare, from the manifest (for the line under the answer)."""
    m = recognizer.manifest
    data = m.get("training_data", {})
    corpus = data.get("synthetic_corpus")
    if corpus:
        trained = (f"trained on instrec's synthetic corpus ({data.get('n_train_files', '?')} excerpts rendered from "
                   f"recorded notes and soundfonts)")
    else:
        trained = f"trained on `{Path(str(data.get('root', '?'))).name}` ({data.get('n_train_files', '?')} excerpts)"
    parts = [f"Models {trained}."]
    real = m.get("real_audio")
    if real:
        covered = ", ".join(NAMES[c] for c in sorted(real.get("per_label", {}), key=CODES.index))
        parts.append(f"On {real['n_files']} real recordings" + (f" ({covered} only)" if covered else "")
                     + f" they name the right instrument first for {real['top1_correct']} "
                     f"({100 * real['top1_correct'] / real['n_files']:.0f}%).")
    test = (m.get("test") or {}).get("metrics", {}).get("+".join(m["fusion"]["models"]))
    if test:
        kind = "synthetic test excerpts" if corpus else "test excerpts"
        parts.append(f"Micro F1 {test['f1_micro']:.2f} on {m['test']['n_files']} {kind} (synthetic audio is "
                     "easier than real recordings).")
    return " ".join(parts)


def create_app(models: str | os.PathLike | None = None) -> FastAPI:
    """Load the models, warm them up, and return the ASGI app: page, Gradio API and REST routes."""
    conf = settings()
    max_upload_mb, max_seconds = conf["max_upload_mb"], conf["max_seconds"]
    recognizer = Recognizer(models or conf["models"], max_duration_s=max_seconds,
                            threads=runtime.share(conf["concurrency"]))
    recognizer.predict(np.sin(np.arange(22050, dtype=np.float32) * 0.1), 22050)  # warm-up: caches, filters
    gate = Gate(conf["concurrency"], conf["queue"])
    examples = sorted(str(p) for p in EXAMPLES_DIR.glob("*.flac"))
    about = about_models(recognizer)

    def analysed(path: str, name: str, keep_windows: int = 0):
        """The Prediction, or the exception; expected errors are logged in one line, faults with their traceback."""
        try:
            with gate:
                return recognizer.predict(path, name=name, keep_windows=keep_windows)
        except Exception as exc:
            if errors.kind_of(exc) == "internal":
                log.exception("internal error on %s", name)
            else:
                log.info("refused %s: %s", name, exc)
            return exc

    def predict(audio: str | None) -> dict:
        """The JSON answer for one file, or its JSON error object ``{"error", "kind", "file"}``."""
        if not audio:
            return errors.error_dict(errors.NoInput("no audio given: send a file"), None)
        name = Path(audio).name
        result = analysed(audio, name)
        return errors.error_dict(result, name, detail=False) if isinstance(result, Exception) else result.to_dict()

    def analyse(path: str | None):
        """The page's handler: answer in words, ranking, figure and JSON; bad input is said in the page."""
        if not path:
            return "**No audio:** upload a file or record from the microphone.", None, None, None
        result = analysed(path, Path(path).name, keep_windows=FIGURE_SECONDS)
        if isinstance(result, Exception):
            answer = errors.error_dict(result, Path(path).name, detail=False)
            return f"**Could not analyse this audio:** {answer['error']}", None, None, answer
        ranking = {NAMES[c]: result.scores[c] for c in result.ranking}  # rounded ties keep the exact order
        return f"### {words(result)}", ranking, plots.prediction_figure(result, recognizer.params), result.to_dict()

    start_cache_cleaner(conf["cache_seconds"], keep=[Path(p) for p in examples])
    with gr.Blocks(title="instrec: which instruments are playing?") as demo:
        gr.Markdown("# instrec\nUpload a recording or record from the microphone: instrec says which of 11 "
                    "instruments play in it (cello, clarinet, flute, acoustic and electric guitar, organ, piano, "
                    "saxophone, trumpet, violin, voice), and when.")
        with gr.Row():
            with gr.Column(scale=1):
                audio_in = gr.Audio(sources=["upload", "microphone"], type="filepath",
                                    label="Audio (WAV, FLAC, OGG, MP3)")
                run = gr.Button("Recognise", variant="primary")
            with gr.Column(scale=1):
                summary = gr.Markdown("Results appear here.")
                gr.Markdown(about, elem_classes=["about-models"])
                ranking = gr.Label(num_top_classes=len(CODES), label="Score per instrument (0.5 = its threshold)")
        outputs = [summary, ranking]
        figure = gr.Plot(show_label=False)
        gr.Markdown("The figure shows each picture of the sound the three CNNs look at, each model's "
                    "probabilities second by second (the musicnn model's too, when the models have it), and the fused decision per second. The answer above is "
                    "decided on the whole file at once, so a second can show an instrument that the whole-file "
                    "answer leaves out (or the reverse).")
        answer = gr.JSON(label="JSON answer")
        outputs += [figure, answer]
        if examples:
            gr.Examples(examples, inputs=audio_in, outputs=outputs, fn=analyse, run_on_click=True,
                        cache_examples=False, label="Examples rendered by instrec's synthesiser (click to run)")
        # the page's handler: callable (benchmarks/bench_app.py uses it) but not listed with the API
        run.click(analyse, audio_in, outputs, api_name="analyse", api_visibility="undocumented")
        # the API endpoint: `audio` (a file) in, `answer` (the JSON answer) out
        api_audio = gr.File(visible=False, label="audio")
        api_answer = gr.JSON(visible=False, label="answer")
        api_trigger = gr.Button(visible=False)
        api_trigger.click(predict, api_audio, api_answer, api_name="predict",
                          api_description="The JSON answer for one audio file (see the README's JSON contract).")

    app = FastAPI(title="instrec", version=instrec.__version__)

    @app.get("/api/health")
    def health() -> dict:
        return {"status": "ok", "version": instrec.__version__, "provider": recognizer.provider,
                "models": {rep: {k: info[k] for k in ("file", "sha256", "bytes")} for rep, info in
                           recognizer.manifest["models"].items()},
                "fusion": recognizer.manifest["fusion"], "classes": list(CODES),
                "max_upload_mb": max_upload_mb, "max_seconds": max_seconds, "min_seconds": recognizer.min_duration_s}

    @app.post("/api/predict")
    async def rest_predict(request: Request):
        limit = int(max_upload_mb * 1024 * 1024)
        with tempfile.TemporaryDirectory(prefix="instrec-") as tmp:
            try:
                path, name = await receive_upload(request, Path(tmp), limit, max_upload_mb)
            except errors.InstrecError as exc:
                log.info("refused upload: %s", exc)
                return JSONResponse(errors.error_dict(exc, getattr(exc, "file", None)), exc.status)
            result = await run_in_threadpool(analysed, str(path), name)
        if isinstance(result, Exception):
            body = errors.error_dict(result, name, detail=False)
            headers = {"Retry-After": "5"} if body["kind"] == "busy" else None
            return JSONResponse(body, errors.HTTP_STATUS[body["kind"]], headers=headers)
        return result.to_dict()

    @app.api_route("/api/predict", methods=["GET", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def predict_wrong_method(request: Request):
        return JSONResponse({"error": f"{request.method} is not allowed here: POST the audio as multipart form "
                             "field 'file'", "kind": "method", "file": None}, 405, headers={"Allow": "POST"})

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception):
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse(errors.error_dict(exc, None, detail=False), 500)

    demo.queue(default_concurrency_limit=conf["concurrency"], max_size=max(1, conf["queue"]))
    app = gr.mount_gradio_app(app, demo, path="/", max_file_size=f"{max_upload_mb:g}mb", footer_links=["api"])
    app.state.recognizer = recognizer
    return app


def gradio_cache() -> Path:
    """Where Gradio keeps page and microphone uploads (GRADIO_TEMP_DIR, else <tmp>/gradio)."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")


def clean_cache(folder: Path, age_s: float, keep: list[Path]) -> int:
    """Delete files in ``folder`` older than ``age_s`` (and the folders left empty), except copies of
    ``keep`` (the examples, which the page still offers); returns how many were deleted."""
    kept = {(p.name, p.stat().st_size) for p in keep if p.exists()}
    now, deleted = time.time(), 0
    for f in sorted(folder.rglob("*"), reverse=True):
        try:
            if f.is_file() and (f.name, f.stat().st_size) not in kept and now - f.stat().st_mtime > age_s:
                f.unlink()
                deleted += 1
            elif f.is_dir() and not any(f.iterdir()):
                f.rmdir()
        except OSError:  # taken by a request at that moment: next round
            pass
    return deleted


def start_cache_cleaner(age_s: float, keep: list[Path]) -> None:
    """Every age_s / 2, delete page and microphone uploads older than age_s from Gradio's cache.

    (Gradio's own ``delete_cache`` also deletes the examples' cached copies, after which the page's
    example buttons break; this keeps them.)"""
    folder = gradio_cache()

    def loop():
        while True:
            time.sleep(max(1.0, age_s / 2))
            if folder.exists():
                clean_cache(folder, age_s, keep)

    threading.Thread(target=loop, daemon=True, name="instrec-cache-cleaner").start()


async def receive_upload(request: Request, folder: Path, limit: int, limit_mb: float) -> tuple[Path, str]:
    """Stream a multipart upload's ``file`` field into ``folder``, never writing more than ``limit`` bytes.

    A declared ``Content-Length`` over the limit is refused before the body is read; a body without
    one is parsed as it arrives and cut at the limit. Returns the file's path (a fixed name with
    the upload's suffix when it is a plain one) and the uploaded name (base name only, for display).
    """
    from python_multipart import FormParser
    from python_multipart.multipart import parse_options_header

    too_large = errors.TooLarge(f"file larger than {limit_mb:g} MB")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:  # room for the multipart framing
        raise too_large
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in options:
        raise errors.NoInput("no file: send the audio as multipart form field 'file'")
    files = []
    parser = FormParser("multipart/form-data", None, files.append, boundary=options[b"boundary"],
                        config={"UPLOAD_DIR": str(folder), "MAX_MEMORY_FILE_SIZE": 1 << 20,
                                "UPLOAD_KEEP_FILENAME": False, "UPLOAD_KEEP_EXTENSIONS": False,
                                # the folder goes as a whole after the answer, cut-off uploads included
                                "UPLOAD_DELETE_TMP": False})
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit + 64 * 1024:
            raise too_large
        parser.write(chunk)
    parser.finalize()
    upload = next((f for f in files if f.field_name == b"file"), None)
    if upload is None:
        raise errors.NoInput("no file: send the audio as multipart form field 'file'")
    name = Path((upload.file_name or b"upload").decode("utf-8", "replace")).name or "upload"
    if upload.size > limit:
        exc = errors.TooLarge(f"file larger than {limit_mb:g} MB")
        exc.file = name
        raise exc
    suffix = Path(name).suffix.lower()
    path = folder / ("upload" + (suffix if SAFE_SUFFIX.match(suffix) else ".bin"))
    upload.flush_to_disk()
    upload.close()
    os.replace(upload.actual_file_name, path)
    return path, name


def serve(host: str | None = None, port: int | None = None, models: str | os.PathLike | None = None) -> None:
    """Run the app with uvicorn. Host and port default to GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (what a
    Hugging Face Space sets), then PORT, then 127.0.0.1:7860."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("python_multipart").setLevel(logging.WARNING)  # a line per upload otherwise
    host = host or os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")
    port = port or int(os.environ.get("GRADIO_SERVER_PORT") or os.environ.get("PORT") or 7860)
    log.info("instrec %s: loading the models...", instrec.__version__)
    start = time.perf_counter()
    app = create_app(models)
    rec = app.state.recognizer

    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    server = uvicorn.Server(config)

    def announce():
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            log.info("instrec ready at http://%s:%d (models %s, %s, %d threads per request; started in %.1f s)",
                     shown, port, rec.models_dir, rec.provider, rec.threads, time.perf_counter() - start)

    threading.Thread(target=announce, daemon=True).start()
    server.run()
