"""A classifier on musicnn's embedding (:mod:`instrec.embedding`), fitted on a corpus and exported to ONNX.

    python -m training.head --train data/synth3c/train --train data/synth3c/notes/train --out runs/head
        [--c 0.01] [--cache runs/cache/musicnn] [--tagger MODEL.onnx ...]

Each training file (labelled folders: the IRMAS training layout or ``labels.csv``) is embedded once: the
mean over its 3-second patches of musicnn's four outputs side by side. A standardised multinomial logistic
regression over the eleven classes is fitted on them; only this head learns from the corpus. It is written
as ``head.onnx``, musicnn's graph with the head appended (input ``mel:0``, patches of
:func:`instrec.embedding.patches`; output ``probabilities``, (patches, 11) in class order), and
``head.json`` (what it was fitted on, its regularisation, the sha256 of musicnn's and the head's files).
``--tagger`` (repeatable) names the musicnn models the head listens through, their embeddings side by side
(default the shipped MagnaTagATune model; ``export/musicnn_to_onnx.py --model MSD_musicnn`` converts the
Million Song Dataset one): every model reads the same patches, so ``head.onnx`` holds their graphs side by
side on one input.
Before anything is written, onnxruntime's probabilities on real patches of the training files must equal
scikit-learn's within 1e-5.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from instrec import audio
from instrec.embedding import MODEL, OUTPUTS, Embedder, patches
from instrec.embedding import VERSION as EMBEDDING_VERSION
from instrec.errors import Silent
from instrec.labels import CODES
from instrec.recognizer import sha256
from training.real_audio import read_labels

#: the logistic regression's inverse regularisation: on the notes-included check's two splits, 0.01 kept the
#: most of what the embedding adds to the fused CNNs on unheard songs and notes (0.566 against 0.559-0.561
#: at 0.001, 0.1 and 1; docs/generalisation.md, "A classifier on a pretrained tagger's embedding")
C = 0.01
#: no feature is scaled by less than this share of the median feature's standard deviation (FlooredScaler)
SCALE_FLOOR = 0.01
#: a class the head never saw gets this logit, so its probability is 0 to float precision
ABSENT_LOGIT = -1e4


@functools.lru_cache(maxsize=4)
def _model_sha256(model: Path) -> str:
    return sha256(model)


def file_embedding(embedder: Embedder, path: Path, cache: Path | None = None) -> np.ndarray:
    """(``embedder.size``,) mean over a file's patches, cached by the file's resolved path, size and time, and
    the sha256 of the embedder's model and the embedding's version."""
    path = Path(path).resolve()
    if cache is not None:
        stat = path.stat()
        key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{_model_sha256(embedder.model)}|{EMBEDDING_VERSION}"
        key = hashlib.sha1(key.encode()).hexdigest()
        cached = Path(cache) / f"{key}.npy"
        if cached.exists():
            return np.load(cached)
    y = audio.load(path)
    embedding = embedder.embed(y, sr=audio.DEFAULT.sample_rate).mean(axis=0).astype(np.float32)
    if cache is not None:
        Path(cache).mkdir(parents=True, exist_ok=True)
        np.save(cached, embedding)
    return embedding


def embed_files(embedder: Embedder, paths: list[Path], cache: Path | None = None
                ) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Indices of the audible ``paths``, their (k, ``embedder.size``) embeddings, and the silent paths left out
    (they hold no instrument to name)."""
    kept, x, silent = [], [], []
    for k, path in enumerate(paths):
        try:
            x.append(file_embedding(embedder, path, cache))
        except Silent:
            silent.append(path)
            continue
        kept.append(k)
    return np.array(kept, int), np.stack(x) if x else np.zeros((0, embedder.size), np.float32), silent


def embed_folder(embedder: Embedder, data: Path, cache: Path | None = None
                 ) -> tuple[list[Path], np.ndarray, np.ndarray, list[Path]]:
    """Paths, (n, ``embedder.size``) embeddings and (n,) class indices of a labelled folder's audible files,
    and its silent files."""
    labelled = read_labels(data)
    kept, x, silent = embed_files(embedder, [p for p, _ in labelled], cache)
    if not len(kept):
        raise ValueError(f"{data}: no labelled audible files")
    return [labelled[k][0] for k in kept], x, np.array([CODES.index(labelled[k][1]) for k in kept]), silent


