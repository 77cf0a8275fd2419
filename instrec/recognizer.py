"""Fused inference with the exported ONNX models: any audio in, instruments out.

    from instrec.recognizer import Recognizer
    rec = Recognizer()                      # the models shipped in instrec/models/, CUDA when usable
    rec.predict("song.flac").to_dict()      # the JSON contract of the README

One :class:`Recognizer` serves the command line, the app, the REST route and the tests. It loads
the manifest and the onnxruntime sessions of the fusion's models once (the CNNs, and the classifier on
musicnn's embedding when the fusion has it, :data:`HEAD`), checks each model's sha256 and the feature
parameters, and is safe to call from several threads (onnxruntime sessions are; nothing else is
shared and mutable).

Long audio (over ``whole_file_s``) is processed in chunks of ``stream_chunk_windows`` windows with 2 s of real audio as context
on both sides, so peak memory does not grow with duration beyond the per-window results (and the
sound meter's one number per 10 ms frame: about 9 MB more at the peak for an hour); the
chunk boundaries are placed so that every representation gives the same frames as the whole
file would (see :func:`instrec.features.context_samples`), and each musicnn patch is computed from
its own 3 seconds (:class:`instrec.embedding.WindowPatches`).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import audio, features, runtime
from .embedding import WindowPatches
from .errors import TooShort
from .fusion import Fusion, aggregate, audible, report
from .labels import CODES
from .params import REPRESENTATIONS, FeatureParams

#: Where the shipped models live (package data; ``--models`` or ``INSTREC_MODELS`` point elsewhere).
MODELS_DIR = Path(__file__).resolve().parent / "models"


#: The precisions shipped: fp32 (the default) and int8 (static QDQ, see training/quantize.py), a folder each.
PRECISIONS = {"fp32": MODELS_DIR, "int8": MODELS_DIR / "int8"}


def default_models_dir(precision: str | None = None) -> Path:
    """``INSTREC_MODELS`` when set, else the shipped models of ``precision`` (default ``INSTREC_PRECISION``,
    else fp32)."""
    if os.environ.get("INSTREC_MODELS"):
        return Path(os.environ["INSTREC_MODELS"])
    precision = precision or os.environ.get("INSTREC_PRECISION") or "fp32"
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    return PRECISIONS[precision]


#: Longest audio accepted by default (s). Longer files are refused before decoding.
DEFAULT_MAX_DURATION_S = 2 * 3600.0
#: Files up to this long are decoded in one go; longer ones are streamed twice (peak, then features).
WHOLE_FILE_S = 600.0
MANIFEST_FORMAT = 1
#: The fusion's name for the classifier on musicnn's embedding (``training.head``), beside the CNNs'
#: representations; it sees :class:`instrec.embedding.WindowPatches`, one patch per group of ``stride``
#: windows (the manifest's ``models.musicnn.stride``, 1 when it has none).
HEAD = "musicnn"
#: musicnn's patches per run: as fast per patch as 16 on 2 cores (24 against 26 ms) with a third of the
#: memory (peak 245 against 752 MB for musicnn alone; ``benchmarks/bench_inference.py``, docs/performance.md)
HEAD_BATCH = 4


class ModelError(RuntimeError):
    """Models that are missing, damaged or made for another version, with what to do."""


@dataclass
class Prediction:
    """The answer for one file or array (see :meth:`to_dict` for the JSON contract)."""

    file: str | None
    duration_s: float
    #: (11,) fused scores as the fusion computed them, in [0, 1]: present at 0.5 or more
    fused_scores: np.ndarray
    #: per model, (11,) aggregated probabilities
    model_scores: dict[str, np.ndarray]
    timeline: list[dict]
    provider: str
    fusion: dict = field(default_factory=dict)
    #: per representation, (n_windows, 11) window probabilities (for plots; not in the JSON)
    window_probabilities: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    #: per representation, (F, frames) features of the first windows when asked for (for plots; not in the JSON)
    features: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    #: (n_windows,) window levels in dB (:class:`instrec.audio.LevelMeter`; not in the JSON)
    window_levels: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    @property
    def instruments(self) -> list[str]:
        """The codes present, in class order."""
        return [c for c, s in zip(CODES, self.fused_scores) if s >= 0.5]

    @property
    def scores(self) -> dict[str, float]:
        """The fused scores per code, rounded to 4 decimals for display without crossing 0.5 (:func:`report`)."""
        return {c: report(s) for c, s in zip(CODES, self.fused_scores)}

    @property
    def models(self) -> dict[str, dict[str, float]]:
        """Each model's aggregated probabilities per code, rounded to 4 decimals."""
        return {rep: {c: round(float(s), 4) for c, s in zip(CODES, sc)} for rep, sc in self.model_scores.items()}

    @property
    def ranking(self) -> list[str]:
        """The eleven codes, most likely first, by the unrounded fused scores (two instruments whose
        rounded ``scores`` tie are still told apart; exact ties keep the codes' order)."""
        return [CODES[i] for i in np.argsort(-self.fused_scores, kind="stable")]

    def to_dict(self) -> dict:
        return {"file": self.file, "duration_s": round(self.duration_s, 3), "instruments": self.instruments,
                "scores": self.scores, "ranking": self.ranking, "models": self.models, "timeline": self.timeline, "provider": self.provider,
                "fusion": self.fusion}


