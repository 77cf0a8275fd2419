"""musicnn's embedding: its input spectrogram on known signals, its patches, and the ONNX model against
TensorFlow's own outputs."""

import librosa
import numpy as np
import pytest

from instrec import audio
from instrec.embedding import (
    EMBEDDING_SIZE,
    MODEL,
    MSD_MODEL,
    N_MELS,
    OUTPUTS,
    PATCH_FRAMES,
    SAMPLE_RATE,
    VGG_MODEL,
    Embedder,
    WindowPatches,
    log_mel,
    patches,
    window_patches,
)
from instrec.errors import AudioError
from instrec.params import DEFAULT
from tests.conftest import REAL_AUDIO, ROOT, tone

REFERENCE = ROOT / "tests" / "data" / "musicnn_reference.npz"
MSD_REFERENCE = ROOT / "tests" / "data" / "musicnn_msd_reference.npz"
#: musicnn's VGG model: other widths under the same output names
VGG_WIDTHS = {"max_pool": 768, "mean_pool": 768, "penultimate": 256, "taggram": 50}

#: one pitch per second: a window's patch is told by which of them it holds where
STEPS = [220.0 * 2 ** (k / 4) for k in range(9)]  # 220 Hz up to 880 Hz, a major third apart: distinct mel bands


def steps(seconds: int) -> np.ndarray:
    return np.concatenate([tone(STEPS[k % len(STEPS)], 1.0) for k in range(seconds)])


def band(f: float) -> int:
    return int(np.argmax(log_mel(tone(f, 1.0), sr=22050)[10:-10].mean(axis=0)))


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(threads=1)


def test_the_spectrogram_is_librosas_melspectrogram():
    y = np.random.default_rng(2).standard_normal(3 * SAMPLE_RATE).astype(np.float32) * 0.1
    power = librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, n_fft=512, hop_length=256, n_mels=N_MELS)
    # librosa windows the float32 frames in float64 and this in float32, and the mel sums run in another
    # order: measured 9.5e-7 at values up to 3.6 in log10 units; 1e-5 leaves room for other CPUs' kernels
    # and still catches a wrong window, bank or power (each moves values by more than 0.01)
    np.testing.assert_allclose(log_mel(y, sr=SAMPLE_RATE), np.log10(10000 * power.T + 1), atol=1e-5)


def test_a_sine_peaks_in_the_mel_band_of_its_frequency():
    s = log_mel(tone(1000.0, 2.0, sr=SAMPLE_RATE), sr=SAMPLE_RATE)
    centres = librosa.mel_frequencies(n_mels=N_MELS + 2, fmax=SAMPLE_RATE / 2)[1:-1]
    peak = np.bincount(s[5:-5].argmax(axis=1)).argmax()  # the band most frames peak in, away from the edges
    assert abs(peak - np.abs(centres - 1000.0).argmin()) <= 1  # the band centred nearest 1 kHz, or its neighbour


def test_the_same_sine_at_another_rate_gives_the_same_spectrogram():
    # resampled to 16 kHz first (soxr HQ): the 22.05 kHz tone lands in the same bands within the resampler's
    # ripple; 0.02 in log10 units is 5 % in power, far under the 0.6 that a doubled amplitude makes
    a = log_mel(tone(440.0, 2.0, sr=SAMPLE_RATE), sr=SAMPLE_RATE)
    b = log_mel(tone(440.0, 2.0, sr=22050), sr=22050)
    peak = a[5:-5].argmax(axis=1)[0]
    assert a.shape == b.shape
    np.testing.assert_allclose(a[5:-5, peak], b[5:-5, peak], atol=0.02)


def test_a_doubled_amplitude_adds_log10_4_in_loud_bands_and_silence_is_zero():
    quiet, loud = (log_mel(tone(440.0, 2.0, sr=SAMPLE_RATE, amp=a), sr=SAMPLE_RATE) for a in (0.25, 0.5))
    peak = quiet[5:-5].argmax(axis=1)[0]
    # log10(10000 * 4 S + 1) - log10(10000 * S + 1) -> log10(4) when 10000 S >> 1, as in the peak band
    np.testing.assert_allclose(loud[5:-5, peak] - quiet[5:-5, peak], np.log10(4), atol=1e-3)
    assert np.array_equal(log_mel(np.zeros(SAMPLE_RATE, np.float32), sr=SAMPLE_RATE), np.zeros((63, N_MELS)))