def columns(outputs: tuple[str, ...], widths: dict[str, int] = OUTPUTS) -> np.ndarray:
    """Indices of the chosen outputs' values in an embedding of :meth:`instrec.embedding.Embedder.embed` whose
    outputs have these ``widths`` (:attr:`~instrec.embedding.Embedder.widths`; default musicnn's)."""
    unknown = set(outputs) - set(OUTPUTS)
    if unknown or not outputs:
        raise ValueError(f"unknown musicnn outputs {sorted(unknown)}; choose from {', '.join(OUTPUTS)}")
    starts = np.cumsum([0, *(widths[name] for name in OUTPUTS)])
    return np.concatenate([np.arange(starts[i], starts[i + 1]) for i, name in enumerate(OUTPUTS) if name in outputs])


class FlooredScaler(StandardScaler):
    """A StandardScaler whose scale is at least ``SCALE_FLOOR`` times the median feature's.

    musicnn has dead units: over every training file they hold one value, give or take float rounding
    (standard deviations down to 1e-13). Divided by that, a difference of 4e-11 between two ways of computing
    the same patch (from a file's first 3 seconds alone or from the whole file) becomes the largest feature,
    and a plain standardised head answered saxophone for every patch of every corpus test song. Floored,
    such a unit stays near 0 whatever its rounding.
    """

    def fit(self, x, y=None, sample_weight=None):
        super().fit(x, y, sample_weight)
        self.scale_ = np.maximum(self.scale_, SCALE_FLOOR * np.median(self.scale_))
        return self


def fit_head(x: np.ndarray, y: np.ndarray, c: float = C, per_class: bool = False):
    """A standardised (:class:`FlooredScaler`) multinomial logistic regression over the classes in ``y``;
    with ``per_class``, one logistic regression per class of the eleven instead (one-vs-rest), whose
    probabilities do not share one unit of mass, as a mixture's instruments need."""
    if len(np.unique(y)) < 2:
        raise ValueError("the training files hold one class only: nothing to tell apart")
    if not per_class:
        return make_pipeline(FlooredScaler(), LogisticRegression(C=c, max_iter=3000)).fit(x, y)
    targets = (np.asarray(y)[:, None] == np.arange(len(CODES))[None]).astype(int)  # (n, 11) indicators
    with warnings.catch_warnings():  # a class with no file is predicted absent, with a warning that says so
        warnings.filterwarnings("ignore", message="Label .* is present in all training examples")
        return make_pipeline(FlooredScaler(), OneVsRestClassifier(LogisticRegression(C=c, max_iter=3000))).fit(x, targets)


def class_probabilities(head, x: np.ndarray) -> np.ndarray:
    """(n, 11) probabilities over every class (0 for a class the head never saw)."""
    p = np.zeros((len(x), len(CODES)))
    p[:, head.classes_] = head.predict_proba(x)
    return p


class Taggers:
    """One or more musicnn models (:class:`~instrec.embedding.Embedder`) whose embeddings are put side by side,
    in the order given; each model's file embeddings are cached on their own (:func:`file_embedding`). The
    models may differ in their outputs' widths (musicnn's VGG models)."""

    def __init__(self, models: tuple[Path, ...] = (MODEL,)):
        if not models:
            raise ValueError("no tagger to embed with")
        self.models = tuple(Path(m) for m in models)
        if len({_model_sha256(m) for m in self.models}) < len(self.models):
            raise ValueError(f"a tagger is named twice ({', '.join(m.name for m in self.models)}): "
                             "its embedding would be counted twice")
        self.embedders = [Embedder(m) for m in self.models]
        #: where each model's values start in the side-by-side embedding, and its width
        self.starts = np.cumsum([0, *(e.size for e in self.embedders)])
        self.size = int(self.starts[-1])

    def columns(self, outputs: tuple[str, ...]) -> np.ndarray:
        """Indices of the chosen outputs of every model in the side-by-side embedding (:func:`columns`)."""
        return np.concatenate([columns(outputs, e.widths) + start for e, start in zip(self.embedders, self.starts)])

    def folder(self, folder: Path, cache: Path | None = None) -> tuple[list[Path], np.ndarray, np.ndarray, list[Path]]:
        """:func:`embed_folder`, every model's embeddings side by side."""
        got = [embed_folder(e, folder, cache) for e in self.embedders]
        return got[0][0], np.concatenate([g[1] for g in got], axis=1), got[0][2], got[0][3]

    def files(self, paths: list[Path], cache: Path | None = None) -> tuple[np.ndarray, np.ndarray, list[Path]]:
        """:func:`embed_files`, every model's embeddings side by side."""
        got = [embed_files(e, paths, cache) for e in self.embedders]
        return got[0][0], np.concatenate([g[1] for g in got], axis=1), got[0][2]

    def patches(self, mel_patches: np.ndarray) -> np.ndarray:
        """(n, 187, 96) patches -> (n, size): each patch's outputs, model after model."""
        return np.concatenate([np.concatenate(list(e.outputs(mel_patches).values()), axis=1)
                               for e in self.embedders], axis=1)