def cuda_usable() -> bool:
    """True when a CUDA driver answers and sees a device (checked without onnxruntime's logs)."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    count = ctypes.c_int(0)
    return cuda.cuInit(0) == 0 and cuda.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0


def load_manifest(models_dir: Path) -> dict:
    path = Path(models_dir) / "manifest.json"
    if not path.exists():
        raise ModelError(f"no models in {models_dir} (manifest.json missing): export them with "
                         "`python export/to_onnx.py`, or point --models (INSTREC_MODELS) at a folder that has them")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}") from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ModelError(f"{path}: manifest format {manifest.get('format')!r} is not {MANIFEST_FORMAT}; "
                         "upgrade instrec or re-export the models")
    if manifest.get("classes") != list(CODES):
        raise ModelError(f"{path}: class order {manifest.get('classes')} is not instrec's {list(CODES)}")
    return manifest


def sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def open_audio(path: str | os.PathLike, *, params: FeatureParams, max_duration_s: float | None = DEFAULT_MAX_DURATION_S,
               whole_file_s: float = WHOLE_FILE_S, what: str | None = None,
               min_duration_s: float | None = audio.MIN_DURATION_S) -> tuple[Iterator[np.ndarray], float]:
    """Check a file's header and return its prepared audio as blocks, with its duration (s).

    Files up to ``whole_file_s`` are decoded at once (one block); longer ones are read twice in
    blocks (the peak first, then the normalised samples), so memory does not grow with duration.
    """
    path = Path(path)
    what = what or path.name
    info = audio.probe(path, what=what)
    duration = info.frames / info.samplerate
    audio.check_duration(duration, what, max_duration_s, min_duration_s)
    if duration <= whole_file_s:
        return iter([audio.load(path, params=params, max_duration_s=None, what=what,
                                min_duration_s=min_duration_s)]), duration
    peak = 0.0
    for block in audio.stream(path, params=params, what=what):
        peak = max(peak, float(np.max(np.abs(block))))
    if peak < audio.SILENCE_PEAK:
        audio.normalise(np.zeros(1, np.float32), what)  # raises the silence error
    return (block / peak for block in audio.stream(path, params=params, what=what)), duration


class Recognizer:
    """Loads the ONNX models once; :meth:`predict` turns audio into a :class:`Prediction`."""

    def __init__(self, models_dir: str | os.PathLike | None = None, *, providers: list[str] | None = None,
                 batch_size: int = 16, chunk_windows: int = 64, stream_chunk_windows: int = 16, max_duration_s: float | None = DEFAULT_MAX_DURATION_S,
                 whole_file_s: float = WHOLE_FILE_S, threads: int | None = None,
                 min_duration_s: float | None = audio.MIN_DURATION_S):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ModelError(f"onnxruntime is not installed ({exc}): pip install instrec (or instrec[gpu])") from None
        self.models_dir = Path(models_dir) if models_dir is not None else default_models_dir()
        self.manifest = load_manifest(self.models_dir)
        self.params = FeatureParams.from_dict(self.manifest["feature_params"])
        self.fusion = Fusion.from_dict(self.manifest["fusion"])
        if chunk_windows % 4 or stream_chunk_windows % 4:
            raise ValueError("chunk_windows must be a multiple of 4 (see instrec.features.context_samples)")
        self.batch_size, self.chunk_windows, self.max_duration_s = batch_size, chunk_windows, max_duration_s
        #: audio shorter than this is refused (TooShort): too little of a note to tell instruments apart
        self.min_duration_s = min_duration_s
        self.stream_chunk_windows = stream_chunk_windows
        self.whole_file_s = whole_file_s
        #: threads for the features and each model run (see :mod:`instrec.runtime`)
        self.threads = threads or runtime.default_threads()
        runtime.tune_allocator()  # large feature buffers reused, not page-faulted afresh (see instrec.runtime)
        self.sessions = {}  # the CNNs, by representation
        self.head = None  # the classifier on musicnn's patches, when the fusion has it
        self.head_stride = 1  # analysis windows per musicnn patch (:class:`instrec.embedding.WindowPatches`)
        for rep in self.fusion.models:
            info = self.manifest["models"].get(rep)
            if info is None:
                raise ModelError(f"manifest lists no model for {rep!r}, which the fusion rule uses")
            path = self.models_dir / info["file"]
            if not path.exists():
                raise ModelError(f"{path} missing: re-export the models")
            digest = sha256(path)
            if digest != info["sha256"]:
                raise ModelError(f"{path}: sha256 {digest[:16]}... does not match the manifest's "
                                 f"{info['sha256'][:16]}...: the file is damaged or was replaced; re-export it")
            session = self._session(ort, path, providers, self.threads)
            if rep == HEAD:
                self.head = session
                try:  # windows per patch; 1 in manifests from before strides
                    self.head_stride = WindowPatches.check_stride(info.get("stride", 1))
                except ValueError as e:
                    raise ModelError(f"{self.models_dir / 'manifest.json'}: the {HEAD} head's stride: {e}") from None
            elif rep in REPRESENTATIONS:
                self.sessions[rep] = session
            else:
                raise ModelError(f"{self.models_dir / 'manifest.json'}: unknown model {rep!r} in the fusion; "
                                 f"expected some of {', '.join((*REPRESENTATIONS, HEAD))}")
        if not self.sessions:
            raise ModelError(f"{self.models_dir / 'manifest.json'}: the fusion names no CNN")
        self.provider = next(iter(self.sessions.values())).get_providers()[0]

    @staticmethod
    def _session(ort, path: Path, providers: list[str] | None, threads: int):
        options = runtime.session_options(ort, threads)
        if providers is None:
            providers = ["CPUExecutionProvider"]
            if "CUDAExecutionProvider" in ort.get_available_providers() and cuda_usable():
                if hasattr(ort, "preload_dlls"):
                    try:
                        ort.preload_dlls()
                    except Exception:  # CUDA libraries not installed: onnxruntime falls back to CPU
                        pass
                providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)

    def _run(self, session, x: np.ndarray) -> list[np.ndarray]:
        """A model's outputs for ``x``, ``batch_size`` at a time (the head :data:`HEAD_BATCH` at a time)."""
        name = session.get_inputs()[0].name
        batch = HEAD_BATCH if session is self.head else self.batch_size
        return [session.run(None, {name: x[i : i + batch]})[0] for i in range(0, len(x), batch)]

    # ---- audio in ----------------------------------------------------------------------------

    def open(self, path: str | os.PathLike, name: str | None = None) -> tuple[Iterator[np.ndarray], float]:
        """Check and start decoding a file: (prepared blocks, duration in s); see :func:`open_audio`."""
        return open_audio(path, params=self.params, max_duration_s=self.max_duration_s,
                          whole_file_s=self.whole_file_s, what=name, min_duration_s=self.min_duration_s)

    # ---- inference ---------------------------------------------------------------------------

    def window_probabilities(self, blocks: Iterable[np.ndarray], keep_windows: int = 0, chunk_windows: int | None = None,
                             meter: audio.LevelMeter | None = None
                             ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
        """Prepared audio blocks (normalised, at the analysis rate) -> (rep -> (n_windows, 11) probabilities,
        rep -> (F, frames) features of the first ``keep_windows`` windows, exactly as the models saw them,
        (n_windows,) window levels in dB: :class:`instrec.audio.LevelMeter`, ``meter`` when given)."""
        out: dict[str, list[np.ndarray]] = {rep: [] for rep in self.sessions}
        kept: dict[str, list[np.ndarray]] = {rep: [] for rep in self.sessions}
        meter = meter or audio.LevelMeter(self.params)
        blocks = meter.watch(iter(blocks))
        if self.head is not None:
            out[HEAD] = []
            head_patches = WindowPatches(self.params, self.head_stride)
            blocks = head_patches.watch(blocks)
        stream = features.stream_windows(blocks, params=self.params, representations=tuple(self.sessions),
                                         chunk_windows=chunk_windows or self.chunk_windows)
        seen = 0
        while True:
            with runtime.compute_threads(self.threads):
                feats = next(stream, None)
                if self.head is not None:  # the patches whose audio has arrived; after the last chunk, the rest
                    head_windows = head_patches.ready() if feats is not None else head_patches.finish()
            if self.head is not None:
                out[HEAD] += self._run(self.head, head_windows)
            if feats is None:
                break
            for rep, windows in feats.items():
                out[rep] += self._run(self.sessions[rep], windows)
                if seen < keep_windows:
                    kept[rep].append(windows[: keep_windows - seen, 0])
            seen += len(next(iter(feats.values())))
        frames = {rep: np.concatenate(v).transpose(1, 0, 2).reshape(v[0].shape[1], -1) for rep, v in kept.items() if v}
        probs = {rep: np.concatenate(v) if v else np.zeros((0, len(CODES)), np.float32) for rep, v in out.items()}
        levels = meter.levels()
        if HEAD in probs:  # one patch per group of windows: each window its group's probabilities
            probs[HEAD] = head_patches.spread(probs[HEAD], len(levels))
        if any(len(p) != len(levels) for p in probs.values()):  # the windows' rule is audio.n_windows for both
            raise RuntimeError(f"{len(levels)} window levels for {[len(p) for p in probs.values()]} windows")
        return probs, frames, levels

    def predict(self, source: str | os.PathLike | np.ndarray, sample_rate: int | None = None, *,
                name: str | None = None, keep_windows: int = 0) -> Prediction:
        """Recognise the instruments in a file, or in samples ``(n,)`` / ``(n, channels)`` at ``sample_rate``.

        ``keep_windows``: the features of that many first windows are kept in ``Prediction.features``
        (for figures), from the same single extraction the models ran on.
        """
        if isinstance(source, np.ndarray):
            if sample_rate is None:
                raise ValueError("predict(array) needs the sample_rate")
            y = audio.prepare(source, sample_rate, params=self.params, what=name or "audio",
                              max_duration_s=self.max_duration_s, min_duration_s=self.min_duration_s)
            blocks, duration, label = iter([y]), source.shape[0] / sample_rate, name
        else:
            label = name or Path(source).name
            blocks, duration = self.open(source, label)
        return self.predict_blocks(blocks, duration, label, keep_windows=keep_windows)

    def predict_many(self, paths: Iterable[str | os.PathLike]) -> Iterator[tuple[Path, Prediction | Exception]]:
        """(path, Prediction or the exception it raised) for each file, in order, decoding the next file in a
        background thread while the models run on this one (decoding and resampling release the GIL)."""
        from concurrent.futures import ThreadPoolExecutor

        paths = [Path(p) for p in paths]
        with ThreadPoolExecutor(1, thread_name_prefix="instrec-decode") as pool:
            opened = pool.submit(self.open, paths[0]) if paths else None
            for i, path in enumerate(paths):
                current, opened = opened, pool.submit(self.open, paths[i + 1]) if i + 1 < len(paths) else None
                try:
                    blocks, duration = current.result()
                    yield path, self.predict_blocks(blocks, duration, path.name)
                except Exception as exc:  # noqa: BLE001 - handed to the caller, who reports it per file
                    yield path, exc

    def predict_blocks(self, blocks: Iterable[np.ndarray], duration: float, name: str | None = None, *,
                       keep_windows: int = 0) -> Prediction:
        """The answer for audio already prepared by :func:`open_audio` (or :func:`instrec.audio.prepare`),
        given in blocks; ``duration`` is the source's length in seconds, as reported."""
        # streamed (long) files go in smaller chunks: memory stays flat whatever the duration
        chunk = self.stream_chunk_windows if duration > self.whole_file_s else self.chunk_windows
        meter = audio.LevelMeter(self.params)
        probs, frames, levels = self.window_probabilities(blocks, keep_windows, chunk, meter)
        sound = meter.sound_seconds()
        if self.min_duration_s is not None and sound < self.min_duration_s:
            raise TooShort(f"{name or 'audio'}: holds {sound:.2f} s of sound (within {audio.SOUND_DB:g} dB of its loudest "
                           f"second), under the minimum of {self.min_duration_s:g} s: too little of a note to tell "
                           "instruments apart")
        prediction = self._answer(probs, levels, duration, name)
        prediction.features = frames
        return prediction

    def fusion_summary(self) -> dict:
        """How the answers are fused, as each answer's ``fusion`` gives it (weights only when the models have them)."""
        f = self.fusion
        summary = {"rule": f.rule, "aggregation": f.aggregation, "models": list(f.models), "quiet_db": f.quiet_db}
        if f.weights:
            summary["weights"] = {m: round(w, 4) for m, w in f.weights.items()}
        return summary

    def _answer(self, probs: dict[str, np.ndarray], levels: np.ndarray, duration: float, label: str | None
                ) -> Prediction:
        fusion = self.fusion
        file_scores = fusion.file_scores(probs, levels)
        fused = fusion.fused_score(file_scores)
        n = len(levels)
        window_scores = {rep: np.stack([aggregate(p[i : i + 1], fusion.aggregation) for i in range(n)])
                         for rep, p in probs.items()}
        # a quiet window is left out of the file's answer and has none of its own
        counted = audible(levels, fusion.quiet_db)
        window_fused = np.where(counted[:, None], fusion.fused_score(window_scores), 0.0)
        step = self.params.window_duration_s
        timeline = [
            {"start_s": round(i * step, 3), "end_s": round(min((i + 1) * step, max(duration, step)), 3),
             "instruments": [c for c, s in zip(CODES, window_fused[i]) if s >= 0.5],
             "scores": {c: report(s) for c, s in zip(CODES, window_fused[i])},
             "quiet": not bool(counted[i])}
            for i in range(n)
        ]
        return Prediction(
            file=label,
            duration_s=float(duration),
            fused_scores=np.asarray(fused, np.float64),
            model_scores=file_scores,
            timeline=timeline,
            provider=self.provider,
            fusion=self.fusion_summary(),
            window_probabilities=probs,
            window_levels=levels,
        )

    def info(self) -> dict:
        m = self.manifest
        return {"models_dir": str(self.models_dir), "provider": self.provider, "classes": m["classes"],
                "fusion": m["fusion"], "models": m["models"], "training_data": m.get("training_data"),
                "validation": m.get("validation"), "test": m.get("test"), "versions": m.get("versions"),
                "created": m.get("created")}
