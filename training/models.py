"""The seed's CNNs: Table 5 for the mel-spectrogram and modgdgram, Table 6 for the CQT chromagram.

Built from one reusable :class:`ConvBlock` (two 3x3 convolutions with LeakyReLU(0.33), 3x3 max
pooling with stride 3, dropout 0.25). Global max pooling is a reduction (``amax``), so the ONNX
graph has no fixed sizes but the batch axis is free. The model standardises its input with
per-bin statistics of the training set (buffers, saved and exported with the weights) and ends
with the activation it was trained for, so it outputs probabilities.

With ``freq_norm`` the input and the first two blocks' outputs also pass through
:class:`RelaxedFreqNorm` (Kim et al. 2022, "Domain generalization with relaxed instance
frequency-wise normalization for multi-device acoustic scene classification"): each frequency row
of each window is standardised over time, so a recording chain's colouration, a constant offset per
bin of a log spectrum, no longer reaches the convolutions in full.

With ``pcen`` the mel CNN takes its input through :class:`PCEN` (per-channel energy normalisation,
Wang et al. 2017) before the standardisation: each mel band's magnitude is divided by a running
average of its own recent past, which takes out a per-band gain while keeping onsets and decays.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from instrec.labels import N_CLASSES

#: Filters of each block, per representation (seed Tables 5 and 6).
FILTERS = {
    "mel": ((8, 16), (24, 32), (64, 128), (256, 512)),
    "modgd": ((8, 16), (24, 32), (64, 128), (256, 512)),
    "cqt": ((24, 32), (64, 128), (256, 512)),
}


class ConvBlock(nn.Module):
    def __init__(self, in_channels: int, filters: tuple[int, int], dropout: float = 0.25):
        super().__init__()
        a, b = filters
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, a, 3, padding=1),
            nn.LeakyReLU(0.33),
            nn.Conv2d(a, b, 3, padding=1),
            nn.LeakyReLU(0.33),
            nn.MaxPool2d(3, stride=3),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class RelaxedFreqNorm(nn.Module):
    """``lam * LN(x) + (1 - lam) * IFN(x)`` on (batch, channels, F, T).

    IFN standardises every frequency row over channels and time (instance frequency-wise
    normalisation: what a per-bin gain or offset of the input does is taken out); LN standardises
    the whole window (layer normalisation: the spectral envelope is kept). ``lam`` relaxes one
    towards the other: 0 is IFN alone, 1 is LN alone. No learnable parameters.

    ``kind="centre"`` only centres each frequency row (subtracts its mean over channels and time)
    and scales the centred window by its one standard deviation: a per-bin offset (a gain, on a log
    spectrum) is still taken out, but a row of little variance, such as a quiet band of background
    noise, is not stretched to the variance of a row that carries the notes, as IFN stretches it.
    """

    KINDS = ("ifn", "centre")

    def __init__(self, lam: float, kind: str = "ifn", eps: float = 1e-5):
        super().__init__()
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"freq_norm must be in [0, 1], got {lam}")
        if kind not in self.KINDS:
            raise ValueError(f"unknown frequency-wise normalisation {kind!r}; expected one of {self.KINDS}")
        self.lam, self.kind, self.eps = lam, kind, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch's layer normalisation (a LayerNormalization node in ONNX): LN over the whole (channels, F,
        # time) window; IFN over the (channels, time) plane of every frequency row; "centre" subtracts each
        # row's mean over that plane, then normalises the whole window
        ln = F.layer_norm(x, x.shape[1:], eps=self.eps)
        if self.kind == "centre":
            rowwise = F.layer_norm(x - x.mean(dim=(1, 3), keepdim=True), x.shape[1:], eps=self.eps)
        else:
            rows = x.transpose(1, 2)  # (batch, F, channels, T)
            rowwise = F.layer_norm(rows, rows.shape[2:], eps=self.eps).transpose(1, 2)
        return self.lam * ln + (1.0 - self.lam) * rowwise


class PCEN(nn.Module):
    """Per-channel energy normalisation of (batch, channels, F, T) windows of natural-log magnitudes.

    ``E = exp(x) * scale``; ``M`` is E smoothed along time by the first-order low-pass filter
    ``M[t] = (1 - b) M[t-1] + b E[t]``, started in its steady state for the window's first frame
    (``M[-1] = E[0]``); the output is ``(E / (eps + M)^gain + bias)^power - bias^power``. These are
    librosa's definitions and defaults (``librosa.pcen``, ``b`` from ``time_constant`` in frames,
    ``scale`` the 2^31 its documentation applies to float audio), computed per window so that the
    exported graph needs nothing but the window: the filter is a (T, T) matrix product. A gain ``g``
    on one band scales ``E`` and ``M`` alike, so ``E / M^gain`` moves by ``g^(1 - gain)`` only: 1.05
    for a 20 dB colouration. No learnable parameters.
    """

    def __init__(self, time_constant: float, gain: float = 0.98, bias: float = 2.0, power: float = 0.5,
                 eps: float = 1e-6, scale: float = 2.0**31):
        super().__init__()
        if not time_constant > 0:
            raise ValueError(f"the PCEN time constant must be positive frames, got {time_constant}")
        self.time_constant, self.gain, self.bias, self.power, self.eps, self.scale = (
            time_constant, gain, bias, power, eps, scale)
        self.b = (math.sqrt(1 + 4 * time_constant**2) - 1) / (2 * time_constant**2)

    def smoother(self, n: int, device: torch.device) -> torch.Tensor:
        """(n, n) matrix W with ``M = E @ W``: W[s, t] = b (1 - b)^(t - s) for s <= t, and the
        initial state's share (1 - b)^(t + 1) added to row 0."""
        t = torch.arange(n, device=device, dtype=torch.float32)
        lag = t[None, :] - t[:, None]
        decay = torch.pow(torch.tensor(1.0 - self.b, device=device), lag.clamp_min(0))
        W = torch.where(lag >= 0, self.b * decay, torch.zeros_like(decay))
        W[0] = W[0] + (1.0 - self.b) ** (t + 1)
        return W

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        E = torch.exp(x) * self.scale
        M = E @ self.smoother(x.shape[-1], x.device)
        smooth = torch.exp(-self.gain * (math.log(self.eps) + torch.log1p(M / self.eps)))
        return self.bias**self.power * torch.expm1(self.power * torch.log1p(E * smooth / self.bias))


