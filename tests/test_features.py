"""Known answers and librosa references for the three representations."""

import librosa
import numpy as np
import pytest
import scipy.signal

from instrec import audio, features
from instrec.params import DEFAULT as P
from instrec.params import FeatureParams, ParamsError
from tests.conftest import tone

SR = P.sample_rate


def test_derived_parameters():
    assert P.hop_length == 220 and P.window_samples == 22000
    assert P.modgd_frame_length == 1102 and P.modgd_n_fft == 2048
    assert P.shapes == {"mel": (1, 128, 100), "modgd": (1, 128, 100), "cqt": (1, 36, 100)}
    assert FeatureParams.from_dict(P.to_dict()) == P
    with pytest.raises(ParamsError, match=r"\['mystery'\] are not understood"):
        FeatureParams.from_dict({**P.to_dict(), "mystery": 1})


@pytest.mark.parametrize("seconds", [0.3, 1.0, 3.0, 20.0])
def test_shapes_and_equal_window_counts(seconds):
    y = np.random.default_rng(0).uniform(-1, 1, round(seconds * SR)).astype(np.float32)
    out = features.extract(y)
    n = audio.n_windows(len(y))
    assert n == max(1, round(seconds))
    for name, W in out.items():
        assert W.shape == (n, *P.shapes[name]) and W.dtype == np.float32
        assert np.isfinite(W).all()


def test_mel_matches_librosa():
    y = np.random.default_rng(1).standard_normal(3 * SR).astype(np.float32) * 0.1
    ref = librosa.feature.melspectrogram(
        y=y, sr=SR, n_fft=P.mel_n_fft, hop_length=P.hop_length, n_mels=P.n_mels, power=1.0, pad_mode="constant"
    )
    ref = np.log(np.maximum(ref, P.log_floor))
    # same STFT and filters; only float32 summation order differs -> 1e-4 in the log domain
    np.testing.assert_allclose(features.mel(y), ref, atol=1e-4)


@pytest.mark.parametrize("note", ["A2", "C4", "A4", "E6"])
def test_sine_peaks_in_its_mel_band(note):
    freq = librosa.note_to_hz(note)
    S = features.mel(tone(freq, 1.0))[:, 10:-10].mean(axis=1)
    centres = librosa.mel_frequencies(n_mels=P.n_mels + 2, fmax=SR / 2)[1:-1]
    expected = np.argmin(np.abs(centres - freq))
    assert abs(int(np.argmax(S)) - expected) <= 1  # the tone straddles two neighbouring triangles


def test_cqt_matches_librosa_magnitude():
    # a tone per octave, so every octave of the multirate transform is exercised
    y = sum(tone(librosa.note_to_hz(f"A{o}"), 4.0, amp=0.1) for o in range(1, 8))
    ref = np.abs(librosa.cqt(y, sr=SR, hop_length=P.hop_length, fmin=P.cqt_fmin, n_bins=P.cqt_bins,
                             bins_per_octave=P.chroma_bins, tuning=0.0))
    ours = features.cqt(y)
    inner = slice(200, -200)  # the lowest filters are 1.6 s long: compare where they see only signal
    # same filters and magnitude convention; the resampling chain and (below 2.8 kHz rate) the
    # linear interpolation between coarser frames differ -> within 3 % of the peak
    np.testing.assert_allclose(ours[:, inner], ref[:, inner], atol=0.03 * ref.max())
    assert np.array_equal(ours[:, inner].mean(1).argsort()[-7:], ref[:, inner].mean(1).argsort()[-7:])


def test_c_major_triad_chroma():
    y = sum(tone(librosa.note_to_hz(n), 2.0) for n in ["C4", "E4", "G4"])
    chroma = features.cqt_chroma(y)[:, 20:-20].mean(axis=1)
    # 3 bins per semitone, bin 0 centred on C: C -> 0, E -> 12, G -> 21
    assert sorted(np.argsort(chroma)[-3:]) == [0, 12, 21]


def test_chroma_close_to_librosa_on_real_clarinet(real_clips):
    y = audio.load(real_clips[0])
    ref = librosa.feature.chroma_cqt(y=y, sr=SR, hop_length=P.hop_length, fmin=P.cqt_fmin, n_chroma=P.chroma_bins,
                                     bins_per_octave=P.chroma_bins, tuning=0.0)
    ours = features.cqt_chroma(y)
    diff = np.abs(ours - ref)
    # chroma lies in [0, 1]; the differences sit in quiet frames at onsets, where per-frame
    # normalisation magnifies the small CQT differences of the test above
    assert diff.mean() < 0.01
    assert np.percentile(diff, 99) < 0.1
    assert np.corrcoef(ours.ravel(), ref.ravel())[0, 1] > 0.99


