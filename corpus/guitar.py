"""Electric-guitar amplifiers and speaker cabinets: what an electric guitar goes through before a microphone.

A real electric guitar is almost never heard as its pickups give it: it is heard through an amplifier
(a preamp that clips, a tone stack) and a loudspeaker in a cabinet, whose cone cannot reproduce much
above 4-6 kHz. An acoustic guitar is heard through the air, with the string noise and the body's high
partials that a cabinet removes. A corpus that plays clean electric-guitar samples dry teaches a model
that a clean plucked string can be either guitar; :func:`rig` puts it through an amplifier instead.

- :func:`amplifier`: one of four voicings, each a preamp nonlinearity: ``clean`` (a barely driven
  tube: soft and symmetric), ``crunch`` (driven harder and biased, so it also makes even harmonics),
  ``lead`` (a mid boost before a high-gain stage, as an overdrive pedal into a driven amp) and
  ``fuzz`` (hard clipping), then a three-band tone stack;
- :func:`cabinet`: a loudspeaker in a closed box, as a close microphone hears it: the box's low
  cut, the cone's bass resonance, a presence peak and the steep roll-off above it;
- :func:`rig`: both, each drawn from the song's random generator, with a record of the settings.

Every function takes a float32 ``(n, channels)`` signal and returns one of the same shape and RMS.
"""

from __future__ import annotations

import numpy as np
import scipy.signal

from corpus.acoustics import _peaking, _rms

#: preamp voicings: drive range (gain into the nonlinearity at the signal's peak) and bias range
VOICINGS = {"clean": ((0.3, 1.5), (0.0, 0.0)), "crunch": ((3.0, 10.0), (0.1, 0.3)),
            "lead": ((10.0, 40.0), (0.0, 0.15)), "fuzz": ((20.0, 60.0), (0.0, 0.2))}


def _keep_level(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    level = _rms(x)
    return (y * (level / (_rms(y) + 1e-12))).astype(np.float32) if level > 0 else np.zeros_like(x)


def shape(x: np.ndarray, voicing: str, drive: float, bias: float) -> np.ndarray:
    """The preamp's nonlinearity on a signal scaled to peak 1: ``tanh`` for the tube voicings, a hard
    clip for ``fuzz``. ``bias`` shifts the operating point, which makes the curve asymmetric (and so
    adds even harmonics); the DC it leaves is taken out by :func:`amplifier`'s coupling filter."""
    peak = float(np.max(np.abs(x)))
    if peak == 0:
        return np.zeros_like(x, dtype=np.float64)
    u = drive * x / peak + bias
    y = np.clip(u, -1.0, 1.0) if voicing == "fuzz" else np.tanh(u)
    return y - (np.clip(bias, -1.0, 1.0) if voicing == "fuzz" else np.tanh(bias))


def amplifier(x: np.ndarray, rng: np.random.Generator, sr: int, voicing: str | None = None) -> tuple[np.ndarray, dict]:
    """A guitar amplifier's preamp and tone stack (see the module's docstring); ``voicing`` chosen at
    random when not given."""
    voicing = voicing or str(rng.choice(list(VOICINGS)))
    (lo, hi), (bias_lo, bias_hi) = VOICINGS[voicing]
    drive, bias = float(rng.uniform(lo, hi)), float(rng.uniform(bias_lo, bias_hi))
    # the pickup and input stage: little below 100 Hz reaches the preamp
    y = scipy.signal.sosfilt(scipy.signal.butter(1, 100, "highpass", fs=sr, output="sos"), x.astype(np.float64), axis=0)
    record = {"voicing": voicing, "drive": round(drive, 1), "bias": round(bias, 2)}
    if voicing == "lead":  # an overdrive pedal's mid hump before the driven stage
        centre = float(rng.uniform(600, 1000))
        y = scipy.signal.lfilter(*_peaking(centre, float(rng.uniform(6, 12)), 0.8, sr), y, axis=0)
        record["boost_hz"] = round(centre)
    y = shape(y, voicing, drive, bias)
    # the coupling capacitor after the stage: the DC an asymmetric curve makes does not pass
    y = scipy.signal.sosfilt(scipy.signal.butter(1, 20, "highpass", fs=sr, output="sos"), y, axis=0)
    # tone stack: bass, middle and treble, the middle often scooped
    bands = {"bass": (100, rng.uniform(-6, 6), 0.7), "middle": (float(rng.uniform(400, 800)), rng.uniform(-10, 3), 0.8),
             "treble": (2500, rng.uniform(-6, 6), 0.7)}
    for f0, gain_db, q in bands.values():
        y = scipy.signal.lfilter(*_peaking(float(f0), float(gain_db), q, sr), y, axis=0)
    record["tone_db"] = {k: round(float(g), 1) for k, (_, g, _) in bands.items()}
    return _keep_level(y, x), record


def cabinet(x: np.ndarray, rng: np.random.Generator, sr: int) -> tuple[np.ndarray, dict]:
    """A closed-back speaker cabinet heard by a close microphone: a 2nd-order low cut at 60-130 Hz, the
    cone's resonance (+3 to +8 dB at 80-140 Hz), a presence peak (+2 to +6 dB at 1.5-3.5 kHz) and a
    4th-order roll-off at 3.5-6.5 kHz (lower still when the microphone is off the cone's axis)."""
    low = float(rng.uniform(60, 130))
    high = float(min(rng.uniform(3500, 6500), 0.45 * sr))
    sos = np.concatenate([scipy.signal.butter(2, low, "highpass", fs=sr, output="sos"),
                          scipy.signal.butter(4, high, "lowpass", fs=sr, output="sos")])
    y = scipy.signal.sosfilt(sos, x.astype(np.float64), axis=0)
    resonance, presence = float(rng.uniform(80, 140)), float(rng.uniform(1500, 3500))
    y = scipy.signal.lfilter(*_peaking(resonance, float(rng.uniform(3, 8)), 1.5, sr), y, axis=0)
    y = scipy.signal.lfilter(*_peaking(presence, float(rng.uniform(2, 6)), 1.2, sr), y, axis=0)
    return _keep_level(y, x), {"low_cut_hz": round(low), "high_cut_hz": round(high),
                               "resonance_hz": round(resonance), "presence_hz": round(presence)}


def rig(x: np.ndarray, rng: np.random.Generator, sr: int, drive: bool = True) -> tuple[np.ndarray, dict]:
    """An amplifier (unless ``drive`` is false: a part already distorted in its samples) and a cabinet."""
    record = {}
    if drive:
        x, record["amplifier"] = amplifier(x, rng, sr)
    x, record["cabinet"] = cabinet(x, rng, sr)
    return x, record
