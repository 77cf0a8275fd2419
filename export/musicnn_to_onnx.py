"""Convert a musicnn model (Pons & Serra 2019) from its TensorFlow checkpoint to ONNX.

    python export/musicnn_to_onnx.py [--model MTT_musicnn] [--out instrec/pretrained/musicnn_mtt.onnx]
        [--reference tests/data/musicnn_reference.npz]

Run once, in an environment of its own, since musicnn's TensorFlow 1 graph needs TensorFlow 2.15 (the last
release whose ``tf.compat.v1.layers`` builds it) and NumPy 1:

    python -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install tensorflow-cpu==2.15.1 "numpy<2" tf2onnx==1.17.0 onnx==1.16.2 protobuf==3.20.3 librosa soundfile
    /tmp/tfenv/bin/pip install --no-deps musicnn==0.1.0
    /tmp/tfenv/bin/python export/musicnn_to_onnx.py

The graph is built for inference (batch normalisation with its moving statistics, no dropout), its
variables frozen, and converted with tf2onnx. Input ``mel``: (patches, 187, 96) float32, musicnn's
``log10(10000 * mel power + 1)`` of 3-second patches (:func:`instrec.embedding.patches` computes it).
Outputs per patch: ``taggram`` (the 50 tag probabilities), ``penultimate`` (200), ``max_pool`` and
``mean_pool`` (753 each). musicnn's VGG models (``MTT_vgg``, ``MSD_vgg``: five 3x3 convolution blocks, no
dense layer) are given the same output names (:func:`vgg_features`): ``penultimate`` their last block
flattened (256), ``max_pool`` and ``mean_pool`` their fourth block pooled over time (768 each).
TensorFlow's own outputs for a few patches are written to ``--reference``, so that the test suite checks
the shipped ONNX file against the original without TensorFlow.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = ("taggram", "penultimate", "max_pool", "mean_pool")
PATCH_FRAMES, N_MELS = 187, 96


def reference_patches(clip: Path) -> np.ndarray:
    """(3, 187, 96): two random patches in musicnn's value range and the start of a real clarinet."""
    import librosa

    y, sr = librosa.load(clip, sr=16000)
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=512, hop_length=256, n_mels=N_MELS).T
    real = np.log10(10000 * mel + 1)[:PATCH_FRAMES]
    real = np.concatenate([real, real])[:PATCH_FRAMES]  # a clip a little under 3 s
    noise = np.random.default_rng(0).random((2, PATCH_FRAMES, N_MELS)) * 3
    return np.concatenate([noise, real[None]]).astype(np.float32)


def vgg_features(tf, pool4, pool5):
    """musicnn's VGG models end in five pooled convolution blocks and no dense layer: their outputs under
    musicnn's names are the mean and the max over time of the fourth block ((patches, 11, 6, 128) -> 768 each,
    every band of every filter) and the fifth block flattened (256, the layer its tags are read from)."""
    bands = pool4.shape[2] * pool4.shape[3]
    mean_pool = tf.reshape(tf.reduce_mean(pool4, axis=1), [-1, bands])
    max_pool = tf.reshape(tf.reduce_max(pool4, axis=1), [-1, bands])
    return mean_pool, max_pool, tf.compat.v1.layers.flatten(pool5)


def convert(model: str, out: Path, reference: Path) -> str:
    import tensorflow as tf
    import tf2onnx
    from musicnn import configuration, models

    tf.compat.v1.disable_eager_execution()
    labels = configuration.MTT_LABELS if model.startswith("MTT") else configuration.MSD_LABELS
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, PATCH_FRAMES, N_MELS], name="mel")
        if "vgg" in model:
            logits, *_, pool4, pool5 = models.define_model(x, False, model, len(labels))
            mean_pool, max_pool, penultimate = vgg_features(tf, pool4, pool5)
        else:
            logits, *_, mean_pool, max_pool, penultimate = models.define_model(x, False, model, len(labels))
        outputs = [tf.identity(tf.nn.sigmoid(logits), name="taggram"), tf.identity(penultimate, name="penultimate"),
                   tf.identity(max_pool, name="max_pool"), tf.identity(mean_pool, name="mean_pool")]
        session = tf.compat.v1.Session(graph=graph)
        tf.compat.v1.train.Saver().restore(session, os.path.join(os.path.dirname(models.__file__), model, ""))
        frozen = tf.compat.v1.graph_util.convert_variables_to_constants(session, graph.as_graph_def(), list(OUTPUTS))
        probe = reference_patches(ROOT / "tests/data/real/medley-solos_cla_000_003d41a8.flac")
        expected = session.run(outputs, {x: probe})
    out.parent.mkdir(parents=True, exist_ok=True)
    tf2onnx.convert.from_graph_def(frozen, input_names=["mel:0"], output_names=[f"{n}:0" for n in OUTPUTS],
                                   opset=17, output_path=str(out))
    np.savez_compressed(reference, mel=probe, tags=np.array(labels), **dict(zip(OUTPUTS, expected)))
    return hashlib.sha256(out.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="MTT_musicnn", help="musicnn's model name (MTT_musicnn, MSD_musicnn, MTT_vgg, MSD_vgg)")
    ap.add_argument("--out", type=Path, default=ROOT / "instrec/pretrained/musicnn_mtt.onnx")
    ap.add_argument("--reference", type=Path, default=ROOT / "tests/data/musicnn_reference.npz")
    args = ap.parse_args(argv)
    try:
        digest = convert(args.model, args.out, args.reference)
    except ImportError as exc:
        print(f"error: {exc.name} is not installed; see this script's docstring for its environment", file=sys.stderr)
        return 1
    print(f"wrote {args.out} (sha256 {digest}) and {args.reference}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