class InstrumentCNN(nn.Module):
    """(batch, 1, F, 100) feature windows -> (batch, 11) probabilities.

    Parameters
    ----------
    representation : "mel" | "modgd" | "cqt"
        Picks the filters of Table 5 (mel, modgd) or Table 6 (cqt).
    n_bins : int
        F, the input's frequency bins (128 or 36); used for the normalisation buffers.
    activation : "softmax" | "sigmoid"
        The output layer the model was trained with (categorical or binary cross-entropy).
    max_hz : float, optional
        Band limit: input bins centred above this frequency are ignored (set to their training
        mean), so the model cannot learn from how much high-frequency content a source has.
        Set the bins with :meth:`set_band_limit`.
    freq_norm : float, optional
        When given, :class:`RelaxedFreqNorm` with this ``lam`` after the input standardisation and
        after each of the first two blocks.
    freq_norm_kind : "ifn" | "centre"
        Its row-wise part (see :class:`RelaxedFreqNorm`).
    pcen : float, optional
        When given, :class:`PCEN` with this time constant (in frames) on the input, before the
        standardisation (whose statistics are then those of the PCEN output). Log magnitudes only (mel).
    """

    def __init__(self, representation: str, n_bins: int, activation: str = "softmax", hidden: int = 1024,
                 max_hz: float | None = None, freq_norm: float | None = None, freq_norm_kind: str = "ifn",
                 pcen: float | None = None):
        super().__init__()
        if representation not in FILTERS:
            raise ValueError(f"unknown representation {representation!r}")
        if activation not in ("softmax", "sigmoid"):
            raise ValueError(f"unknown activation {activation!r}")
        self.representation, self.n_bins, self.activation = representation, n_bins, activation
        self.register_buffer("mean", torch.zeros(1, 1, n_bins, 1))
        self.register_buffer("std", torch.ones(1, 1, n_bins, 1))
        self.max_hz = max_hz
        self.register_buffer("keep", torch.ones(1, 1, n_bins, 1))  # 1 for the bins the model sees
        self.freq_norm, self.freq_norm_kind = freq_norm, freq_norm_kind
        if pcen is not None and representation != "mel":
            raise ValueError(f"PCEN takes log magnitudes: the mel CNN only, not {representation}")
        self.pcen = pcen
        self.frontend = PCEN(pcen) if pcen is not None else nn.Identity()
        blocks, channels = [], 1
        for k, filters in enumerate(FILTERS[representation]):
            if freq_norm is not None and k < 3:  # the input and the first two blocks' outputs
                blocks.append(RelaxedFreqNorm(freq_norm, freq_norm_kind))
            blocks.append(ConvBlock(channels, filters))
            channels = filters[1]
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Linear(channels, hidden), nn.LeakyReLU(0.33), nn.Dropout(0.5),
                                  nn.Linear(hidden, N_CLASSES))

    @property
    def kwargs(self) -> dict:
        """Constructor arguments, saved in checkpoints so the model can be rebuilt."""
        return {"representation": self.representation, "n_bins": self.n_bins, "activation": self.activation,
                "hidden": self.head[0].out_features, "max_hz": self.max_hz,
                "freq_norm": self.freq_norm, "freq_norm_kind": self.freq_norm_kind, "pcen": self.pcen}

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-bin statistics of the training windows, shape (F,)."""
        self.mean.copy_(mean.reshape(self.mean.shape))
        self.std.copy_(std.clamp_min(1e-3).reshape(self.std.shape))

    def set_band_limit(self, bin_hz, max_hz: float | None) -> None:
        """Ignore the bins whose centre frequency (``bin_hz``, shape (F,)) is above ``max_hz``."""
        keep = torch.ones(self.n_bins) if max_hz is None else torch.as_tensor(bin_hz <= max_hz, dtype=torch.float32)
        self.keep.copy_(keep.reshape(self.keep.shape))
        self.max_hz = max_hz

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 1, F, 100) -> (batch, 512): the globally max-pooled output of the last block."""
        x = self.frontend(x)  # PCEN, when the model has it
        x = (x - self.mean) / self.std * self.keep  # (batch, 1, F, 100); ignored bins at their mean
        x = self.blocks(x)  # (batch, 512, 1, 1) for mel/modgd; (batch, 512, 1, 3) for cqt
        return torch.amax(x, dim=(2, 3))  # global max pooling

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))  # (batch, 11)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.logits(x)
        return torch.softmax(z, dim=-1) if self.activation == "softmax" else torch.sigmoid(z)


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; the gradient multiplied by ``-strength`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, strength: float) -> torch.Tensor:
        ctx.strength = strength
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.strength * grad, None


def reverse_gradient(x: torch.Tensor, strength: float) -> torch.Tensor:
    """Gradient reversal (Ganin & Lempitsky 2015): ``x`` unchanged forward, ``-strength`` times the
    gradient backward, so what is trained through it learns to defeat the layer after it."""
    return _ReverseGradient.apply(x, strength)


class SourceAdversary(nn.Module):
    """Names the source family of a window from a CNN's embedding and the window's class, through
    :func:`reverse_gradient`.

    Trained beside an :class:`InstrumentCNN` (``training.train --adversary``): the adversary learns to
    tell the families apart while the reversed gradient teaches the CNN an embedding it cannot tell them
    apart in (domain-adversarial training, Ganin et al. 2016). It is given the class (the training
    target), so a family that plays few classes cannot be named from the class alone, and the reversed
    gradient is aimed at what the embedding says of the recording beyond the instrument, not at the
    instrument (whether it takes that out is for :mod:`experiments.source_probe` to say). It sees the
    embedding standardised (layer normalisation without weights), so the CNN cannot defeat it by blowing
    its embedding up, which a max-pooled embedding without normalisation did within two epochs. Used in
    training only, never exported.
    """

    def __init__(self, n_families: int, channels: int = 512, hidden: int = 256, n_classes: int = N_CLASSES):
        super().__init__()
        if n_families < 2:
            raise ValueError(f"an adversary needs at least two source families, got {n_families}")
        self.n_families = n_families
        self.body = nn.Sequential(nn.Linear(channels + n_classes, hidden), nn.LeakyReLU(0.33), nn.Dropout(0.5),
                                  nn.Linear(hidden, n_families))

    def forward(self, embedding: torch.Tensor, classes: torch.Tensor, strength: float) -> torch.Tensor:
        """(batch, channels) embeddings and (batch, classes) targets -> (batch, families) logits."""
        seen = F.layer_norm(reverse_gradient(embedding, strength), embedding.shape[-1:])
        return self.body(torch.cat([seen, classes.to(embedding.dtype)], dim=1))


def from_checkpoint(checkpoint: dict) -> InstrumentCNN:
    """Rebuild a model from a checkpoint written by :mod:`training.train`."""
    if checkpoint.get("model_class") != "InstrumentCNN":
        raise ValueError(f"checkpoint holds a {checkpoint.get('model_class')!r}, not an InstrumentCNN")
    model = InstrumentCNN(**checkpoint["model_kwargs"])
    state = dict(checkpoint["state_dict"])
    state.setdefault("keep", torch.ones_like(model.keep))  # checkpoints from before the band limit
    model.load_state_dict(state)
    return model.eval()
