"""Decoding and checking audio: any file libsndfile reads -> mono float32 at the analysis rate.

Every failure a user can cause (missing, empty, truncated or non-audio file, NaN samples,
silence, absurd sample rates, too long) is an :class:`AudioError` with a message a person
can act on. Nothing here returns NaN, divides by zero or reads a whole huge file into memory
to find out it is too long.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError, EmptyFile, MissingFile, NotAudio, Silent, TooLong, TooShort
from .params import DEFAULT, FeatureParams

#: Extensions offered when a folder is given; decoding itself trusts the content, not the name.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")
#: Longest audio :func:`load` accepts by default (s); the recognizer streams longer files.
DEFAULT_MAX_DURATION_S = 20 * 60.0
#: Shortest audio, and least sound in it (:meth:`LevelMeter.sound_seconds`), the recognizer answers for (s).
#: Cut to 0.1 s, short notes of every class are named first about one time in five (chance: one in
#: eleven), most of them "voice"; from 0.15 s about half (docs/generalisation.md, "How short a file can
#: be"). The functions of this module take no minimum by default.
MIN_DURATION_S = 0.15
#: A signal whose peak is below this is silent: one 16-bit LSB is 3.1e-5 (-90 dBFS).
SILENCE_PEAK = 1e-5
#: Recordings below this rate cannot hold the frequencies the features look at.
MIN_SAMPLE_RATE = 4000
MAX_SAMPLE_RATE = 768_000



def _name(path: str | os.PathLike) -> str:
    return os.path.basename(os.fspath(path)) or os.fspath(path)


def _reason(exc: Exception, path: Path) -> str:
    """libsndfile's words without the file's path (messages name the file once, by its name)."""
    text = str(exc).replace(f"'{path}'", "the file").replace(str(path), "the file")
    return text[0].lower() + text[1:] if text else type(exc).__name__


def probe(path: str | os.PathLike, *, what: str | None = None) -> sf._SoundFileInfo:
    """Open the header of ``path``; AudioError when it is missing or not audio libsndfile reads.

    ``what`` names the file in messages (default: its base name; the app passes the name the
    user uploaded, never the server's path).
    """
    path = Path(path)
    what = what or _name(path)
    if not path.exists():
        raise MissingFile(f"{what}: file not found")
    if path.is_dir():
        raise MissingFile(f"{what}: is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise EmptyFile(f"{what}: file is empty (0 bytes)")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise NotAudio(
            f"{what}: not a readable audio file (WAV, FLAC, OGG or MP3 expected): {_reason(exc, path)}"
        ) from None
    if info.frames <= 0:
        raise AudioError(f"{what}: holds no audio samples")
    if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"{what}: sample rate {info.samplerate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
        )
    return info


def to_mono(y: np.ndarray) -> np.ndarray:
    """(samples,) or (samples, channels) -> (samples,) float32, the mean of the channels."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 1:
        return y
    # a sum of columns, not y.mean(axis=1): the same values (one rounding per addition, then an exact
    # scaling for 2 channels), without numpy's slow strided reduction over interleaved samples
    out = y[:, 0].copy()
    for c in range(1, y.shape[1]):
        out += y[:, c]
    if y.shape[1] > 1:
        out /= np.float32(y.shape[1])
    return out


def check_finite(y: np.ndarray, what: str) -> None:
    if not np.isfinite(y).all():
        bad = int(np.count_nonzero(~np.isfinite(y)))
        raise AudioError(f"{what}: {bad} samples are NaN or infinite")


def min_seconds_arg(text: str) -> float | None:
    """``--min-seconds S`` of the command lines: seconds >= 0, where 0 means no minimum (None)."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds >= 0:
        raise argparse.ArgumentTypeError(f"--min-seconds takes seconds >= 0, got {text!r}")
    return seconds or None


def check_duration(duration: float, what: str, max_duration_s: float | None,
                   min_duration_s: float | None = None) -> None:
    """TooLong over ``max_duration_s``, TooShort under ``min_duration_s`` (None: no limit)."""
    if max_duration_s is not None and duration > max_duration_s:
        raise TooLong(f"{what}: {duration:.0f} s long, over the limit of {max_duration_s:.0f} s")
    if min_duration_s is not None and duration < min_duration_s:
        raise TooShort(f"{what}: {duration:.3g} s long, under the minimum of {min_duration_s:g} s: "
                       "too little of a note to tell instruments apart")


def prepare(
    y: np.ndarray,
    sample_rate: int,
    *,
    params: FeatureParams = DEFAULT,
    what: str = "audio",
    max_duration_s: float | None = DEFAULT_MAX_DURATION_S,
    min_duration_s: float | None = None,
) -> np.ndarray:
    """Samples in memory -> mono float32 at ``params.sample_rate``, peak-normalised to 1.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (n, channels)]
        Samples in any float or integer type (integers are not rescaled: only the peak matters).
    sample_rate : int
        Rate of ``y`` in Hz.
    """
    y = np.asarray(y)
    if y.ndim not in (1, 2) or y.size == 0 or y.shape[0] == 0:
        raise AudioError(f"{what}: holds no audio samples")
    if not isinstance(sample_rate, (int, np.integer)) or not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{what}: sample rate {sample_rate!r} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz")
    check_duration(y.shape[0] / sample_rate, what, max_duration_s, min_duration_s)
    y = to_mono(y.astype(np.float32, copy=False))
    check_finite(y, what)
    y = resample(y, sample_rate, params.sample_rate)
    return normalise(y, what)


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """High-quality (soxr HQ) resampling of a mono float32 signal."""
    if orig_sr == target_sr:
        return np.ascontiguousarray(y, dtype=np.float32)
    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def normalise(y: np.ndarray, what: str = "audio") -> np.ndarray:
    """Divide by the peak absolute value; AudioError for silence instead of dividing by ~0."""
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak < SILENCE_PEAK:
        level = "digital silence" if peak == 0 else f"peak {20 * np.log10(peak):.0f} dBFS"
        raise Silent(f"{what}: audio is silent ({level}); nothing to recognise")
    return (y / peak).astype(np.float32, copy=False)


def load(
    path: str | os.PathLike,
    *,
    params: FeatureParams = DEFAULT,
    max_duration_s: float | None = DEFAULT_MAX_DURATION_S,
    what: str | None = None,
    min_duration_s: float | None = None,
) -> np.ndarray:
    """Decode ``path`` -> mono float32 at ``params.sample_rate``, peak-normalised to 1.

    The duration limits are checked on the header, and the minimum again on the decoded samples
    (a damaged header may promise more than the file holds).

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float32]
    """
    what = what or _name(path)
    info = probe(path, what=what)
    check_duration(info.frames / info.samplerate, what, max_duration_s, min_duration_s)
    try:
        y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise NotAudio(f"{what}: audio data is damaged or truncated: {_reason(exc, Path(path))}") from None
    if y.shape[0] == 0:
        raise AudioError(f"{what}: holds no audio samples (truncated?)")
    return prepare(y, sr, params=params, what=what, max_duration_s=None, min_duration_s=min_duration_s)


def stream(
    path: str | os.PathLike,
    *,
    params: FeatureParams = DEFAULT,
    block_s: float = 60.0,
    max_duration_s: float | None = None,
    what: str | None = None,
) -> Iterator[np.ndarray]:
    """Decode ``path`` in blocks: mono float32 at ``params.sample_rate``, *not* normalised.

    Memory stays bounded by ``block_s`` whatever the file's length. The blocks concatenated
    equal :func:`load` before normalisation, up to the resampler's streaming edge effects
    (soxr's stream mode is exact: it gives the same samples as one call).
    """
    what = what or _name(path)
    info = probe(path, what=what)
    check_duration(info.frames / info.samplerate, what, max_duration_s)
    rs = None if info.samplerate == params.sample_rate else soxr.ResampleStream(
        info.samplerate, params.sample_rate, 1, dtype="float32", quality="HQ"
    )
    blocksize = max(1, int(block_s * info.samplerate))
    try:
        with sf.SoundFile(str(path)) as f:
            while True:
                block = f.read(blocksize, dtype="float32", always_2d=True)
                last = block.shape[0] < blocksize
                y = to_mono(block)
                check_finite(y, what)
                if rs is not None:
                    y = rs.resample_chunk(y, last=last)
                if y.size:
                    yield y.astype(np.float32, copy=False)
                if last:
                    break
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise NotAudio(f"{what}: audio data is damaged or truncated: {_reason(exc, Path(path))}") from None


def n_windows(n_samples: int, params: FeatureParams = DEFAULT) -> int:
    """Windows cut from ``n_samples`` samples at the analysis rate.

    The rule: full windows are kept; a last partial window is kept (zero-padded) when it holds
    at least ``params.min_last_window`` of a window (half a second by default) and dropped
    otherwise; audio shorter than one window still gives one (zero-padded) window.
    """
    full, rest = divmod(int(n_samples), params.window_samples)
    if rest >= params.min_last_window * params.window_samples:
        full += 1
    return max(full, 1)


def pad_to_windows(y: np.ndarray, params: FeatureParams = DEFAULT) -> np.ndarray:
    """Zero-pad or trim ``y`` to exactly :func:`n_windows` windows of samples."""
    n = n_windows(len(y), params) * params.window_samples
    if len(y) >= n:
        return y[:n]
    return np.concatenate([y, np.zeros(n - len(y), dtype=y.dtype)])


#: Level given to a window of digital silence (dB re full scale), instead of minus infinity.
SILENT_WINDOW_DB = -200.0
#: A frame is sound when its level lies within this many dB of the loudest window's (as the quiet-window
#: rule of the shipped fusion counts windows): :meth:`LevelMeter.sound_seconds`.
SOUND_DB = 30.0


class LevelMeter:
    """The level of every analysis window of a signal that arrives in blocks, and how much of it is sound.

    A window's level is its mean square in dB re full scale (of the normalised signal), over the
    window's :attr:`FeatureParams.window_samples` samples, the zero padding of a last partial window
    included: the windows are exactly those of :func:`n_windows` and :func:`pad_to_windows`, so level
    ``i`` belongs to the models' window ``i``. The same is kept per frame of ``hop_length`` samples for
    :meth:`sound_seconds`. :meth:`watch` passes blocks through unchanged while measuring them, so the
    meter can sit on the stream that the features are computed from.
    """

    def __init__(self, params: FeatureParams = DEFAULT):
        self.params = params
        self.n_samples = 0
        self._sums = np.zeros(0, np.float64)  # sum of squares per window
        self._frame_sums = np.zeros(0, np.float64)  # sum of squares per frame

    @staticmethod
    def _accumulate(sums: np.ndarray, square: np.ndarray, start: int, size: int) -> np.ndarray:
        """``sums`` (one per cell of ``size`` samples) with the squares of samples ``start`` on added,
        grown by at least doubling so that a long stream of blocks costs linear time."""
        first, offset = divmod(start, size)
        # where each cell starts in this block: the current cell goes on from 0 when it is begun
        starts = np.arange((size - offset) % size, len(square), size)
        if offset:
            starts = np.concatenate([[0], starts])
        cells = np.add.reduceat(square, starts)
        end = first + len(cells)
        if end > len(sums):
            sums = np.concatenate([sums, np.zeros(max(end - len(sums), len(sums)))])
        sums[first:end] += cells
        return sums

    def add(self, block: np.ndarray) -> None:
        square = np.square(block, dtype=np.float64)
        if len(square):
            self._sums = self._accumulate(self._sums, square, self.n_samples, self.params.window_samples)
            self._frame_sums = self._accumulate(self._frame_sums, square, self.n_samples, self.params.hop_length)
        self.n_samples += len(square)

    def watch(self, blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for block in blocks:
            self.add(block)
            yield block

    def levels(self) -> np.ndarray:
        """(n_windows,) window levels in dB (:data:`SILENT_WINDOW_DB` for digital silence)."""
        n = n_windows(self.n_samples, self.params)
        sums = np.zeros(n)
        sums[: min(n, len(self._sums))] = self._sums[:n]
        mean_square = sums / self.params.window_samples
        with np.errstate(divide="ignore"):  # float32: the precision the training cache keeps them in
            return np.maximum(10 * np.log10(mean_square), SILENT_WINDOW_DB).astype(np.float32)

    def sound_seconds(self, below_db: float = SOUND_DB) -> float:
        """Seconds of the signal in frames whose mean square lies within ``below_db`` dB of the loudest
        window's (a last partial frame over its own samples): the sound it holds, whatever silence or
        room noise lies around it. Measured against the loudest window rather than the loudest frame, so a
        click far above the music does not make the music count as silence."""
        hop = self.params.hop_length
        if not self.n_samples:
            return 0.0
        n_frames = -(-self.n_samples // hop)
        lengths = np.full(n_frames, hop, np.float64)
        lengths[-1] = self.n_samples - (n_frames - 1) * hop
        frame_mean_square = self._frame_sums[:n_frames] / lengths
        loudest = float(np.max(self._sums[: -(-self.n_samples // self.params.window_samples)]))
        loudest /= self.params.window_samples
        if loudest == 0.0:  # digital silence holds no sound
            return 0.0
        sound = frame_mean_square >= loudest * 10 ** (-below_db / 10)
        return float(np.count_nonzero(sound)) * hop / self.params.sample_rate


def window_levels(y: np.ndarray, params: FeatureParams = DEFAULT) -> np.ndarray:
    """(n_windows,) levels in dB of the windows of a whole signal (see :class:`LevelMeter`)."""
    meter = LevelMeter(params)
    meter.add(np.asarray(y))
    return meter.levels()