def fit(train: list[Path], c: float = C, cache: Path | None = None, taggers: Taggers | None = None,
        outputs: tuple[str, ...] = tuple(OUTPUTS), per_class: bool = False):
    """The head (:func:`fit_head`) fitted on the chosen ``outputs`` of the ``taggers`` (default the shipped
    musicnn model) for every audible file of the ``train`` folders; also returns those files and the silent
    files left out."""
    taggers = taggers or Taggers()
    fitted = [taggers.folder(Path(folder), cache) for folder in train]
    x, y = np.concatenate([f[1] for f in fitted]), np.concatenate([f[2] for f in fitted])
    head = fit_head(x[:, taggers.columns(outputs)], y, c, per_class)
    return head, [p for f in fitted for p in f[0]], [p for f in fitted for p in f[3]]


def _tagger_graphs(models: tuple[Path, ...]):
    """The models' ONNX graphs merged into one whose input ``mel:0`` every model reads: the first model's
    names kept, each further model's prefixed ``tagger<k>/``. Returns the model, each tagger's output names
    in :data:`OUTPUTS` order, and the width of all of them side by side."""
    import onnx

    def width(model) -> int:
        return sum(o.type.tensor_type.shape.dim[-1].dim_value for o in model.graph.output)

    merged = onnx.load(str(models[0]))
    outputs = [[f"{name}:0" for name in OUTPUTS]]
    size = width(merged)
    for k, path in enumerate(models[1:], start=1):
        other = onnx.load(str(path))
        size += width(other)
        prefix = f"tagger{k}/"
        other = onnx.compose.add_prefix(other, prefix)
        keep = {prefix + "mel:0": "mel:0"}  # the shared input
        for node in other.graph.node:
            node.input[:] = [keep.get(name, name) for name in node.input]
        merged.graph.node.extend(other.graph.node)
        merged.graph.initializer.extend(other.graph.initializer)
        outputs.append([f"{prefix}{name}:0" for name in OUTPUTS])
    return merged, outputs, size


