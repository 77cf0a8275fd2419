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


def test_clipping_drives_past_full_scale_and_keeps_the_peak():
    """A sine of peak 0.5 driven d dB past full scale: hard clipping flattens the share of it where
    |sin| * 10^(d/20) >= 1, i.e. 1 - (2/pi) arcsin(10^(-d/20)) (within 0.01: whole periods of 440 Hz in
    2 s); soft clipping (tanh) rounds the top instead and adds odd harmonics (the 3rd); both keep the
    peak at 0.5."""
    x = 0.5 * stereo_tone(440.0) / np.max(np.abs(stereo_tone(440.0)))
    for seed in range(12):
        y, info = acoustics.clip(x, np.random.default_rng(seed), SR)
        assert y.shape == x.shape and np.max(np.abs(y)) == pytest.approx(0.5, rel=1e-4)
        assert 1 <= info["drive_db"] <= 12
        flat = np.mean(np.abs(y[:, 0]) >= 0.5 * (1 - 1e-4))
        third = np.abs(np.fft.rfft(y[:SR, 0]))[3 * 440] / np.abs(np.fft.rfft(y[:SR, 0]))[440]
        hard_share = 1 - 2 / np.pi * np.arcsin(10 ** (-info["drive_db"] / 20))
        if info["kind"] == "hard":
            assert flat == pytest.approx(hard_share, abs=0.01), info
        else:  # a rounded top (near the peak for far less of the time), with a 3rd harmonic over -40 dB
            assert flat < 0.5 * hard_share and third > 0.01, info
    kinds = {acoustics.clip(x, np.random.default_rng(s), SR)[1]["kind"] for s in range(12)}
    assert kinds == {"hard", "soft"}


def test_clipping_is_off_unless_asked_and_then_drawn_for():
    """The clipping stage, added after corpora were rendered, draws nothing while off, so the rest of a
    song's chain (and so its bytes) is what it was; asked for every song, every song is clipped."""
    x = stereo_tone(440.0)
    stages = {"microphone": 1.0, "compress": 1.0, "lossy": 0.0}
    before, record = acoustics.recording_chain(x, np.random.default_rng(5), SR, stages)
    off, off_record = acoustics.recording_chain(x, np.random.default_rng(5), SR, {**stages, "clip": 0.0})
    assert np.array_equal(before, off) and off_record == record and "clip" not in record
    on, on_record = acoustics.recording_chain(x, np.random.default_rng(5), SR, {**stages, "clip": 1.0})
    assert list(on_record) == ["microphone", "compress", "clip"] and not np.array_equal(on, before)
