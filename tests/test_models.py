"""The seed's Tables 5 and 6: intermediate shapes and parameter counts."""

import numpy as np
import pytest
import torch

from training.models import FILTERS, InstrumentCNN, from_checkpoint


def conv_params(filters):
    total, channels = 0, 1
    for a, b in filters:
        total += channels * a * 9 + a + a * b * 9 + b
        channels = b
    return total


@pytest.mark.parametrize(
    "representation,n_bins,shapes",
    [
        ("mel", 128, [(16, 42, 33), (32, 14, 11), (128, 4, 3), (512, 1, 1)]),
        ("modgd", 128, [(16, 42, 33), (32, 14, 11), (128, 4, 3), (512, 1, 1)]),
        ("cqt", 36, [(32, 12, 33), (128, 4, 11), (512, 1, 3)]),
    ],
)
def test_intermediate_shapes_and_parameter_count(representation, n_bins, shapes):
    model = InstrumentCNN(representation, n_bins).eval()
    x = torch.randn(5, 1, n_bins, 100)
    seen = []
    for block in model.blocks:
        x = block(x)
        seen.append(tuple(x.shape[1:]))
    assert seen == shapes
    # convolutions + FC(512 -> 1024) + FC(1024 -> 11); the normalisation buffers are not parameters
    expected = conv_params(FILTERS[representation]) + (512 * 1024 + 1024) + (1024 * 11 + 11)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert expected == {"mel": 2_115_939, "modgd": 2_115_939, "cqt": 2_111_451}[representation]


@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_outputs_are_probabilities(activation):
    model = InstrumentCNN("mel", 128, activation).eval()
    p = model(torch.randn(3, 1, 128, 100))
    assert p.shape == (3, 11) and bool(((p >= 0) & (p <= 1)).all())
    if activation == "softmax":
        torch.testing.assert_close(p.sum(dim=1), torch.ones(3))


def test_normalisation_is_applied():
    model = InstrumentCNN("cqt", 36).eval()
    x = torch.randn(2, 1, 36, 100) * 5 + 3
    before = model(x)
    model.set_normalisation(torch.full((36,), 3.0), torch.full((36,), 5.0))
    after = model(x)
    model.set_normalisation(torch.zeros(36), torch.ones(36))
    torch.testing.assert_close(model((x - 3) / 5), after)
    assert not torch.allclose(before, after)


def test_band_limit_ignores_bins_above_it():
    from instrec.features import bin_frequencies

    model = InstrumentCNN("mel", 128).eval()
    hz = bin_frequencies("mel")
    model.set_band_limit(hz, 4000.0)
    kept = int(model.keep.sum())
    assert kept == int((hz <= 4000).sum()) and 0 < kept < 128 and hz[kept - 1] <= 4000 < hz[kept]
    x = torch.randn(4, 1, 128, 100)
    y = x.clone()
    y[:, :, kept:] = torch.randn(4, 1, 128 - kept, 100) * 10  # anything above the limit
    torch.testing.assert_close(model(x), model(y), rtol=0, atol=0)
    y[:, :, kept - 1] += 1.0  # the highest bin it keeps does count
    assert not torch.equal(model(x), model(y))
    # rebuilt from a checkpoint with the limit, and from one made before the limit existed
    again = from_checkpoint({"model_class": "InstrumentCNN", "model_kwargs": model.kwargs, "state_dict": model.state_dict()})
    torch.testing.assert_close(again(x), model(x))
    old = {k: v for k, v in model.state_dict().items() if k != "keep"}
    kwargs = {k: v for k, v in model.kwargs.items() if k != "max_hz"}
    assert from_checkpoint({"model_class": "InstrumentCNN", "model_kwargs": kwargs, "state_dict": old}).keep.all()


def test_relaxed_freq_norm_known_answers():
    from training.models import RelaxedFreqNorm

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 12, 50, generator=g)
    gain = torch.rand(1, 1, 12, 1, generator=g) * 5 + 0.1
    offset = torch.randn(1, 1, 12, 1, generator=g) * 10
    ifn = RelaxedFreqNorm(0.0)
    y = ifn(x)
    # every frequency row of every window: mean 0 and variance 1 over channels and time
    torch.testing.assert_close(y.mean(dim=(1, 3)), torch.zeros(3, 12), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(dim=(1, 3), unbiased=False), torch.ones(3, 12), atol=1e-3, rtol=0)
    # a per-bin gain and offset (a recording chain's colouration of a log spectrum) is taken out;
    # the tolerance is the eps inside the square root, relative to rows of variance 0.01-25
    torch.testing.assert_close(ifn(x * gain + offset), y, atol=1e-3, rtol=0)
    # lam = 1 standardises the whole window (written out here as the reference)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    ln = (x - mean) / torch.sqrt(((x - mean) ** 2).mean(dim=(1, 2, 3), keepdim=True) + 1e-5)
    torch.testing.assert_close(RelaxedFreqNorm(1.0)(x), ln, atol=1e-5, rtol=0)
    torch.testing.assert_close(RelaxedFreqNorm(0.5)(x), 0.5 * ln + 0.5 * y, atol=1e-5, rtol=0)
    # a constant window (silence at the log floor) gives zeros, not NaN
    assert torch.equal(RelaxedFreqNorm(0.5)(torch.full((1, 1, 12, 50), -11.5)), torch.zeros(1, 1, 12, 50))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        RelaxedFreqNorm(1.5)


