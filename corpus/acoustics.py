"""Rooms and recording chains: what happens to music between the instruments and an uploaded file.

Each function takes a float32 (n, 2) signal and the song's own random generator and returns the
changed signal with a record of what was done, so a corpus file says how it was made.

- :func:`room`: an image-source shoebox room (pyroomacoustics) of random size and reverberation
  time, the source 0.5-6 m from a pair of microphones 10-40 cm apart;
- :func:`microphone`: a microphone and preamp's colour: a low cut, a high roll-off, a presence bump;
- :func:`compress`: a feed-forward compressor, as on most released music;
- :func:`clip`: an overloaded preamp or converter, hard or soft clipping (off by default);
- :func:`background`: hiss, rumble or mains hum under the music;
- :func:`lossy`: MP3 or Ogg Vorbis encoding at a random quality, decoded back (libsndfile);
- :func:`recording_chain`: all of them, each with its own probability.
"""

from __future__ import annotations

import io

import numpy as np
import scipy.signal
import soundfile as sf


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def room(x: np.ndarray, rng: np.random.Generator, sr: int) -> tuple[np.ndarray, dict]:
    """Convolve with a simulated room: (n, 2) -> (n, 2), the level kept."""
    import pyroomacoustics as pra

    dims = np.array([rng.uniform(3, 25), rng.uniform(3, 18), rng.uniform(2.4, 10)])
    volume, surface = np.prod(dims), 2 * (dims[0] * dims[1] + dims[1] * dims[2] + dims[0] * dims[2])
    shortest = 0.161 * volume / surface  # Sabine's RT60 with walls that absorb everything
    rt60 = float(rng.uniform(max(0.15, 1.2 * shortest), max(1.6, 1.5 * shortest)))
    absorption, order = pra.inverse_sabine(rt60, dims)
    shoebox = pra.ShoeBox(dims, fs=sr, materials=pra.Material(float(absorption)), max_order=int(min(order, 20)),
                          air_absorption=True)
    centre = dims * np.array([rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), 0])
    centre[2] = rng.uniform(1.0, min(2.2, dims[2] - 0.3))
    distance = float(rng.uniform(0.5, min(6.0, 0.4 * dims[:2].min())))
    angle = rng.uniform(0, 2 * np.pi)
    source = centre + np.array([distance * np.cos(angle), distance * np.sin(angle), rng.uniform(-0.3, 0.3)])
    source = np.clip(source, 0.2, dims - 0.2)
    shoebox.add_source(source)
    spacing = float(rng.uniform(0.1, 0.4))
    axis = np.array([-np.sin(angle), np.cos(angle), 0.0]) * spacing / 2
    shoebox.add_microphone_array(np.stack([centre - axis, centre + axis], axis=1))
    shoebox.compute_rir()
    length = max(len(r[0]) for r in shoebox.rir)
    ir = np.zeros((length, 2))
    for ch in range(2):
        ir[: len(shoebox.rir[ch][0]), ch] = shoebox.rir[ch][0]
    mono = x.mean(axis=1)  # the instruments stand at one place in the room
    wet = scipy.signal.fftconvolve(mono[:, None], ir, axes=0)[: len(x)]
    wet *= _rms(x) / (_rms(wet) + 1e-12)
    return wet.astype(np.float32), {"room_m": [round(float(d), 2) for d in dims], "rt60_s": round(rt60, 2),
                                    "distance_m": round(distance, 2), "mic_spacing_m": round(spacing, 2)}


def microphone(x: np.ndarray, rng: np.random.Generator, sr: int) -> tuple[np.ndarray, dict]:
    """Low cut (30-150 Hz), high roll-off (5-18 kHz) and a presence bump or dip (+-6 dB at 1.5-6 kHz)."""
    low = float(rng.uniform(30, 150))
    high = float(min(rng.uniform(5000, 18000), 0.45 * sr))
    sos = np.concatenate([scipy.signal.butter(2, low, "highpass", fs=sr, output="sos"),
                          scipy.signal.butter(2, high, "lowpass", fs=sr, output="sos")])
    y = scipy.signal.sosfilt(sos, x, axis=0)
    centre, gain_db = float(rng.uniform(1500, 6000)), float(rng.uniform(-6, 6))
    b, a = _peaking(centre, gain_db, q=1.0, sr=sr)
    y = scipy.signal.lfilter(b, a, y, axis=0)
    return y.astype(np.float32), {"low_cut_hz": round(low), "high_cut_hz": round(high),
                                  "presence_hz": round(centre), "presence_db": round(gain_db, 1)}


def _peaking(f0: float, gain_db: float, q: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """RBJ audio-EQ-cookbook peaking filter."""
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * f0 / sr
    alpha = np.sin(w) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w), 1 - alpha / a])
    return b / den[0], den / den[0]


