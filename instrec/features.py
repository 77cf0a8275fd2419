"""The three pictures of the sound the CNNs see, computed fast and cut into 1-second windows.

All three share one frame grid: frame ``t`` is centred on sample ``t * hop_length`` of the
(zero-padded) signal, as in ``librosa.stft(center=True)``, so they give the same number of
frames and windows for the same audio. Functions take keyword-only parameters whose defaults
come from :mod:`instrec.params`.

- :func:`mel`: natural-log mel magnitude spectrogram, identical to librosa's up to float32
  rounding (one STFT, one matrix product).
- :func:`modgd`: the modified group delay function (Murthy & Gadde; Rajan), vectorised over
  frames, with the cepstral smoothing done as two small matrix products.
- :func:`cqt_chroma`: a constant-Q transform computed octave by octave on a halved signal with
  one shared FFT kernel (librosa's own wavelet filters), folded to 36 chroma bins.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator

import numpy as np
import scipy.fft
import soxr
from numpy.lib.stride_tricks import sliding_window_view

from . import filterbanks
from .audio import AudioError, n_windows
from .params import DEFAULT, REPRESENTATIONS, FeatureParams

#: Bumped whenever the computed values change for the same parameters (feature caches key on it).
VERSION = 1


def n_frames(n_samples: int, params: FeatureParams = DEFAULT) -> int:
    """Frames on the shared grid for ``n_samples`` samples (``librosa.stft(center=True)``'s count)."""
    return 1 + n_samples // params.hop_length


def _frames(y: np.ndarray, frame_length: int, hop_length: int, n: int) -> np.ndarray:
    """(n, frame_length) view of centred frames of ``y``, zero-padded at both ends."""
    pad = frame_length // 2
    need = (n - 1) * hop_length + frame_length
    padded = np.zeros(max(need, len(y) + 2 * pad), dtype=np.float32)
    padded[pad : pad + len(y)] = y
    return sliding_window_view(padded, frame_length)[: (n - 1) * hop_length + 1 : hop_length]


# ---- log mel-spectrogram ---------------------------------------------------------------------


@filterbanks.cached
def _mel_basis(params: FeatureParams) -> np.ndarray:
    return filterbanks.call(
        "filters.mel",
        sr=params.sample_rate,
        n_fft=params.mel_n_fft,
        n_mels=params.n_mels,
        fmin=params.mel_fmin,
        fmax=params.mel_fmax,
        dtype=np.float32,
    )


@filterbanks.cached
def _window(name: str, length: int) -> np.ndarray:
    """scipy's periodic window ``name`` of ``length`` samples (``librosa.filters.get_window``), float32."""
    return filterbanks.call("filters.get_window", window=name, Nx=length, fftbins=True).astype(np.float32)


def stft_magnitude(y: np.ndarray, *, n_fft: int, hop_length: int, window_name: str = "hann") -> np.ndarray:
    """Magnitude of the short-time Fourier transform on the shared frame grid.

    Returns
    -------
    S : np.ndarray [shape=(1 + n // hop_length, n_fft // 2 + 1), dtype=float32]
        ``|rfft(frame * window)|`` of centred, zero-padded frames (``librosa.stft(center=True,
        pad_mode="constant")``), one row per frame.
    """
    frames = _frames(np.asarray(y, np.float32), n_fft, hop_length, 1 + len(y) // hop_length)
    return np.abs(scipy.fft.rfft(frames * _window(window_name, n_fft), axis=-1))


def mel(y: np.ndarray, *, params: FeatureParams = DEFAULT) -> np.ndarray:
    """Natural-log mel magnitude spectrogram.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono signal at ``params.sample_rate``.

    Returns
    -------
    S : np.ndarray [shape=(n_mels, 1 + n // hop_length), dtype=float32]
        ``log(max(M @ |STFT|, log_floor))`` with a Hann window of ``mel_n_fft`` samples.
    """
    spec = stft_magnitude(y, n_fft=params.mel_n_fft, hop_length=params.hop_length)
    S = _mel_basis(params) @ spec.T
    return np.log(np.maximum(S, params.log_floor))


# ---- modified group delay --------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _cepstral_smoother(params: FeatureParams) -> tuple[np.ndarray, np.ndarray]:
    """Matrices that take log|X| (n_fft/2+1 bins) to its liftered, smoothed log-envelope.

    ``log S = (log|X| @ A) @ B``: A gives the real cepstrum's first ``lifter`` coefficients
    (the inverse DFT of an even spectrum is a cosine sum), B rebuilds the spectrum from them
    with the symmetric lifter (coefficient q and n_fft - q both kept), i.e. the same result
    as ``rfft(lifter * irfft(log|X|)).real`` without the two full-length FFTs.
    """
    n_fft, L = params.modgd_n_fft, params.modgd_lifter
    k = np.arange(n_fft // 2 + 1)[:, None]
    q = np.arange(L)[None, :]
    weight = np.full((n_fft // 2 + 1, 1), 2.0)  # bins 1 .. n_fft/2-1 appear twice in the full spectrum
    weight[0] = weight[-1] = 1.0
    A = weight * np.cos(2 * np.pi * k * q / n_fft) / n_fft  # (bins, L)
    two_sided = np.where(q == 0, 1.0, 2.0)  # c[q] and c[n_fft - q] are equal for q > 0
    B = (two_sided * np.cos(2 * np.pi * k * q / n_fft)).T  # (L, bins)
    return A.astype(np.float32), B.astype(np.float32)


def modgd(y: np.ndarray, *, params: FeatureParams = DEFAULT) -> np.ndarray:
    """Modified group delay feature (modgdgram), sign kept.

    For each Hamming-windowed frame x[n] (n = 0 .. N-1, N = 50 ms):
    X = DFT(x[n]), Y = DFT(n x[n]), S = |X| cepstrally smoothed (symmetric lifter),
    tau = (X_R Y_R + X_I Y_I) / |S|^(2 gamma), tau_m = sign(tau) |tau|^alpha.
    Returned as sign(tau_m) * log1p(|tau_m|) for the first ``modgd_bins`` bins. ``|X|`` and
    ``S`` are floored relative to the frame maximum, so silence gives zeros, never NaN.

    Returns
    -------
    G : np.ndarray [shape=(modgd_bins, 1 + n // hop_length), dtype=float32]
    """
    N, n_fft, n_bins = params.modgd_frame_length, params.modgd_n_fft, params.modgd_bins
    frames = _frames(np.asarray(y, np.float32), N, params.hop_length, n_frames(len(y), params))
    # x[n] and n x[n] of every frame, zero-padded to n_fft in one buffer: one real FFT for both
    buf = np.zeros((2, len(frames), n_fft), np.float32)
    np.multiply(frames, _window("hamming", N), out=buf[0, :, :N])
    np.multiply(buf[0, :, :N], np.arange(N, dtype=np.float32), out=buf[1, :, :N])  # n starts at 0
    X, Y = scipy.fft.rfft(buf, axis=-1)
    Y = Y[:, :n_bins]

    mag = np.abs(X)
    peak = mag.max(axis=-1, keepdims=True)
    floor = np.maximum(peak * params.modgd_rel_floor, np.finfo(np.float32).tiny)
    log_mag = np.log(np.maximum(mag, floor))
    A, B = _cepstral_smoother(params)
    S = np.exp((log_mag @ A) @ B[:, :n_bins])  # smoothed envelope, first n_bins bins
    S = np.maximum(S, floor)

    X = X[:, :n_bins]
    numerator = X.real * Y.real + X.imag * Y.imag
    denominator = S ** (2 * params.modgd_gamma)  # may underflow to 0 for a silent frame when gamma > 0.5
    tau = np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)
    tau_m = np.abs(tau) ** params.modgd_alpha
    G = np.sign(tau) * np.log1p(tau_m)
    return np.ascontiguousarray(G.T, dtype=np.float32)


# ---- CQT chromagram --------------------------------------------------------------------------


@filterbanks.cached
def _cqt_kernel(params: FeatureParams) -> tuple[np.ndarray, slice, int, np.ndarray]:
    """FFT-domain kernel of the top octave, shared by every octave of the halved signals.

    Returns the kernel restricted to the FFT bins where it is not negligible (a dense
    (bins, 36) matrix on that slice), the slice, the FFT size, and the per-bin gain that
    gives librosa's CQT magnitude convention (a unit cosine -> sqrt(filter length) / 2).
    """
    bpo, sr = params.chroma_bins, params.sample_rate
    freqs = params.cqt_fmin * 2.0 ** (np.arange(params.cqt_bins) / bpo)
    top = freqs[-bpo:]
    filters, _ = filterbanks.call("filters.wavelet", freqs=top, sr=sr, window="hann", norm=1, pad_fft=True)
    n_fft = filters.shape[1]
    spectra = scipy.fft.fft(filters, axis=-1)[:, : n_fft // 2 + 1]  # (36, n_fft/2+1)
    # correlation with the filter = inner product with conj(spectrum) / n_fft
    K = np.conj(spectra) / n_fft
    keep = np.abs(K).max(axis=0) > 1e-3 * np.abs(K).max()
    lo, hi = np.flatnonzero(keep)[[0, -1]]
    lengths = filterbanks.call("filters.wavelet_lengths", freqs=freqs, sr=sr, window="hann")[0]
    return K[:, lo : hi + 1].T.astype(np.complex64), slice(lo, hi + 1), n_fft, np.sqrt(lengths).astype(np.float32)


@filterbanks.cached
def _chroma_map(params: FeatureParams) -> np.ndarray:
    return filterbanks.call(
        "filters.cq_to_chroma",
        n_input=params.cqt_bins,
        bins_per_octave=params.chroma_bins,
        n_chroma=params.chroma_bins,
        fmin=params.cqt_fmin,
    )


def cqt(y: np.ndarray, *, params: FeatureParams = DEFAULT) -> np.ndarray:
    """Constant-Q magnitude, ``cqt_octaves`` octaves of ``chroma_bins`` bins from ``cqt_fmin``.

    Octave o (0 = top) is analysed on the signal halved o times (soxr), with the top octave's
    kernel. The three highest octaves land exactly on the 10 ms grid (hops 220, 110, 55); lower
    octaves keep a hop of 55 samples at their own rate (20, 40, ... ms, still under a tenth of
    their filters' length) and are linearly interpolated onto the grid.

    Returns
    -------
    C : np.ndarray [shape=(cqt_bins, 1 + n // hop_length), dtype=float32]
        Same magnitude convention as ``librosa.cqt`` with ``tuning=0``.
    """
    K, band, n_fft, gain = _cqt_kernel(params)
    bpo, hop = params.chroma_bins, params.hop_length
    T = n_frames(len(y), params)
    C = np.empty((params.cqt_bins, T), dtype=np.float32)
    sig = np.asarray(y, np.float32)
    for octave in range(params.cqt_octaves):
        if octave:
            sig = soxr.resample(sig, 2, 1, quality="HQ")
        my_hop = hop >> octave if hop % (1 << octave) == 0 else None
        if my_hop is not None and my_hop >= 8:
            stride, n = 1, T
        else:  # coarser grid: every `stride` grid frames
            base = octave
            while hop % (1 << base):
                base -= 1
            my_hop, stride = hop >> base, 1 << (octave - base)
            n = -(-(T - 1) // stride) + 1
        frames = _frames(sig, n_fft, my_hop, n)
        spec = scipy.fft.rfft(frames, axis=-1)[:, band]
        mag = np.abs(spec @ K).T  # (36, n)
        if stride > 1:
            t = np.arange(T) / stride
            i0 = np.minimum(t.astype(int), n - 2)
            w = (t - i0).astype(np.float32)
            mag = mag[:, i0] * (1 - w) + mag[:, i0 + 1] * w
        rows = slice(params.cqt_bins - bpo * (octave + 1), params.cqt_bins - bpo * octave)
        C[rows] = mag * gain[rows, None]
    return C


def cqt_chroma(y: np.ndarray, *, params: FeatureParams = DEFAULT) -> np.ndarray:
    """CQT chromagram, 36 bins (3 per semitone, bin 0 centred on C), each frame max-normalised.

    Returns
    -------
    chroma : np.ndarray [shape=(chroma_bins, 1 + n // hop_length), dtype=float32]
        In [0, 1]; all-zero frames (silence) stay zero.
    """
    chroma = _chroma_map(params) @ cqt(y, params=params)
    peak = chroma.max(axis=0, keepdims=True)
    return np.where(peak > 1e-10, chroma / np.maximum(peak, 1e-10), 0.0).astype(np.float32)


# ---- windows ---------------------------------------------------------------------------------

FUNCTIONS = {"mel": mel, "modgd": modgd, "cqt": cqt_chroma}


def bin_frequencies(representation: str, *, params: FeatureParams = DEFAULT) -> np.ndarray:
    """Centre frequency (Hz) of each bin of the mel or modgd axis (the chromagram has no such axis)."""
    if representation == "mel":
        fmax = params.mel_fmax or params.sample_rate / 2
        return filterbanks.call("mel_frequencies", n_mels=params.n_mels + 2, fmin=params.mel_fmin, fmax=fmax)[1:-1]
    if representation == "modgd":
        return np.arange(params.modgd_bins) * params.sample_rate / params.modgd_n_fft
    raise ValueError(f"{representation!r} has no frequency axis; expected mel or modgd")


def windows(S: np.ndarray, *, params: FeatureParams = DEFAULT) -> np.ndarray:
    """(F, t) -> (t // window_frames, 1, F, window_frames) float32, non-overlapping windows."""
    n = S.shape[1] // params.window_frames
    W = S[:, : n * params.window_frames].reshape(S.shape[0], n, params.window_frames)
    return np.ascontiguousarray(W.transpose(1, 0, 2)[:, None], dtype=np.float32)


def extract(
    y: np.ndarray,
    *,
    params: FeatureParams = DEFAULT,
    representations: tuple[str, ...] = REPRESENTATIONS,
) -> dict[str, np.ndarray]:
    """Prepared audio -> windows of each representation (the window rule of
    :func:`instrec.audio.n_windows` applied: every representation gives the same number of windows).

    The same code as the recognizer's streaming (:func:`stream_windows`), in one chunk.

    Returns
    -------
    dict representation -> np.ndarray [shape=(n_windows, 1, F, window_frames), dtype=float32]
    """
    chunks = list(stream_windows([np.asarray(y, np.float32)], params=params, representations=representations))
    return {rep: np.concatenate([c[rep] for c in chunks]) for rep in representations}


def stream_windows(blocks: Iterable[np.ndarray], *, params: FeatureParams = DEFAULT,
                   representations: tuple[str, ...] = REPRESENTATIONS,
                   chunk_windows: int | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Feature windows of a prepared signal given in blocks, ``chunk_windows`` windows at a time
    (all at the end when None): the one windowing path of instrec.

    The window rule of :func:`instrec.audio.n_windows` is applied to the whole signal (the last
    partial window zero-padded or dropped, short audio padded to one window), and each window is
    computed from the real signal around it (:func:`context_samples`), so the windows do not depend
    on how the signal was cut into blocks or chunks. ``chunk_windows`` must be a multiple of 4.
    Holds about one chunk of audio plus context at a time.
    """
    if chunk_windows is not None and (chunk_windows < 4 or chunk_windows % 4):
        raise ValueError("chunk_windows must be a positive multiple of 4 (see context_samples)")
    unknown = [r for r in representations if r not in FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown representations {unknown}; expected some of {REPRESENTATIONS}")
    W, hop = params.window_samples, params.hop_length
    contexts = {rep: context_samples(params, rep) for rep in representations}
    context = max(contexts.values())
    buffer = np.zeros(context, np.float32)  # zeros before the signal: the centred frames' padding
    buf_start = -context  # absolute sample index of buffer[0]
    first = 0  # next window to produce

    def emit(a: int, b: int) -> dict[str, np.ndarray]:
        out = {}
        for rep in representations:
            ctx = contexts[rep]
            lo = a * W - ctx - buf_start
            S = FUNCTIONS[rep](buffer[lo : lo + (b - a) * W + 2 * ctx], params=params)
            out[rep] = windows(S[:, ctx // hop : ctx // hop + (b - a) * params.window_frames], params=params)
        return out

    total = 0
    for block in blocks:
        block = np.asarray(block, np.float32)
        total += len(block)
        buffer = np.concatenate([buffer, block])
        # emit only when the right context lies surely inside the windows the rule will keep
        while chunk_windows and buf_start + len(buffer) >= (first + chunk_windows) * W + 2 * context + W:
            yield emit(first, first + chunk_windows)
            first += chunk_windows
            drop = first * W - context - buf_start
            buffer, buf_start = buffer[drop:], buf_start + drop
    if total == 0:
        raise AudioError("audio: holds no audio samples")
    n_total = n_windows(total, params)
    # samples past the last kept window are dropped, short audio zero-padded; then zeros as the
    # centred frames' padding after the end
    buffer = buffer[: n_total * W - buf_start]
    buffer = np.concatenate([buffer, np.zeros(n_total * W + context - buf_start - len(buffer), np.float32)])
    step = chunk_windows or n_total
    while first < n_total:
        b = min(first + step, n_total)
        yield emit(first, b)
        first = b


def context_samples(params: FeatureParams = DEFAULT, representation: str = "cqt") -> int:
    """Audio (samples) to put around a chunk so its frames of ``representation`` equal the whole signal's.

    The mel and modgd frames see only half their frame length on each side: that, rounded up to whole
    hops, is all they need. The CQT halves the signal up to ``cqt_octaves - 1`` times and samples its lowest octaves on a
    grid of up to 2^(octaves - 3) frames. A chunk gives exactly the whole signal's frames when its
    first sample (chunk start minus context) is a multiple of 2^(octaves - 1) samples and its first
    frame a multiple of 2^(octaves - 3) frames. With 22 000-sample windows of 100 frames, chunks
    starting on every 4th window and a context of 208 frames (45 760 samples, 2.08 s: longer than
    half the longest CQT filter, 0.8 s) satisfy both.
    """
    if representation != "cqt":
        half = max(params.mel_n_fft, params.modgd_frame_length) // 2 + 1
        return -(-half // params.hop_length) * params.hop_length
    decimation = 1 << (params.cqt_octaves - 1)
    grid = 1 << max(params.cqt_octaves - 3, 0)
    if (4 * params.window_samples) % decimation or (4 * params.window_frames) % grid:
        raise ValueError("these feature parameters do not allow exact chunking")
    frames = 2 * params.window_frames
    while (frames % grid) or ((frames * params.hop_length) % decimation):
        frames += 1
    return frames * params.hop_length


def compute(
    y: np.ndarray, *, params: FeatureParams = DEFAULT, representations: tuple[str, ...] = REPRESENTATIONS
) -> dict[str, np.ndarray]:
    """Each representation of ``y`` on the shared frame grid: name -> (F, 1 + len(y) // hop_length)."""
    unknown = [r for r in representations if r not in FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown representations {unknown}; expected some of {REPRESENTATIONS}")
    y = np.asarray(y, np.float32)
    return {name: FUNCTIONS[name](y, params=params) for name in representations}
