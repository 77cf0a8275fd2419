"""What a music tagger trained on real recordings hears: musicnn's embedding, through onnxruntime.

musicnn (J. Pons and X. Serra, "musicnn: pre-trained convolutional neural networks for music audio
tagging", ISMIR 2019 late-breaking demo; ISC licence) was trained on the MagnaTagATune dataset, about
25 000 real song excerpts tagged with 50 tags (guitar, piano, violin, flute, cello, vocal, female, ...).
Its model ships here converted to ONNX (``instrec/pretrained/musicnn_mtt.onnx``, made by
``export/musicnn_to_onnx.py``), and so does the same network trained by its authors on the Million Song
Dataset (``musicnn_msd.onnx``: about 200 000 real songs, 50 Last.fm tags), and the VGG network its authors
trained beside it on MagnaTagATune (``musicnn_mtt_vgg.onnx``: the same input and output names, other
widths, :attr:`Embedder.widths`). A classifier fitted on its embedding of the synthetic corpus
(``training.head``) starts from features learnt on real recording setups, which no
CNN trained on the corpus alone can have.

Its input is its own picture of the sound, not one of the three of :mod:`instrec.features`: a 96-band
mel power spectrogram of 16 kHz audio (512-point FFT, hop 256), compressed as ``log10(10000 * S + 1)``,
cut into 3-second patches of 187 frames. Patches start every second, so a file gives one patch per second
as the CNNs give one window per second, less two; a file under 3 seconds is repeated to fill one.

Served beside the CNNs (:class:`WindowPatches`), the 1-second windows of :func:`instrec.audio.n_windows`
are taken ``stride`` at a time (the manifest's ``models.musicnn.stride``: 1, or 3 for patches that tile
the signal), and each group gets the patch of the 3 seconds around its middle window (its only one, the
second of two, the middle of three: the second before, the window, the second after), moved inside the
signal at its ends, so a patch is the same whether the
file was decoded at once or streamed in blocks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import filterbanks
from .audio import AudioError, n_windows, resample
from .features import stft_magnitude
from .params import DEFAULT, FeatureParams
from .runtime import default_threads, session_options

MODEL = Path(__file__).parent / "pretrained" / "musicnn_mtt.onnx"
#: musicnn's Million Song Dataset model (``MSD_musicnn``), the same network trained on other real recordings
MSD_MODEL = Path(__file__).parent / "pretrained" / "musicnn_msd.onnx"
#: musicnn's VGG model, trained by its authors on MagnaTagATune (``MTT_vgg``)
VGG_MODEL = Path(__file__).parent / "pretrained" / "musicnn_mtt_vgg.onnx"
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
    power = stft_magnitude(y, n_fft=N_FFT, hop_length=HOP_LENGTH) ** 2  # (t, 257)
    return np.log10(10000 * (power @ _mel_basis().T) + 1).astype(np.float32)


@filterbanks.cached
def _mel_basis() -> np.ndarray:
    """The mel filter bank of ``librosa.feature.melspectrogram``'s defaults, musicnn's: (96, 257)."""
    return filterbanks.call("filters.mel", sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, dtype=np.float32)


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


class WindowPatches:
    """One musicnn patch per group of ``stride`` analysis windows of a prepared signal that arrives in blocks.

    Window ``i`` of :func:`instrec.audio.n_windows` holds samples ``[i W, (i + 1) W)`` (``W`` the window's
    samples, about a second). Windows are taken ``stride`` at a time (the last group may be shorter), and
    group ``g`` gets the patch of its middle window ``a = g stride + stride // 2`` (its only window, the
    second of two, the middle of three; the signal's last window when the signal ends before ``a``): the 3 seconds ``[(a - 1) W, (a + 2) W)``, moved to start at 0 for the first
    window and to end with the signal for the last ones. With ``stride`` 1 every window has its own patch;
    with 3 the patches tile the signal without overlapping, a third of the patches to compute. A signal
    under 3 seconds gives every group :func:`patches`' one tiled patch. Each patch is computed from its own
    3 seconds alone, so the answer does not depend on the blocks. :meth:`watch` passes blocks through
    while keeping what the next patches need (3 windows, and what has arrived since :meth:`ready` was last
    called); :meth:`ready` gives the patches that are complete, :meth:`finish` the rest, and
    :meth:`spread` gives each window its group's values.
    """

    SPAN = 3  #: windows in a patch

    def __init__(self, params: FeatureParams = DEFAULT, stride: int = 1):
        self.params = params
        self.stride = self.check_stride(stride)
        self.W = params.window_samples
        self.total = 0  # samples seen
        self.next = 0  # next group of windows to give a patch
        self._buffer = np.zeros(0, np.float32)
        self._start = 0  # absolute index of _buffer[0]

    @classmethod
    def check_stride(cls, stride) -> int:
        """``stride`` when a patch can serve that many windows (1 to :attr:`SPAN`); else a ValueError."""
        if not isinstance(stride, int) or not 1 <= stride <= cls.SPAN:
            raise ValueError(f"a patch serves 1 to {cls.SPAN} windows, not {stride!r}")
        return stride

    def _middle(self, group: int) -> int:
        """The window whose 3 seconds are group ``group``'s patch, before the signal's end is known."""
        return group * self.stride + self.stride // 2

    def watch(self, blocks):
        for block in blocks:
            block = np.asarray(block, np.float32)
            self._buffer = np.concatenate([self._buffer, block])
            self.total += len(block)
            yield block

    def _patch(self, start: int) -> np.ndarray:
        lo = start - self._start
        segment = self._buffer[lo : lo + self.SPAN * self.W]
        return patches(segment, sr=self.params.sample_rate)[0]

    def _drop(self) -> None:
        keep = min(max(self._middle(self.next) - 1, 0) * self.W, self.total - self.SPAN * self.W)
        if keep > self._start:
            self._buffer, self._start = self._buffer[keep - self._start :], keep

    def ready(self) -> np.ndarray:
        """(k, 187, 96) patches of the next groups whose 3 seconds have all arrived."""
        out = []
        while (start := max(self._middle(self.next) - 1, 0) * self.W) + self.SPAN * self.W <= self.total:
            out.append(self._patch(start))
            self.next += 1
        self._drop()
        return np.stack(out) if out else np.zeros((0, PATCH_FRAMES, N_MELS), np.float32)

    def finish(self) -> np.ndarray:
        """(k, 187, 96) patches of the groups left, once the whole signal has arrived."""
        n = n_windows(self.total, self.params)
        groups = -(-n // self.stride)
        if self.total < self.SPAN * self.W:
            if not self.total:
                raise AudioError("no samples to embed")
            out = [patches(self._buffer, sr=self.params.sample_rate)[0]] * (groups - self.next)  # nothing was dropped
        else:
            last = self.total - self.SPAN * self.W
            out = [self._patch(min(max(min(self._middle(g), n - 1) - 1, 0) * self.W, last))
                   for g in range(self.next, groups)]
        self.next = groups
        return np.stack(out) if out else np.zeros((0, PATCH_FRAMES, N_MELS), np.float32)

    def spread(self, values: np.ndarray, n_windows: int) -> np.ndarray:
        """(groups, ...) values, one per patch -> (n_windows, ...): each window its group's."""
        values = np.asarray(values)
        if len(values) != -(-n_windows // self.stride):
            raise ValueError(f"{len(values)} patches' values for {n_windows} windows {self.stride} at a time")
        return np.repeat(values, self.stride, axis=0)[:n_windows]


def window_patches(y: np.ndarray, params: FeatureParams = DEFAULT, stride: int = 1) -> np.ndarray:
    """(groups, 187, 96): the patch of every group of ``stride`` analysis windows of a whole prepared signal
    (:class:`WindowPatches`; with ``stride`` 1, one per window)."""
    windows = WindowPatches(params, stride)
    for _ in windows.watch([y]):
        pass
    return np.concatenate([windows.ready(), windows.finish()])


class Embedder:
    """musicnn's ONNX model in an onnxruntime session: patches -> its outputs per patch."""

    def __init__(self, model: str | Path = MODEL, *, threads: int | None = None):
        import onnxruntime as ort

        if not Path(model).is_file():
            raise FileNotFoundError(f"{model}: musicnn's ONNX model is missing (python export/musicnn_to_onnx.py makes it)")
        self.model = Path(model)
        self.session = ort.InferenceSession(str(model), session_options(ort, threads or default_threads()),
                                            providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.names = [o.name for o in self.session.get_outputs()]
        shapes = {o.name.split(":")[0]: o.shape for o in self.session.get_outputs()}
        if set(shapes) != set(OUTPUTS) or not all(isinstance(shapes[n][-1], int) for n in OUTPUTS):
            raise ValueError(f"{model}: a tagger answers {', '.join(OUTPUTS)} with fixed widths, not {shapes}")
        #: the widths of the model's outputs, in the order of :data:`OUTPUTS` (musicnn's are OUTPUTS' own; its
        #: VGG models have others)
        self.widths = {name: shapes[name][-1] for name in OUTPUTS}
        self.size = sum(self.widths.values())

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
        """Mono audio -> (n_patches, :attr:`size`): each patch's outputs side by side."""
        return np.concatenate(list(self.outputs(patches(y, sr=sr)).values()), axis=1)