def compress(x: np.ndarray, rng: np.random.Generator, sr: int) -> tuple[np.ndarray, dict]:
    """Feed-forward compression: level above the threshold reduced by the ratio, smoothed over ~50 ms."""
    ratio = float(rng.uniform(2, 8))
    level = np.sqrt(scipy.signal.lfilter([1 - np.exp(-1 / (0.05 * sr))], [1, -np.exp(-1 / (0.05 * sr))],
                                         np.square(x, dtype=np.float64).mean(axis=1)))
    level_db = 20 * np.log10(level + 1e-9)
    threshold = float(np.percentile(level_db, 95) - rng.uniform(4, 18))
    gain_db = -np.maximum(level_db - threshold, 0) * (1 - 1 / ratio)
    y = x * (10 ** (gain_db / 20))[:, None]
    y *= _rms(x) / (_rms(y) + 1e-12)  # make-up gain
    return y.astype(np.float32), {"ratio": round(ratio, 1), "threshold_db": round(threshold, 1)}


def clip(x: np.ndarray, rng: np.random.Generator, sr: int) -> tuple[np.ndarray, dict]:
    """An overloaded recorder: the signal driven 1-12 dB past full scale, then clipped hard (a converter)
    or soft (a preamp's tanh); the peak level kept."""
    drive_db = float(rng.uniform(1, 12))
    kind = "hard" if rng.random() < 0.5 else "soft"
    peak = float(np.max(np.abs(x))) + 1e-9
    driven = x / peak * 10 ** (drive_db / 20)
    y = np.clip(driven, -1.0, 1.0) if kind == "hard" else np.tanh(driven)
    return (y / (np.max(np.abs(y)) + 1e-9) * peak).astype(np.float32), {"kind": kind, "drive_db": round(drive_db, 1)}


def background(x: np.ndarray, rng: np.random.Generator, sr: int) -> tuple[np.ndarray, dict]:
    """Coloured noise (white, pink or brown) or mains hum, 25-60 dB under the music."""
    kind = str(rng.choice(["white", "pink", "brown", "hum"]))
    snr = float(rng.uniform(25, 60))
    n = len(x)
    if kind == "hum":
        t = np.arange(n) / sr
        mains = float(rng.choice([50.0, 60.0]))
        noise = sum(np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 8))
        noise = np.repeat(noise[:, None], 2, axis=1)
    else:
        white = rng.standard_normal((n, 2))
        exponent = {"white": 0.0, "pink": 0.5, "brown": 1.0}[kind]
        spectrum = np.fft.rfft(white, axis=0)
        f = np.fft.rfftfreq(n, 1 / sr)
        spectrum[1:] /= (f[1:, None] / f[1]) ** exponent
        noise = np.fft.irfft(spectrum, n=n, axis=0)
    noise *= _rms(x) / (_rms(noise) + 1e-12) * 10 ** (-snr / 20)
    return (x + noise).astype(np.float32), {"kind": kind, "snr_db": round(snr, 1)}


def lossy(x: np.ndarray, rng: np.random.Generator, sr: int) -> tuple[np.ndarray, dict]:
    """Encoded as MP3 or Ogg Vorbis at a random quality and decoded back, the length kept."""
    fmt, subtype = [("MP3", "MPEG_LAYER_III"), ("OGG", "VORBIS")][int(rng.integers(2))]
    level = float(rng.uniform(0.2, 0.95))  # libsndfile's compression level: 1 is the lowest bit rate
    peak = float(np.max(np.abs(x))) + 1e-9
    buffer = io.BytesIO()
    sf.write(buffer, x / peak * 0.9, sr, format=fmt, subtype=subtype, compression_level=level)
    size = buffer.tell()
    buffer.seek(0)
    y, _ = sf.read(buffer, dtype="float32", always_2d=True)
    y = np.pad(y[: len(x)], ((0, max(0, len(x) - len(y))), (0, 0))) * (peak / 0.9)
    return y.astype(np.float32), {"format": fmt, "compression_level": round(level, 2),
                                  "kbit_s": round(8 * size / (len(x) / sr) / 1000)}


#: each stage and the probability that a song goes through it
STAGES = {"room": 0.75, "microphone": 0.8, "compress": 0.5, "background": 0.6, "lossy": 0.4}
_FUNCTIONS = {"room": room, "microphone": microphone, "compress": compress, "clip": clip, "background": background,
              "lossy": lossy}
#: stages added after corpora were first rendered, off unless asked for: nothing is drawn for them while
#: they are off, so a corpus rendered without them keeps its bytes
OPTIONAL = ("clip",)


def recording_chain(x: np.ndarray, rng: np.random.Generator, sr: int,
                    stages: dict[str, float] = STAGES) -> tuple[np.ndarray, dict]:
    """The stages in a fixed order, each taken with its probability; the record names those taken."""
    record = {}
    for name in ("room", "microphone", "compress", "clip", "background", "lossy"):
        if name in OPTIONAL and not stages.get(name, 0.0):
            continue
        if rng.random() < stages.get(name, 0.0):
            x, record[name] = _FUNCTIONS[name](x, rng, sr)
    return x, record
