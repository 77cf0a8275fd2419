"""What a music tagger trained on real recordings hears: musicnn's embedding, through onnxruntime.

musicnn (J. Pons and X. Serra, "musicnn: pre-trained convolutional neural networks for music audio
tagging", ISMIR 2019 late-breaking demo; ISC licence) was trained on the MagnaTagATune dataset, about
25 000 real song excerpts tagged with 50 tags (guitar, piano, violin, flute, cello, vocal, female, ...).
Its model ships here converted to ONNX (``instrec/pretrained/musicnn_mtt.onnx``, made by
``export/musicnn_to_onnx.py``). A classifier fitted on its embedding of the synthetic corpus
(``training.head``) starts from features learnt on real recording setups, which no
CNN trained on the corpus alone can have.

Its input is its own picture of the sound, not one of the three of :mod:`instrec.features`: a 96-band
mel power spectrogram of 16 kHz audio (512-point FFT, hop 256), compressed as ``log10(10000 * S + 1)``,
cut into 3-second patches of 187 frames. Patches start every second, so a file gives one patch per second
as the CNNs give one window per second, less two; a file under 3 seconds is repeated to fill one.
"""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np

from .audio import AudioError, resample
from .runtime import default_threads, session_options

MODEL = Path(__file__).parent / "pretrained" / "musicnn_mtt.onnx"
#: Bumped whenever :func:`patches` computes other values for the same audio (embedding caches key on it).
VERSION = 1
SAMPLE_RATE = 16000
N_FFT = 512
HOP_LENGTH = 256
N_MELS = 96
#: 3 s as musicnn counts them: ``librosa.time_to_frames(3, sr=16000, hop_length=256, n_fft=512) + 1``
PATCH_FRAMES = 187
STEP_FRAMES = SAMPLE_RATE // HOP_LENGTH  #: 62 frames: a patch starts every second (0.992 s)
#: the model's outputs per patch and their widths
OUTPUTS = {"max_pool": 753, "mean_pool": 753, "penultimate": 200, "taggram": 50}
EMBEDDING_SIZE = sum(OUTPUTS.values())


def log_mel(y: np.ndarray, *, sr: int) -> np.ndarray:
    """musicnn's input spectrogram.

    Returns
    -------
    S : np.ndarray [shape=(t, 96), dtype=float32]
        ``log10(10000 * mel power + 1)`` of ``y`` resampled to 16 kHz, one row per 16 ms frame.
    """
    y = resample(np.asarray(y, np.float32), sr, SAMPLE_RATE)
    power = librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS)
    return np.log10(10000 * power.T + 1).astype(np.float32)


def patches(y: np.ndarray, *, sr: int) -> np.ndarray:
    """Mono audio -> (n_patches, 187, 96) float32 patches of :func:`log_mel`, one starting every second.

    A signal under 3 seconds is repeated end to end to fill one patch; a tail shorter than a patch is left out.
    """
    if y.size == 0:
        raise AudioError("no samples to embed")
    s = log_mel(y, sr=sr)
    if len(s) < PATCH_FRAMES:
        s = np.tile(s, (-(-PATCH_FRAMES // len(s)), 1))[:PATCH_FRAMES]
    starts = range(0, len(s) - PATCH_FRAMES + 1, STEP_FRAMES)
    return np.stack([s[i : i + PATCH_FRAMES] for i in starts])


class Embedder:
    """musicnn's ONNX model in an onnxruntime session: patches -> its outputs per patch."""

    def __init__(self, model: str | Path = MODEL, *, threads: int | None = None):
        import onnxruntime as ort

        if not Path(model).is_file():
            raise FileNotFoundError(f"{model}: musicnn's ONNX model is missing (python export/musicnn_to_onnx.py makes it)")
        self.session = ort.InferenceSession(str(model), session_options(ort, threads or default_threads()),
                                            providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.names = [o.name for o in self.session.get_outputs()]

    def outputs(self, mel_patches: np.ndarray, batch: int = 32) -> dict[str, np.ndarray]:
        """(n, 187, 96) -> {output name: (n, width)} in the order of :data:`OUTPUTS`."""
        mel_patches = np.asarray(mel_patches, np.float32)
        if mel_patches.ndim != 3 or mel_patches.shape[1:] != (PATCH_FRAMES, N_MELS) or not len(mel_patches):
            raise ValueError(f"expected (n >= 1, {PATCH_FRAMES}, {N_MELS}) patches, got shape {mel_patches.shape}")
        runs = [self.session.run(None, {self.input: mel_patches[i : i + batch]})
                for i in range(0, len(mel_patches), batch)]
        got = {name.split(":")[0]: np.concatenate([r[k] for r in runs]) for k, name in enumerate(self.names)}
        return {name: got[name] for name in OUTPUTS}

    def embed(self, y: np.ndarray, *, sr: int) -> np.ndarray:
        """Mono audio -> (n_patches, EMBEDDING_SIZE): each patch's outputs side by side."""
        return np.concatenate(list(self.outputs(patches(y, sr=sr)).values()), axis=1)
