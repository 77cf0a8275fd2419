"""Decoding, checks and the window rule of instrec.audio, on files written by the tests."""

import numpy as np
import pytest
import soundfile as sf

from instrec import audio
from instrec.audio import AudioError
from instrec.errors import Silent
from instrec.params import DEFAULT as P
from tests.conftest import tone, write


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("FLAC", "PCM_24"), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
def test_formats_decode_to_mono_peak_normalised(tmp_path, fmt, subtype):
    y = tone(440, 1.0, sr=44100, amp=0.3)
    stereo = np.stack([y, 0.5 * y], axis=1)
    path = write(tmp_path / f"a.{fmt.lower()}", stereo, 44100, format=fmt, subtype=subtype)
    out = audio.load(path)
    assert out.dtype == np.float32 and out.ndim == 1
    # 1 s at 44.1 kHz -> 22 050 samples (lossy codecs may add up to a frame of padding)
    assert abs(len(out) - P.sample_rate) < 0.1 * P.sample_rate
    assert np.max(np.abs(out)) == pytest.approx(1.0)
    # the tone survives: its spectrum peaks at 440 Hz (bin width 1 Hz over exactly 1 s)
    spectrum = np.abs(np.fft.rfft(out[: P.sample_rate]))
    assert abs(np.argmax(spectrum) - 440) <= 1


