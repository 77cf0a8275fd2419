"""WaveGAN: shapes, phase shuffle, the gradient penalty by hand, a few real steps, readable output."""

import numpy as np
import pytest
import torch

from instrec import audio
from training import wavegan
from training.datasets import read_training


@pytest.mark.parametrize("slice_len", [16384, 65536])
def test_shapes_for_both_sizes(slice_len):
    G, D = wavegan.Generator(slice_len, model_size=4), wavegan.Discriminator(slice_len, model_size=4)
    with torch.no_grad():
        x = G(torch.rand(3, wavegan.LATENT) * 2 - 1)
    assert x.shape == (3, 1, slice_len) and float(x.abs().max()) <= 1.0
    assert D(x).shape == (3,)
    assert len(D.convs) == (5 if slice_len == 16384 else 6)


def test_phase_shuffle_keeps_shape_and_content():
    ps = wavegan.PhaseShuffle(2).train()
    x = torch.arange(2 * 3 * 10, dtype=torch.float32).reshape(2, 3, 10)
    y = ps(x, shifts=torch.tensor([0, 2]))
    assert y.shape == x.shape
    torch.testing.assert_close(y[0], x[0])  # no shift: unchanged
    torch.testing.assert_close(y[1, :, 2:], x[1, :, :-2])  # shifted right by 2
    torch.testing.assert_close(y[1, :, :2], x[1, :, [2, 1]])  # the edge filled by reflection
    random = ps(x)
    assert random.shape == x.shape
    assert ps.eval()(x) is x  # off at evaluation


def test_gradient_penalty_by_hand():
    # a linear critic D(x) = w . x has gradient w everywhere: penalty = 10 (||w|| - 1)^2
    w = torch.tensor([3.0, 4.0])
    critic = lambda x: (x.flatten(1) * w).sum(1)  # noqa: E731
    real, fake = torch.randn(4, 1, 2), torch.randn(4, 1, 2)
    gp = wavegan.gradient_penalty(critic, real, fake)
    assert float(gp.detach()) == pytest.approx(10 * (5.0 - 1.0) ** 2)
    # a quadratic critic D(x) = ||x||^2 / 2 has gradient x_hat: check one interpolate by hand
    quad = lambda x: 0.5 * (x.flatten(1) ** 2).sum(1)  # noqa: E731
    real, fake = torch.tensor([[[1.0, 2.0]]]), torch.tensor([[[3.0, 0.0]]])
    alpha = torch.tensor([[[0.25]]])
    x_hat = torch.tensor([2.5, 0.5])  # 0.25 * real + 0.75 * fake
    expected = 10 * (float(x_hat.norm()) - 1) ** 2
    assert float(wavegan.gradient_penalty(quad, real, fake, alpha=alpha).detach()) == pytest.approx(expected, rel=1e-6)


def test_a_few_steps_and_generated_files(tiny_corpus, tmp_path):
    out = tmp_path / "gan"
    result = wavegan.train(tiny_corpus, "pia", out, slice_len=16384, model_size=4, steps=3, batch_size=4,
                           critic_steps=2, sample_every=3, progress=False)
    assert result["steps"] == 3 and all(np.isfinite([h["d_loss"], h["g_loss"]]).all() for h in result["history"])
    assert (out / "samples" / "step000003.wav").exists()
    resumed = wavegan.train(tiny_corpus, "pia", out, slice_len=16384, model_size=4, steps=5, batch_size=4,
                            critic_steps=2, sample_every=100, resume=True, progress=False)
    assert [h["step"] for h in resumed["history"]] == [1, 2, 3, 4, 5]
    files = wavegan.generate(out / "checkpoint.pt", 5, tmp_path / "generated")
    assert len(files) == 5
    ds = read_training(tmp_path / "generated")
    assert len(ds) == 5 and all(e.labels == ("pia",) for e in ds)
    assert all(e.path.name.startswith("wavegan-") for e in ds)
    y = audio.load(files[0])
    assert len(y) == 16384 and np.isfinite(y).all()