@pytest.mark.parametrize("freq", [600.0, 1000.0])
@pytest.mark.parametrize("excitation", ["impulses", "noise"])
def test_modgd_peaks_at_a_single_resonance(freq, excitation):
    r, w = 0.995, 2 * np.pi * freq / SR
    x = np.zeros(2 * SR)
    if excitation == "impulses":
        x[:: SR // 10] = 1.0
    else:
        x = np.random.default_rng(0).standard_normal(2 * SR)
    y = scipy.signal.lfilter([1.0], [1.0, -2 * r * np.cos(w), r * r], x).astype(np.float32)
    G = features.modgd(y / np.abs(y).max())[:, 10:-10].mean(axis=1)
    expected = freq / SR * P.modgd_n_fft
    assert abs(int(np.argmax(G)) - expected) <= 2  # two bins = 21.5 Hz


def test_modgd_keeps_sign():
    y = np.random.default_rng(2).standard_normal(SR).astype(np.float32)
    G = features.modgd(y)
    assert (G > 0).any() and (G < 0).any()


def test_modgd_equals_direct_formula():
    # the vectorised cepstral smoothing equals the textbook full-length FFT version
    rng = np.random.default_rng(3)
    y = rng.standard_normal(SR // 2).astype(np.float32)
    G = features.modgd(y)
    N, n_fft = P.modgd_frame_length, P.modgd_n_fft
    t = 7
    padded = np.pad(y, N // 2)
    x = padded[t * P.hop_length : t * P.hop_length + N] * scipy.signal.get_window("hamming", N)
    X = np.fft.rfft(x, n_fft)
    Y = np.fft.rfft(np.arange(N) * x, n_fft)
    floor = np.abs(X).max() * P.modgd_rel_floor
    cep = np.fft.irfft(np.log(np.maximum(np.abs(X), floor)), n_fft)
    lifter = np.zeros(n_fft)
    lifter[: P.modgd_lifter] = 1
    lifter[n_fft - P.modgd_lifter + 1 :] = 1  # symmetric: both sides of quefrency 0
    S = np.maximum(np.exp(np.fft.rfft(cep * lifter).real), floor)
    tau = (X.real * Y.real + X.imag * Y.imag) / S ** (2 * P.modgd_gamma)
    expected = (np.sign(tau) * np.log1p(np.abs(tau) ** P.modgd_alpha))[: P.modgd_bins]
    # float32 FFTs and matrix products against float64: 1e-3 relative to the largest value
    np.testing.assert_allclose(G[:, t], expected, atol=1e-3 * np.abs(expected).max())


@pytest.mark.parametrize("kind", ["silence", "click"])
def test_silence_and_click_are_finite(kind):
    y = np.zeros(int(0.1 * SR), np.float32)
    if kind == "click":
        y[100] = 1.0
    for name, W in features.extract(y).items():
        assert W.shape[0] == 1 and np.isfinite(W).all(), name
    if kind == "silence":
        out = features.extract(y)
        assert np.all(out["modgd"] == 0) and np.all(out["cqt"] == 0)
        assert np.all(out["mel"] == np.float32(np.log(P.log_floor)))


@pytest.mark.parametrize("seconds", [0.3, P.window_duration_s, 1.5 * P.window_duration_s, 7.3, 120.0])
def test_streamed_windows_equal_whole_signal_windows(seconds):
    # one windowing path: the recognizer's chunks (4 windows, blocks of random sizes) give exactly
    # the windows of the whole signal, for lengths shorter than a window, of one, of one and a half,
    # several, and 2 minutes (equal up to float32 rounding of FFTs over other lengths: 1e-4)
    rng = np.random.default_rng(int(seconds * 10))
    y = (0.3 * rng.standard_normal(int(round(seconds * P.sample_rate)))).astype(np.float32)
    y[:: P.sample_rate // 3] = 0.9
    whole = features.extract(y)
    cuts = np.sort(rng.choice(np.arange(1, len(y)), size=min(25, len(y) - 1), replace=False))
    blocks = np.split(y, cuts)
    chunks = list(features.stream_windows(blocks, chunk_windows=4))
    assert len(chunks) == -(-audio.n_windows(len(y)) // 4)
    for rep in whole:
        streamed = np.concatenate([c[rep] for c in chunks])
        assert streamed.shape == whole[rep].shape == (audio.n_windows(len(y)), *P.shapes[rep])
        np.testing.assert_allclose(streamed, whole[rep], atol=1e-4, err_msg=rep)


def test_modgd_is_finite_for_every_allowed_gamma():
    silence_then_tone = np.concatenate([np.zeros(P.sample_rate, np.float32), tone(440, 1.0)])
    for gamma in (0.05, 0.5, 0.9, 1.0):
        params = FeatureParams(modgd_gamma=gamma)
        G = features.modgd(silence_then_tone, params=params)
        assert np.isfinite(G).all(), gamma
        assert np.all(G[:, 5:90] == 0)  # silent frames give zeros, not 0/0
        assert np.abs(G[:, 120:]).max() > 0.1  # the tone is there
    with pytest.raises(ParamsError, match="modgd_gamma"):
        FeatureParams(modgd_gamma=1.5)