def test_channels_are_averaged_not_picked(tmp_path):
    left = tone(440, 1.0)
    right = -left  # the mean of the two is silence: picking one channel would hide it
    path = write(tmp_path / "cancel.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    with pytest.raises(Silent, match="silent") as caught:
        audio.load(path)
    assert isinstance(caught.value, AudioError) and caught.value.kind == "unusable"  # served as before


def test_eight_channels(tmp_path):
    y = np.zeros((22050, 8), np.float32)
    y[:, 3] = tone(440, 1.0)
    out = audio.load(write(tmp_path / "eight.wav", y, subtype="FLOAT"))
    assert out.shape == (22050,) and np.max(np.abs(out)) == pytest.approx(1.0)


@pytest.mark.parametrize("sr", [8000, 11025, 16000, 44100, 48000, 96000, 12345])
def test_resampled_to_analysis_rate(tmp_path, sr):
    y = tone(1000, 2.0, sr=sr)
    out = audio.load(write(tmp_path / "r.wav", y, sr))
    assert abs(len(out) - 2 * P.sample_rate) <= 1
    spectrum = np.abs(np.fft.rfft(out[: P.sample_rate]))
    assert abs(np.argmax(spectrum) - 1000) <= 1


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        audio.load(tmp_path / "nope.wav")


def test_empty_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        audio.load(tmp_path / "empty.wav")


def test_not_audio(tmp_path):
    (tmp_path / "notes.wav").write_text("these are not samples\n" * 100)
    with pytest.raises(AudioError, match="not a readable audio file"):
        audio.load(tmp_path / "notes.wav")


def test_truncated_file_header_only(tmp_path):
    path = write(tmp_path / "full.wav", tone(440, 1.0))
    data = path.read_bytes()
    (tmp_path / "trunc.wav").write_bytes(data[:40])  # the header promises data that is not there
    with pytest.raises(AudioError):
        audio.load(tmp_path / "trunc.wav")


def test_truncated_file_keeps_what_is_there(tmp_path):
    path = write(tmp_path / "full.wav", tone(440, 2.0))
    data = path.read_bytes()
    (tmp_path / "half.wav").write_bytes(data[: len(data) // 2])
    out = audio.load(tmp_path / "half.wav")  # libsndfile reads the samples present
    assert 0.9 < len(out) / P.sample_rate < 1.1 and np.isfinite(out).all()


def test_zero_samples(tmp_path):
    path = write(tmp_path / "zero.wav", np.zeros(0, np.float32))
    with pytest.raises(AudioError, match="no audio samples|empty"):
        audio.load(path)


def test_nan_samples(tmp_path):
    y = tone(440, 1.0)
    y[100:110] = np.nan
    path = write(tmp_path / "nan.wav", y, subtype="FLOAT")
    with pytest.raises(AudioError, match="10 samples are NaN or infinite"):
        audio.load(path)


def test_inf_samples_in_memory():
    y = tone(440, 1.0)
    y[5] = np.inf
    with pytest.raises(AudioError, match="NaN or infinite"):
        audio.prepare(y, 22050)


def test_silence(tmp_path):
    with pytest.raises(AudioError, match="digital silence"):
        audio.load(write(tmp_path / "s.wav", np.zeros(22050, np.float32)))


def test_too_long(tmp_path):
    path = write(tmp_path / "long.wav", tone(440, 3.0))
    with pytest.raises(AudioError, match="over the limit of 2 s"):
        audio.load(path, max_duration_s=2.0)


def test_two_hours_refused_without_reading(tmp_path):
    # a header claiming 2 h: the length check runs on the header, before any decoding
    path = tmp_path / "2h.wav"
    with sf.SoundFile(str(path), "w", samplerate=8000, channels=1, subtype="PCM_U8") as f:
        f.write(np.zeros(8000 * 7200, np.float32) + 0.1)
    with pytest.raises(AudioError, match="7200 s long"):
        audio.load(path)


def test_absurd_sample_rate(tmp_path):
    path = write(tmp_path / "slow.wav", tone(1, 1.0, sr=100), 100)
    with pytest.raises(AudioError, match="sample rate 100 Hz"):
        audio.load(path)


def test_folder_is_not_a_file(tmp_path):
    with pytest.raises(AudioError, match="folder"):
        audio.load(tmp_path)


def test_stream_matches_load(tmp_path):
    y = np.random.default_rng(0).uniform(-0.5, 0.5, 44100 * 5).astype(np.float32)
    path = write(tmp_path / "s.wav", y, 44100, subtype="FLOAT")
    whole = audio.load(path, max_duration_s=None)
    blocks = list(audio.stream(path, block_s=0.7))
    assert len(blocks) > 5
    streamed = np.concatenate(blocks)
    streamed /= np.max(np.abs(streamed))
    assert len(streamed) == len(whole)
    # soxr's stream and one-shot modes use the same filter: equal up to float32 rounding
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


@pytest.mark.parametrize(
    "seconds,expected",
    [(0.1, 1), (0.3, 1), (0.99, 1), (1.0, 1), (1.49, 1), (1.5, 2), (3.0, 3), (3.4, 3), (20.0, 20)],
)
def test_window_rule(seconds, expected):
    n = round(seconds * P.window_samples)
    assert audio.n_windows(n) == expected
    assert len(audio.pad_to_windows(np.ones(n, np.float32))) == expected * P.window_samples


def test_window_levels_known_answers():
    """A sine of amplitude a has a mean square of a^2 / 2: 20 log10(a) - 3.01 dB. The levels are one per
    window of the window rule; a last partial window counts its zero padding (0.6 of a window of the
    same sine: 10 log10(0.6) = -2.22 dB lower); digital silence gets SILENT_WINDOW_DB, not -inf."""
    W, sr = P.window_samples, P.sample_rate
    t = np.arange(int(3.6 * W)) / sr
    y = np.concatenate([0.5 * np.sin(2 * np.pi * 440 * t[: 2 * W]), 0.05 * np.sin(2 * np.pi * 440 * t[2 * W :])])
    levels = audio.window_levels(y.astype(np.float32))
    assert levels.dtype == np.float32 and len(levels) == audio.n_windows(len(y)) == 4
    # 440 Hz fills a 1 s window with whole periods: the mean square is a^2 / 2 to well under 0.01 dB
    np.testing.assert_allclose(levels[:3], [20 * np.log10(0.5) - 3.0103] * 2 + [20 * np.log10(0.05) - 3.0103], atol=0.01)
    assert levels[3] == pytest.approx(20 * np.log10(0.05) - 3.0103 + 10 * np.log10(0.6), abs=0.02)
    assert audio.window_levels(np.zeros(W // 4, np.float32)).tolist() == [audio.SILENT_WINDOW_DB]


def test_level_meter_on_blocks_equals_the_whole_signal():
    """However the samples arrive (blocks shorter or longer than a window, an empty one), the meter gives
    the levels of the whole signal, and passes the blocks on unchanged."""
    y = np.random.default_rng(1).uniform(-1, 1, int(4.7 * P.window_samples)).astype(np.float32)
    y[P.window_samples : 2 * P.window_samples] *= 1e-3  # a quiet second window: -60 dB under the others
    meter = audio.LevelMeter()
    cuts = [0, 1000, 1000, 70_000, 150_000, len(y)]
    blocks = [y[a:b] for a, b in zip(cuts, cuts[1:])]
    passed = list(meter.watch(iter(blocks)))
    assert all(p is b for p, b in zip(passed, blocks))
    whole = audio.window_levels(y)
    np.testing.assert_allclose(meter.levels(), whole, atol=1e-4)  # float64 sums in another order
    assert whole[1] == pytest.approx(whole[0] - 60, abs=0.2)
    whole_meter = audio.LevelMeter()
    whole_meter.add(y)
    assert meter.sound_seconds() == whole_meter.sound_seconds()  # the frames' sums add up the same


def test_sound_seconds_known_answers():
    """A tone of 0.5 s in 3 s of silence, or of room noise 60 dB under it, is 0.5 s of sound: the frames it
    touches, 51 of 9.98 ms (one frame either way of 0.5 s); a second tone 40 dB under the first is not sound
    (10 dB past the 30 dB threshold), 20 dB under it is; a click 40 dB over the music does not silence it,
    since the threshold is the loudest second's level, not the loudest frame's; nothing at all, or digital
    silence, is no sound."""
    sr, hop = P.sample_rate, P.hop_length
    frame = hop / sr

    def sound(y):
        meter = audio.LevelMeter()
        meter.add(y.astype(np.float32))
        return meter.sound_seconds()

    t = np.arange(int(0.5 * sr)) / sr
    y = np.zeros(3 * sr)
    y[sr : sr + len(t)] = 0.5 * np.sin(2 * np.pi * 440 * t)
    assert sound(y) == pytest.approx(0.5, abs=frame)
    noise = 0.5 * 10 ** (-60 / 20) * np.random.default_rng(0).standard_normal(len(y))
    assert sound(y + noise) == pytest.approx(0.5, abs=frame)
    softer = y.copy()
    softer[2 * sr : 2 * sr + len(t)] = 0.005 * np.sin(2 * np.pi * 440 * t)  # 40 dB under: 10 dB past 30
    assert sound(softer) == pytest.approx(0.5, abs=frame)
    softer[2 * sr : 2 * sr + len(t)] *= 10  # 20 dB under: sound
    assert sound(softer) == pytest.approx(1.0, abs=2 * frame)
    music = 0.01 * np.sin(2 * np.pi * 440 * np.arange(3 * sr) / sr)
    music[sr : sr + hop] = 1.0  # a 10 ms click 40 dB over the music (the music's mean square is 0.01^2 / 2)
    assert sound(music) == pytest.approx(3.0, abs=frame)
    assert audio.LevelMeter().sound_seconds() == 0.0 and sound(np.zeros(sr)) == 0.0