def to_onnx(head, out: Path, models: tuple[Path, ...] = (MODEL,)) -> None:
    """The musicnn models' graphs with ``head`` (a fitted StandardScaler + LogisticRegression pipeline over
    every output of every model, side by side) appended: ``mel:0`` (n, 187, 96) -> ``probabilities`` (n, 11)."""
    import onnx
    from onnx import helper, numpy_helper

    scaler, regression = head[0], head[-1]
    if not isinstance(regression, LogisticRegression):
        raise ValueError("only the multinomial head is exported (a head per class is for experiments)")
    graph, outputs, size = _tagger_graphs(tuple(models))
    if scaler.mean_.shape != (size,):
        raise ValueError(f"the head must see all {size} values of the embedding "
                         f"({len(models)} musicnn model{'s' if len(models) > 1 else ''}), not {scaler.mean_.shape[0]}")
    weights = np.zeros((len(scaler.mean_), len(CODES)), np.float32)
    bias = np.full(len(CODES), ABSENT_LOGIT, np.float32)
    coef, intercept, classes = regression.coef_, regression.intercept_, regression.classes_
    if len(classes) == 2:  # scikit-learn's binary form: one logit z, p = sigmoid(z) = softmax([0, z])
        coef, intercept = np.concatenate([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    weights[:, classes] = coef.T
    bias[classes] = intercept
    g = graph.graph
    g.initializer.extend([numpy_helper.from_array(scaler.mean_.astype(np.float32), "head_mean"),
                          numpy_helper.from_array(scaler.scale_.astype(np.float32), "head_scale"),
                          numpy_helper.from_array(weights, "head_weights"),
                          numpy_helper.from_array(bias, "head_bias")])
    g.node.extend([
        helper.make_node("Concat", [name for names in outputs for name in names], ["embedding"], axis=1),  # (n, size)
        helper.make_node("Sub", ["embedding", "head_mean"], ["centred"]),
        helper.make_node("Div", ["centred", "head_scale"], ["standardised"]),
        helper.make_node("MatMul", ["standardised", "head_weights"], ["weighted"]),  # (n, 11)
        helper.make_node("Add", ["weighted", "head_bias"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ])
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, ["patches", len(CODES)]))
    onnx.checker.check_model(graph)
    onnx.save(graph, str(out))


def check_parity(head, onnx_path: Path, mel_patches: np.ndarray, taggers: Taggers, atol: float = 1e-5) -> float:
    """Largest difference between onnxruntime's and scikit-learn's probabilities on ``mel_patches``;
    ValueError over ``atol``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(["probabilities"], {"mel:0": mel_patches})[0]
    x = taggers.patches(mel_patches)
    worst = float(np.abs(got - class_probabilities(head, x)).max())
    if not worst <= atol:
        raise ValueError(f"head.onnx differs from the fitted head by {worst:.2e} (over {atol:.0e})")
    return worst


def heard_libraries(train: list[Path]) -> list[str]:
    """The recorded-note libraries (and singers) the ``train`` folders were rendered with, as each rendered
    corpus (``<corpus>/train``) lists them in its ``corpus.json`` (every library it could play, as the CNNs'
    card lists theirs); folders of other data add none."""
    names = set()
    for folder in map(Path, train):
        manifest = folder.parent / "corpus.json"
        if manifest.is_file():
            names.update(json.loads(manifest.read_text()).get("libraries", []))
    return sorted(names)


def export(train: list[Path], out: Path, c: float = C, cache: Path | None = None,
           taggers: tuple[Path, ...] = (MODEL,)) -> dict:
    """Fit on the ``taggers``' embeddings, write ``out/head.onnx`` (checked against scikit-learn on real
    patches of the training files) and ``out/head.json``; returns the latter."""
    embedder = Taggers(taggers)
    head, audible, silent = fit(train, c, cache, embedder)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "head.onnx.tmp"
    to_onnx(head, tmp, embedder.models)
    probe = audible[:: max(1, len(audible) // 8)][:8]  # eight files spread over the training folders
    mel = np.concatenate([patches(audio.load(p), sr=audio.DEFAULT.sample_rate) for p in probe])
    try:
        worst = check_parity(head, tmp, mel, embedder)
    except ValueError:
        tmp.unlink()
        raise
    tmp.replace(out / "head.onnx")
    info = {"train": [str(t) for t in train], "train_files": len(audible), "silent_files": [str(p) for p in silent],
            "libraries": heard_libraries(train), "c": c,
            "classes": [CODES[k] for k in head[-1].classes_], "outputs": list(OUTPUTS),
            "musicnn_sha256": _model_sha256(embedder.models[0]),
            "taggers": [{"file": m.name, "sha256": _model_sha256(m)} for m in embedder.models],
            "sha256": sha256(out / "head.onnx"),
            "parity": {"patches": len(mel), "max_abs_diff": worst}}
    (out / "head.json").write_text(json.dumps(info, indent=1))
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.head", description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=Path, action="append", required=True, help="labelled training folder (repeatable)")
    ap.add_argument("--out", type=Path, required=True, help="folder for head.onnx and head.json")
    ap.add_argument("--c", type=float, default=C, help=f"the logistic regression's inverse regularisation (default {C})")
    ap.add_argument("--cache", type=Path, help="keep each file's embedding here")
    ap.add_argument("--tagger", type=Path, action="append", default=[],
                    help=f"a musicnn model in ONNX (export/musicnn_to_onnx.py) whose embedding the head sees; "
                         f"repeated, side by side (default the shipped {MODEL.name})")
    args = ap.parse_args(argv)
    try:
        info = export(args.train, args.out, args.c, args.cache, tuple(args.tagger) or (MODEL,))
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"head fitted on {info['train_files']} files ({len(info['silent_files'])} silent left out), "
          f"parity {info['parity']['max_abs_diff']:.1e} on {info['parity']['patches']} patches: {args.out / 'head.onnx'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