def test_centred_freq_norm_takes_out_offsets_and_keeps_row_scales():
    from training.models import RelaxedFreqNorm

    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, 12, 50, generator=g)
    x[:, :, 5] *= 3.0  # one loud row: its variance is 9 times the others' (about 1)
    offset = torch.randn(1, 1, 12, 1, generator=g) * 10
    centre = RelaxedFreqNorm(0.0, "centre")
    y = centre(x)
    # every row has mean 0 over channels and time; the whole window has variance 1
    torch.testing.assert_close(y.mean(dim=(1, 3)), torch.zeros(3, 12), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(dim=(1, 2, 3), unbiased=False), torch.ones(3), atol=1e-4, rtol=0)
    # a per-bin offset (a gain, on a log spectrum) is taken out as IFN takes it out (float32 rounding
    # of offsets of about 10 on values of about 1)
    torch.testing.assert_close(centre(x + offset), y, atol=1e-4, rtol=0)
    # but the rows keep their scales: the loud row stays 9 times the variance of the others (the sample
    # variance of 200 values of one row is within about 10 % of its expectation), where IFN makes it 1
    row_var = y.var(dim=(1, 3), unbiased=False)
    ratio = row_var[:, 5] / torch.cat([row_var[:, :5], row_var[:, 6:]], dim=1).mean(dim=1)
    assert ((ratio > 7.0) & (ratio < 11.0)).all(), ratio
    torch.testing.assert_close(RelaxedFreqNorm(0.0)(x).var(dim=(1, 3), unbiased=False), torch.ones(3, 12),
                               atol=1e-3, rtol=0)
    # relaxed: the same mixture with layer normalisation; a constant window gives zeros
    ln = RelaxedFreqNorm(1.0)(x)
    torch.testing.assert_close(RelaxedFreqNorm(0.5, "centre")(x), 0.5 * ln + 0.5 * y, atol=1e-5, rtol=0)
    assert torch.equal(RelaxedFreqNorm(0.5, "centre")(torch.full((1, 1, 12, 50), -11.5)), torch.zeros(1, 1, 12, 50))
    with pytest.raises(ValueError, match="unknown frequency-wise normalisation"):
        RelaxedFreqNorm(0.5, "pcen")


@pytest.mark.parametrize("representation,n_bins", [("mel", 128), ("cqt", 36)])
def test_freq_norm_ignores_a_per_bin_colouration_and_adds_no_parameters(representation, n_bins):
    # compared on the logits: an untrained CNN's probabilities are all near 1/11, too flat to tell apart
    torch.manual_seed(0)
    plain = InstrumentCNN(representation, n_bins).eval()
    model = InstrumentCNN(representation, n_bins, freq_norm=0.0).eval()
    relaxed = InstrumentCNN(representation, n_bins, freq_norm=0.5).eval()
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in plain.parameters())
    x = torch.randn(4, 1, n_bins, 100)
    coloured = x + torch.linspace(-6, 6, n_bins).reshape(1, 1, n_bins, 1)  # a tilt across the bins
    with torch.no_grad():
        torch.testing.assert_close(model.logits(coloured), model.logits(x), atol=1e-4, rtol=0)
        assert (plain.logits(coloured) - plain.logits(x)).abs().max() > 1e-3  # without it the tilt is seen
        assert (relaxed.logits(coloured) - relaxed.logits(x)).abs().max() > 1e-3  # lam > 0 keeps part of it
        again = from_checkpoint({"model_class": "InstrumentCNN", "model_kwargs": relaxed.kwargs,
                                 "state_dict": relaxed.state_dict()})
        assert again.freq_norm == 0.5
        torch.testing.assert_close(again(x), relaxed(x))


def test_pcen_matches_librosa_on_a_chord():
    # librosa.pcen on the same magnitudes, its filter started in the steady state of the first frame as the
    # module starts it (zi = lfilter_zi * S[:, :1]); float32 against float64: 1e-4 relative
    import librosa
    import scipy.signal

    from instrec import features
    from training.models import PCEN

    sr = 22050
    t = np.arange(sr) / sr
    y = sum(np.sin(2 * np.pi * f * t) for f in (261.63, 329.63, 392.0)) * np.minimum(1.0, t / 0.3) * 0.2
    log_mel = features.mel(y.astype(np.float32))[:, :100]
    pcen = PCEN(time_constant=40.0)
    ours = pcen(torch.from_numpy(log_mel)[None, None])[0, 0].numpy()
    S = np.exp(log_mel.astype(np.float64)) * 2.0**31
    zi = scipy.signal.lfilter_zi([pcen.b], [1, pcen.b - 1])[None, :] * S[:, :1]
    expected = librosa.pcen(S, b=pcen.b, zi=zi, gain=0.98, bias=2.0, power=0.5, eps=1e-6)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-6)