def test_patches_start_every_second_and_short_audio_is_repeated_to_fill_one():
    ten = patches(tone(440.0, 10.0), sr=22050)
    frames = 1 + 10 * SAMPLE_RATE // 256  # 626 frames, a patch of 187 every 62
    assert ten.shape == ((frames - PATCH_FRAMES) // 62 + 1, PATCH_FRAMES, N_MELS) == (8, 187, 96)
    s = log_mel(tone(440.0, 10.0), sr=22050)
    np.testing.assert_array_equal(ten[3], s[3 * 62 : 3 * 62 + PATCH_FRAMES])
    clip = tone(440.0, 2.97, amp=0.4)
    clip *= np.linspace(0, 1, len(clip), dtype=np.float32)  # a rising level: every frame differs
    one = patches(clip, sr=22050)
    frames = log_mel(clip, sr=22050)
    assert one.shape == (1, PATCH_FRAMES, N_MELS) and len(frames) == 186
    np.testing.assert_array_equal(one[0, 186:], frames[:1])  # the frame after the last is the first again
    assert patches(tone(440.0, 0.1), sr=22050).shape == (1, PATCH_FRAMES, N_MELS)
    with pytest.raises(AudioError, match="no samples"):
        patches(np.zeros(0, np.float32), sr=22050)


@pytest.mark.parametrize("model, reference, widths", [
    (MODEL, REFERENCE, OUTPUTS), (MSD_MODEL, MSD_REFERENCE, OUTPUTS),
    (VGG_MODEL, ROOT / "tests" / "data" / "musicnn_mtt_vgg_reference.npz", VGG_WIDTHS),
], ids=["mtt", "msd", "mtt_vgg"])
def test_the_onnx_model_gives_tensorflows_outputs(model, reference, widths):
    # the reference was computed by musicnn's TensorFlow graph when export/musicnn_to_onnx.py converted it:
    # two random patches and a real clarinet's. Both run float32 convolutions in different orders, so
    # outputs agree to about 1e-6 of their range (measured: 4.7e-5 at values up to 117 for the MagnaTagATune
    # model, 2.1e-4 at values up to 98 for the Million Song Dataset one, 1.1e-5 at values up to 15 for the
    # VGG model); 1e-4 of the range leaves room for other CPUs' kernels and still catches a wrong weight,
    # layer or normalisation
    embedder = Embedder(model, threads=1)
    assert embedder.widths == widths
    ref = np.load(reference)
    got = embedder.outputs(ref["mel"])
    assert list(got) == list(OUTPUTS)
    for name, width in widths.items():
        assert got[name].shape == (3, width)
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-4, atol=1e-4 * np.abs(ref[name]).max())
    # one patch at a time or all at once: the same
    np.testing.assert_allclose(embedder.outputs(ref["mel"], batch=1)["max_pool"], got["max_pool"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model", [MODEL, VGG_MODEL], ids=["musicnn", "vgg"])
def test_a_real_singer_is_tagged_as_a_voice_and_a_real_clarinet_as_a_wind(model):
    # known answers on real sound, through decoding, resampling and the spectrogram: the MagnaTagATune
    # models' tags for the bundled recordings (MagnaTagATune has no clarinet tag; flute is its only woodwind)
    embedder = Embedder(model, threads=1)
    tags = list(np.load(REFERENCE)["tags"])
    voice_tags = {"vocal", "vocals", "female", "woman", "singing", "female vocal", "female voice", "voice", "opera"}
    top = {}
    for name in ("medley-solos_voi_156", "medley-solos_cla_000"):
        clips = sorted(REAL_AUDIO.glob(f"{name}_*.flac"))[:2]
        taggram = np.concatenate([embedder.embed(audio.load(c), sr=22050)[:, -len(tags):] for c in clips])
        top[name] = {tags[i] for i in np.argsort(-taggram.mean(axis=0))[:3]}
    assert top["medley-solos_voi_156"] & voice_tags
    assert "flute" in top["medley-solos_cla_000"] and not top["medley-solos_cla_000"] & voice_tags


def test_embed_gives_each_patch_all_outputs_side_by_side(embedder):
    y = tone(330.0, 5.0)
    e = embedder.embed(y, sr=22050)
    assert e.shape == (3, EMBEDDING_SIZE) and np.isfinite(e).all()
    outputs = embedder.outputs(patches(y, sr=22050))
    np.testing.assert_array_equal(e[:, :753], outputs["max_pool"])
    np.testing.assert_array_equal(e[:, -50:], outputs["taggram"])


def test_bad_patches_and_a_missing_model_are_clear_errors(embedder, tmp_path):
    with pytest.raises(ValueError, match=r"\(n >= 1, 187, 96\)"):
        embedder.outputs(np.zeros((2, 100, 96), np.float32))
    with pytest.raises(ValueError, match="got shape"):
        embedder.outputs(np.zeros((0, 187, 96), np.float32))
    with pytest.raises(FileNotFoundError, match="musicnn_to_onnx"):
        Embedder(tmp_path / "none.onnx")


def test_each_window_gets_the_three_seconds_around_it_moved_inside_the_signal_at_its_ends():
    y = steps(7)
    W = DEFAULT.window_samples  # 22 000 samples: 100 hops of 220
    got = window_patches(y)
    assert got.shape == (audio.n_windows(len(y)), PATCH_FRAMES, N_MELS) == (7, 187, 96)
    # the patch of window i starts at window i - 1, but at 0 for the first and 3 windows before the
    # signal's end for the last (the 7 seconds hold 7 windows and 350 samples)
    for i, start in enumerate([0, 0, W, 2 * W, 3 * W, 4 * W, len(y) - 3 * W]):
        for third in range(3):  # the middle of each second of the patch (31 frames of 16 ms: half a second)
            middle = got[i, third * 62 + 16 : third * 62 + 47].mean(axis=0)
            assert int(np.argmax(middle)) == band(STEPS[round(start / 22050) + third]), (i, third)
        # and the patch is exactly that stretch of audio's own patch
        np.testing.assert_allclose(got[i], patches(y[start : start + 3 * W], sr=22050)[0], atol=1e-4)


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("seconds", [0.1, 0.6, 1.0, 2.4, 2.6, 3.0, 3.3, 3.7, 9.5])
def test_patches_do_not_depend_on_the_blocks_the_audio_arrives_in(seconds, stride):
    """Streamed in blocks of any size (patches given as soon as their audio has arrived), the patches are
    those of the whole signal, one per group of ``stride`` windows of audio.n_windows, however long the
    signal (short ones: the tiled patch of :func:`patches` for every group)."""
    y = steps(10)[: int(seconds * 22050)] * np.linspace(0.2, 1, int(seconds * 22050), dtype=np.float32)
    whole = window_patches(y, stride=stride)
    assert len(whole) == -(-audio.n_windows(len(y)) // stride)
    if seconds < 3:
        for p in whole:
            np.testing.assert_array_equal(p, patches(y, sr=22050)[0])
    rng = np.random.default_rng(int(seconds * 10))
    cuts = np.sort(rng.choice(np.arange(1, len(y)), size=min(12, len(y) - 1), replace=False))
    windows = WindowPatches(stride=stride)
    got = [windows.ready() for _ in windows.watch(np.split(y, cuts))]
    got.append(windows.finish())
    # 1e-4: the same audio in another array, whose FFTs may round differently (values up to about 4)
    np.testing.assert_allclose(np.concatenate(got), whole, atol=1e-4)


@pytest.mark.parametrize("seconds", [4.0, 6.6, 7.0, 8.2])
def test_a_patch_per_group_of_windows_is_the_patch_of_its_second_window(seconds):
    """Stride 3: windows 0-2 get window 1's patch, 3-5 window 4's, ...; a last group that ends before its
    second window gets its own last window's (7 s: windows 0-6, the last group is window 6 alone)."""
    y = steps(10)[: int(seconds * 22050)]
    n = audio.n_windows(len(y))
    every = window_patches(y)
    for stride in (2, 3):
        middles = [min(g * stride + 1, n - 1) for g in range(-(-n // stride))]
        np.testing.assert_array_equal(window_patches(y, stride=stride), every[middles])
    assert [min(g * 3 + 1, n - 1) for g in range(-(-n // 3))] == {4: [1, 3], 7: [1, 4, 6], 8: [1, 4, 7]}[n]


def test_each_window_gets_its_groups_values():
    values = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    np.testing.assert_array_equal(WindowPatches(stride=3).spread(values, 7), values[[0, 0, 0, 1, 1, 1, 2]])
    np.testing.assert_array_equal(WindowPatches(stride=2).spread(values, 6), values[[0, 0, 1, 1, 2, 2]])
    np.testing.assert_array_equal(WindowPatches().spread(values, 3), values)
    with pytest.raises(ValueError, match="3 patches' values for 10 windows 3 at a time"):
        WindowPatches(stride=3).spread(values, 10)
    for stride in (0, 4, 1.0, "3"):
        with pytest.raises(ValueError, match="a patch serves 1 to 3 windows"):
            WindowPatches(stride=stride)


def test_a_long_stream_keeps_only_the_audio_the_next_patches_need():
    windows = WindowPatches()
    given = 0
    for _ in windows.watch(steps(1) for _ in range(60)):
        given += len(windows.ready())
        assert len(windows._buffer) <= 3 * DEFAULT.window_samples + 22050  # three windows and the block that arrived
    # 60 s are 60 windows and 3 000 samples: windows 0-58 have their 3 s inside the signal; the last waits for the end
    assert given == 59 and len(windows.finish()) == 1
    # stride 3: 20 groups; the last one's patch is window 58's 3 s, inside the signal, so none waits for the end
    windows = WindowPatches(stride=3)
    given = 0
    for _ in windows.watch(steps(1) for _ in range(60)):
        given += len(windows.ready())
        assert len(windows._buffer) <= 3 * DEFAULT.window_samples + 22050
    assert given == 20 and len(windows.finish()) == 0
    with pytest.raises(AudioError, match="no samples"):
        WindowPatches().finish()
