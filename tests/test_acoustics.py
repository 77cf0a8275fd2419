"""Rooms and recording chains on known signals: each stage does what it says and keeps the length."""

import numpy as np
import pytest

from corpus import acoustics
from tests.conftest import rms, stereo_tone

SR = 44100


def test_room_reverberates_and_keeps_length_and_level():
    click = np.zeros((SR * 2, 2), np.float32)
    click[1000] = 1.0
    y, info = acoustics.room(click, np.random.default_rng(3), SR)
    assert y.shape == click.shape and np.isfinite(y).all()
    assert rms(y) == pytest.approx(rms(click), rel=1e-3)
    assert 0.15 <= info["rt60_s"] <= 3.0 and 0.5 <= info["distance_m"] <= 6.0
    # a click becomes a decaying tail: energy 100-300 ms after it, far less at the end
    tail = lambda a, b: rms(y[1000 + int(a * SR) : 1000 + int(b * SR)])
    assert tail(0.1, 0.3) > 0 and tail(1.5, 1.9) < tail(0.1, 0.3)
    z, _ = acoustics.room(click, np.random.default_rng(3), SR)
    np.testing.assert_array_equal(y, z)  # the same generator state, the same room


def test_microphone_cuts_rumble_and_keeps_the_middle():
    rng = np.random.default_rng(0)
    low, info = acoustics.microphone(stereo_tone(15.0), rng, SR)
    mid, _ = acoustics.microphone(stereo_tone(500.0), np.random.default_rng(0), SR)
    assert 30 <= info["low_cut_hz"] <= 150
    # 15 Hz lies at least a factor 2 under a 2nd-order low cut at >= 30 Hz: down more than 10 dB
    assert 20 * np.log10(rms(low[SR:]) / rms(stereo_tone(15.0)[SR:])) < -10
    assert abs(20 * np.log10(rms(mid[SR:]) / rms(stereo_tone(500.0)[SR:]))) < 1.5


def test_compression_lowers_the_crest_and_keeps_the_level():
    x = stereo_tone(440.0, 4.0)
    x[: 2 * SR] *= 0.05  # a quiet half and a loud half
    y, info = acoustics.compress(x, np.random.default_rng(1), SR)
    assert info["ratio"] >= 2 and rms(y) == pytest.approx(rms(x), rel=1e-3)
    ratio_in = rms(x[3 * SR :]) / rms(x[SR : 2 * SR])
    ratio_out = rms(y[3 * SR :]) / rms(y[SR : 2 * SR])
    assert ratio_out < ratio_in / 1.5  # loud and quiet are closer after compression


def test_background_at_the_stated_signal_to_noise_ratio():
    x = stereo_tone(440.0)
    for seed in range(4):
        y, info = acoustics.background(x, np.random.default_rng(seed), SR)
        snr = 20 * np.log10(rms(x) / rms(y - x))
        assert snr == pytest.approx(info["snr_db"], abs=0.06), info["kind"]  # the record rounds to 0.1 dB


def test_lossy_encoding_keeps_length_level_and_content():
    x = stereo_tone(440.0) + stereo_tone(3000.0, amp=0.1)
    for seed in range(2):  # seed 0 and 1 draw both formats between them
        y, info = acoustics.lossy(x, np.random.default_rng(seed), SR)
        assert y.shape == x.shape and info["format"] in ("MP3", "OGG") and info["kbit_s"] > 8
        # lossy coders delay and smear; the tone is still there at about its level
        assert rms(y) == pytest.approx(rms(x), rel=0.1)
        spec = np.abs(np.fft.rfft(y[SR // 2 : SR // 2 + SR, 0]))
        assert np.argmax(spec) == pytest.approx(440, abs=1)


def test_chain_records_the_stages_it_took():
    x = stereo_tone(440.0)
    y, record = acoustics.recording_chain(x, np.random.default_rng(0), SR, {"microphone": 1.0, "lossy": 1.0})
    assert list(record) == ["microphone", "lossy"] and y.shape == x.shape
    same, none = acoustics.recording_chain(x, np.random.default_rng(0), SR, {})
    assert none == {} and same is x