def test_pcen_known_answers():
    from training.models import PCEN

    pcen = PCEN(time_constant=40.0)
    # a steady band is its own running average from the first frame on: (c / (eps + c)^0.98 + 2)^0.5 - 2^0.5
    level = torch.tensor([-6.0, -2.0, 1.0]).reshape(1, 1, 3, 1)
    c = torch.exp(level.double()) * 2.0**31
    expected = ((c / (1e-6 + c) ** 0.98 + 2.0) ** 0.5 - 2.0**0.5).expand(1, 1, 3, 100)
    torch.testing.assert_close(pcen(level.expand(1, 1, 3, 100)).double(), expected, rtol=1e-5, atol=0)
    # an onset stands out and fades as the average catches up (0.4 s at 100 frames per second)
    step = torch.full((1, 1, 1, 100), -8.0)
    step[..., 50:] = -2.0
    out = pcen(step)[0, 0, 0]
    assert out[50] > 5 * out[49] and out[50] > out[60] > out[99] > out[49]
    # a 20 dB gain on a band moves E / M^gain by 10^0.02 only; a plain log spectrum moves by log(10) everywhere
    x = torch.randn(2, 1, 8, 100) - 4.0
    ratio = (pcen(x + np.log(10.0)) + 2**0.5) ** 2 - 2.0  # back to E / (eps + M)^gain
    torch.testing.assert_close(ratio, ((pcen(x) + 2**0.5) ** 2 - 2.0) * 10**0.02, rtol=1e-4, atol=0)
    with pytest.raises(ValueError, match="positive"):
        PCEN(time_constant=0.0)
    with pytest.raises(ValueError, match="mel CNN only"):
        InstrumentCNN("cqt", 36, pcen=40.0)


def test_reverse_gradient_is_the_identity_forward_and_negates_backward():
    from training.models import reverse_gradient

    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = reverse_gradient(x, 0.5)
    torch.testing.assert_close(y, x)
    (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([-0.5, -1.0, -1.5]))  # d/dx of the sum, times -0.5


def test_source_adversary_takes_a_family_out_of_an_embedding():
    # a known answer for the mechanism: inputs carry a class (feature 0) and, independently, a family
    # (feature 1); a small embedding is trained on the class while the adversary names the family through
    # the reversed gradient. Afterwards a fresh logistic-regression probe finds the family in the embedding
    # less often than without the reversal (strength 0), where it finds it nearly always. Measured over
    # seeds 0-4: 0.93-0.99 without, 0.55-0.82 with; seeds 0-2 are asked for a mean drop of 0.1 (measured
    # 0.18), the adversarial game swinging too much from one seed to the next for a bound on each.
    from sklearn.linear_model import LogisticRegression
    from torch import nn

    from training.models import SourceAdversary

    def probe_after(strength: float, seed: int) -> tuple[float, float]:
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        n = 2000
        cls, fam = rng.integers(0, 2, n), rng.integers(0, 2, n)
        x = np.c_[cls * 2 - 1, fam * 2 - 1, rng.standard_normal((n, 6))].astype(np.float32)
        x[:, :2] += 0.3 * rng.standard_normal((n, 2)).astype(np.float32)
        X, C, F = torch.from_numpy(x), torch.from_numpy(cls), torch.from_numpy(fam)
        embed, head = nn.Sequential(nn.Linear(8, 16), nn.LeakyReLU(0.33)), nn.Linear(16, 2)
        adversary = SourceAdversary(2, channels=16, hidden=32, n_classes=2)
        optimiser = torch.optim.Adam([*embed.parameters(), *head.parameters(), *adversary.parameters()], lr=1e-2)
        for _ in range(1500):
            idx = torch.from_numpy(rng.integers(0, n, 128))
            e = embed(X[idx])
            named = adversary(e, nn.functional.one_hot(C[idx], 2), strength)
            loss = nn.functional.cross_entropy(head(e), C[idx]) + nn.functional.cross_entropy(named, F[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            e = embed(X)
            right = float((head(e).argmax(1) == C).float().mean())
        probe = LogisticRegression(max_iter=2000).fit(e[:1000].numpy(), fam[:1000])
        return right, probe.score(e[1000:].numpy(), fam[1000:])

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny layers: one thread is fastest, and the same on every machine
    try:
        drops = []
        for seed in (0, 1, 2):
            plain_right, plain_probe = probe_after(0.0, seed)
            reversed_right, reversed_probe = probe_after(1.0, seed)
            assert plain_right > 0.95 and reversed_right > 0.95  # the class is learnt either way
            assert plain_probe > 0.9
            drops.append(plain_probe - reversed_probe)
    finally:
        torch.set_num_threads(threads)
    assert np.mean(drops) > 0.1, drops
    with pytest.raises(ValueError, match="two source families"):
        SourceAdversary(1)
