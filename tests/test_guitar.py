"""Guitar amplifiers and cabinets on known signals: the harmonics a nonlinearity must make, the band a
speaker passes, silence, and the same bytes from the same generator."""

import numpy as np
import pytest

from corpus import guitar
from tests.conftest import rms, stereo_tone

SR = 44100


def harmonics(y: np.ndarray, hz: float, count: int = 5) -> np.ndarray:
    """Amplitudes of the first ``count`` harmonics of ``hz`` in the first second of ``y``'s first
    channel (1 Hz bins, a Hann window, so each harmonic's peak is its own bin)."""
    spectrum = np.abs(np.fft.rfft(y[:SR, 0] * np.hanning(SR)))
    return np.array([spectrum[int(round(k * hz))] for k in range(1, count + 1)])


def test_symmetric_drive_makes_odd_harmonics_only_and_bias_adds_even_ones():
    x = stereo_tone(200.0)[:, :1].astype(np.float64)
    symmetric = guitar.shape(x, "crunch", drive=8.0, bias=0.0)
    h = harmonics(symmetric, 200.0)
    # tanh is odd: the 2nd and 4th harmonics of a driven sine are numerical noise, the 3rd is strong
    assert h[2] / h[0] > 0.1 and max(h[1], h[3]) / h[0] < 1e-6
    asymmetric = guitar.shape(x, "crunch", drive=8.0, bias=0.3)
    h = harmonics(asymmetric, 200.0)
    assert h[1] / h[0] > 0.02  # a shifted operating point makes the 2nd harmonic


def test_fuzz_clips_hard_and_clean_barely_distorts():
    x = stereo_tone(200.0)[:, :1].astype(np.float64)
    fuzz = guitar.shape(x, "fuzz", drive=40.0, bias=0.0)
    assert np.max(np.abs(fuzz)) == pytest.approx(1.0) and np.mean(np.abs(fuzz) > 0.999) > 0.9  # nearly square
    # tanh(a sin) ~ a sin - (a sin)^3 / 3: a 3rd harmonic a^2 / 12 of the fundamental, 0.02 at a = 0.5
    clean = harmonics(guitar.shape(x, "clean", drive=0.5, bias=0.0), 200.0)
    square = harmonics(fuzz, 200.0)
    assert clean[2] / clean[0] < 0.05 < square[2] / square[0]  # a square wave's 3rd harmonic is 1/3


def test_cabinet_passes_the_middle_and_removes_what_a_speaker_cannot_play():
    noise = np.random.default_rng(0).standard_normal((SR, 2)).astype(np.float32)
    for seed in range(5):
        y, info = guitar.cabinet(noise, np.random.default_rng(seed), SR)
        assert 3500 <= info["high_cut_hz"] <= 6500 and rms(y) == pytest.approx(rms(noise), rel=1e-4)
        power = np.abs(np.fft.rfft(y[:, 0])) ** 2  # 1 Hz bins
        band = lambda lo, hi: float(power[lo:hi].mean())
        # 12-16 kHz lies at least 0.88 octave above a 4th-order roll-off at <= 6.5 kHz (24 dB an octave
        # and more beyond): at least 30 dB under 1-2 kHz (37 dB at 6.35 kHz, the highest of these seeds);
        # below the low cut (20-40 Hz, against >= 60 Hz, 2nd order) at least 10 dB under
        assert 10 * np.log10(band(12000, 16000) / band(1000, 2000)) < -30, info
        assert 10 * np.log10(band(20, 40) / band(1000, 2000)) < -10, info


def test_rig_keeps_shape_and_level_handles_silence_and_repeats_bytes():
    x = stereo_tone(330.0)
    for voicing in guitar.VOICINGS:
        y, info = guitar.amplifier(x, np.random.default_rng(0), SR, voicing=voicing)
        assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
        assert rms(y) == pytest.approx(rms(x), rel=1e-4) and info["voicing"] == voicing
        assert abs(float(np.mean(y[SR // 2 :]))) < 0.01 * rms(y)  # the coupling capacitor takes out DC
    silence = np.zeros((SR, 2), np.float32)
    y, _ = guitar.rig(silence, np.random.default_rng(0), SR)
    assert np.array_equal(y, silence)
    a, record = guitar.rig(x, np.random.default_rng(7), SR)
    b, _ = guitar.rig(x, np.random.default_rng(7), SR)
    assert np.array_equal(a, b) and set(record) == {"amplifier", "cabinet"}
    cab_only, record = guitar.rig(x, np.random.default_rng(7), SR, drive=False)
    assert set(record) == {"cabinet"}
