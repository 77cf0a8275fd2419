"""instrec web app and HTTP API: Gradio page, Gradio API (/predict) and REST routes on one server.

    instrec serve        # or python app.py: http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT)

Environment:
    INSTREC_MODELS           ONNX models folder (default: the models shipped in the package)
    INSTREC_MAX_UPLOAD_MB    largest upload accepted (default 50)
    INSTREC_MAX_SECONDS      longest audio analysed (default 600)
    INSTREC_CONCURRENCY      requests analysed at once (default 2)

All the work is done by :class:`instrec.recognizer.Recognizer`; :func:`create_app` only wires it
up, loading the models when it is called (not at import).
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from pathlib import Path

import gradio as gr
import numpy as np
import uvicorn
from fastapi import FastAPI, File, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

import instrec
from instrec import audio, features, plots
from instrec.audio import AudioError
from instrec.labels import CODES, NAMES
from instrec.recognizer import Recognizer, default_models_dir

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
SAFE_SUFFIX = re.compile(r"^\.[a-z0-9]{1,5}$")


def settings() -> dict:
    """The app's settings from the environment, with their defaults."""
    return {"models": default_models_dir(),
            "max_upload_mb": float(os.environ.get("INSTREC_MAX_UPLOAD_MB", 50)),
            "max_seconds": float(os.environ.get("INSTREC_MAX_SECONDS", 600)),
            "concurrency": int(os.environ.get("INSTREC_CONCURRENCY", 2))}


def create_app(models: str | os.PathLike | None = None) -> FastAPI:
    """Load the models, warm them up, and return the ASGI app: page, Gradio API and REST routes."""
    conf = settings()
    max_upload_mb, max_seconds, concurrency = conf["max_upload_mb"], conf["max_seconds"], conf["concurrency"]
    recognizer = Recognizer(models or conf["models"], max_duration_s=max_seconds)
    recognizer.predict(np.sin(np.arange(22050, dtype=np.float32) * 0.1), 22050)  # warm-up: caches, filters
    analysing = threading.BoundedSemaphore(concurrency)
    examples = sorted(str(p) for p in EXAMPLES_DIR.glob("*.flac"))

    def predict_json(path: str | None, name: str | None = None) -> dict:
        """The JSON answer for one file, or the JSON error object."""
        if not path:
            return {"error": "no audio given: upload a file or record from the microphone", "file": None}
        label = name or Path(path).name
        try:
            with analysing:
                return recognizer.predict(path, name=label).to_dict()
        except AudioError as exc:
            return {"error": str(exc), "file": label}

    def analyse(path: str | None):
        """The page's handler: ranking, JSON and figures; bad input becomes a message in the page."""
        if not path:
            raise gr.Error("No audio: upload a file or record from the microphone.")
        try:
            with analysing:
                y = audio.load(path, params=recognizer.params, max_duration_s=max_seconds)
                prediction = recognizer.predict(y, recognizer.params.sample_rate, name=Path(path).name)
                shown = y[: int(60 * recognizer.params.sample_rate)]
                frames = features.compute(audio.pad_to_windows(shown, recognizer.params), params=recognizer.params)
                figure = plots.prediction_figure(frames, prediction, recognizer.params)
        except AudioError as exc:
            raise gr.Error(str(exc)) from None
        ranking = {f"{NAMES[c]} ({c})": prediction.scores[c] for c in CODES}
        answer = prediction.to_dict()
        present = ", ".join(NAMES[c] for c in prediction.instruments) or "no instrument over its threshold"
        summary = f"**Present:** {present}  ·  {prediction.duration_s:.1f} s  ·  {prediction.provider}"
        return summary, ranking, answer, figure

    with gr.Blocks(title="instrec: which instruments are playing?") as demo:
        gr.Markdown("# instrec\nUpload a recording or record from the microphone: instrec says which of 11 "
                    "instruments play in it (cello, clarinet, flute, acoustic and electric guitar, organ, piano, "
                    "saxophone, trumpet, violin, voice), and when.")
        with gr.Row():
            with gr.Column(scale=1):
                audio_in = gr.Audio(sources=["upload", "microphone"], type="filepath",
                                    label="Audio (WAV, FLAC, OGG, MP3)")
                run = gr.Button("Recognise", variant="primary")
                if examples:
                    gr.Examples(examples, inputs=audio_in, label="Examples rendered by instrec's synthesiser")
                gr.Markdown(model_card(recognizer))
            with gr.Column(scale=1):
                summary = gr.Markdown()
                ranking = gr.Label(num_top_classes=len(CODES), label="Score per instrument (0.5 = threshold)")
        figure = gr.Plot(label="What each model saw, and its predictions per second")
        answer = gr.JSON(label="JSON answer")
        run.click(analyse, audio_in, [summary, ranking, answer, figure], api_name="analyse", api_visibility="private")
        # the API endpoint: a file in, the JSON answer out
        api_file = gr.File(visible=False)
        api_answer = gr.JSON(visible=False)
        api_trigger = gr.Button(visible=False)
        api_trigger.click(predict_json, api_file, api_answer, api_name="predict")

    app = FastAPI(title="instrec", version=instrec.__version__)

    @app.get("/api/health")
    def health() -> dict:
        return {"status": "ok", "version": instrec.__version__, "provider": recognizer.provider,
                "models": {rep: {k: info[k] for k in ("file", "sha256", "bytes")} for rep, info in
                           recognizer.manifest["models"].items()},
                "fusion": recognizer.manifest["fusion"], "classes": list(CODES),
                "max_upload_mb": max_upload_mb, "max_seconds": max_seconds}

    @app.post("/api/predict")
    async def rest_predict(file: UploadFile | None = File(None)):
        if file is None:
            return JSONResponse({"error": "no file: send the audio as multipart form field 'file'", "file": None}, 400)
        name = Path(file.filename or "upload").name  # shown back, never used as a path
        suffix = Path(name).suffix.lower()
        limit = int(max_upload_mb * 1024 * 1024)
        with tempfile.TemporaryDirectory(prefix="instrec-") as tmp:
            path = Path(tmp) / ("upload" + (suffix if SAFE_SUFFIX.match(suffix) else ".bin"))
            size = 0
            with open(path, "wb") as out:
                while chunk := await file.read(1 << 20):
                    size += len(chunk)
                    if size > limit:
                        return JSONResponse({"error": f"file larger than {max_upload_mb:g} MB", "file": name}, 413)
                    out.write(chunk)
            answer = await run_in_threadpool(predict_json, str(path), name)
        if "error" in answer:
            undecodable = "not a readable audio file" in answer["error"] or "empty" in answer["error"]
            return JSONResponse(answer, 415 if undecodable else 422)
        return answer

    demo.queue(default_concurrency_limit=concurrency, max_size=64)
    return gr.mount_gradio_app(app, demo, path="/", max_file_size=f"{max_upload_mb:g}mb", footer_links=["api"])


def model_card(recognizer: Recognizer) -> str:
    m = recognizer.manifest
    test = (m.get("test") or {}).get("metrics", {}).get("mel+modgd+cqt")
    data = m.get("training_data", {})
    lines = [f"Models: `{recognizer.models_dir.name}` · fusion rule `{m['fusion']['rule']}`, aggregation "
             f"`{m['fusion']['aggregation']}` · provider `{recognizer.provider}` · instrec {instrec.__version__}",
             f"Trained on `{Path(str(data.get('root', '?'))).name}`"
             + (" (synthetic corpus: recorded notes and soundfonts)" if "synthetic_corpus" in data else "") + "."]
    if test:
        lines.append(f"Test micro F1 {test['f1_micro']:.3f}, macro F1 {test['f1_macro']:.3f} on "
                     f"{m['test']['n_files']} files.")
    return "  \n".join(lines)


def serve(host: str | None = None, port: int | None = None, models: str | os.PathLike | None = None) -> None:
    """Run the app with uvicorn (host and port default to GRADIO_SERVER_NAME / GRADIO_SERVER_PORT)."""
    host = host or os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")
    port = port or int(os.environ.get("GRADIO_SERVER_PORT", 7860))
    uvicorn.run(create_app(models), host=host, port=port, log_level="warning")
