"""Augmentations applied to batches of cached feature windows, switchable from the training command.

    crop      a random 100-frame window across the boundary with the file's next window
    stretch   time stretch by 0.8-1.25 (linear interpolation along time)
    freqmask  one band of up to an eighth of the bins set to the window's mean (SpecAugment)
    mix       half the windows mixed with a window of another class; the target is the union
              (log-mel: sum of magnitudes; modgd and chroma: weighted sum)
    pitch     shift by -2..+2 semitones: the frequency axis resampled at the shifted frequencies
              (mel centres, modgd's linear bins), the chromagram rolled by whole bins
    transpose chromagram only: rolled by -6..+6 semitones (any key, in steps of one bin): an
              instrument is the same in every key, and on the circular pitch-class axis a transposition
              by any interval is exact, so the CNN can learn only the pattern a note's partials make
    eq        log-mel only: a random smooth gain curve (a tilt of up to +-6 dB at the ends plus one
              broad +-6 dB bump), as a microphone, room or tone control would colour a recording
    eqstrong  log-mel only: a harder equaliser (a tilt of up to +-10 dB at the ends plus three bumps of
              +-9 dB, 0.05-0.3 of the axis wide each), strong enough to move resonances of the size of
              an instrument body's, so the spectral envelope of one sample library stops being a cue
    noise     log-mel only: a background of coloured noise 15-45 dB under the window's mean magnitude
              (a tilted floor with Rayleigh-distributed cells), as hiss, room tone and breath put under
              real recordings
    mixstyle  mel and modgd: Freq-MixStyle (Kim et al. 2022, device generalisation in acoustic scene
              classification): for 70 % of the windows each frequency bin is standardised over time and
              given a mix (Beta(0.4, 0.4)) of its own and another window's per-bin mean and deviation, so
              the average spectral shape that one sample library or recording chain gives every note
              becomes an unreliable cue
    mixstyle-light  the same for 30 % of the windows (the CNN still sees most windows as recorded)
    short     mel and modgd: a quarter of the windows keep only their first 0.1-0.95 s and are digital
              silence after it, as the recognizer pads a file shorter than one window (a single short
              note), which no 3-second excerpt of the corpus shows otherwise. Exact but for the two
              frames either side of the cut, whose analysis windows straddle it; not for the chromagram,
              whose long low-frequency kernels carry a note on past the cut and whose per-frame
              normalisation raises that leak to full scale, so a cut chromagram is not the chromagram
              of a cut file

Working on cached features keeps epochs bound by the model, not by audio processing.
"""

from __future__ import annotations

import functools

import numpy as np

from instrec import features
from instrec.params import DEFAULT, REPRESENTATIONS, FeatureParams

AUGMENTATIONS = ("crop", "stretch", "freqmask", "mix", "pitch", "transpose", "eq", "eqstrong", "noise", "mixstyle",
                 "mixstyle-light", "short")
#: Augmentations that only make sense for some representations.
ONLY_FOR = {"transpose": ("cqt",), "eq": ("mel",), "eqstrong": ("mel",), "noise": ("mel",), "mixstyle": ("mel", "modgd"),
            "mixstyle-light": ("mel", "modgd"), "short": ("mel", "modgd")}
NEPER_PER_DB = np.log(10) / 20


def unsupported(augment: tuple[str, ...], representation: str) -> list[str]:
    """The augmentations in ``augment`` that ``representation`` does not support."""
    return [a for a in augment if representation not in ONLY_FOR.get(a, (representation,))]


def parse(spec: str) -> tuple[str, ...]:
    """A pipeline's ``--augment``, e.g. ``"noise,eq,mix:mel"`` -> ``("noise", "eq", "mix:mel")``.

    Each entry is an augmentation, optionally limited to some CNNs with ``:`` and their representations
    joined by ``+`` (``mix:mel``, ``pitch:mel+modgd``); without a limit it goes to every CNN it applies to.
    """
    entries = tuple(a.strip() for a in spec.split(",") if a.strip())
    for entry in entries:
        name, colon, limit = entry.partition(":")
        if name not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {name!r} in {spec!r}; expected some of {AUGMENTATIONS}")
        reps = limit.split("+") if colon else []
        if not all(reps) or set(reps) - set(REPRESENTATIONS):
            raise ValueError(f"{entry!r}: after ':' come representations joined by '+', some of {REPRESENTATIONS}")
        if reps and all(unsupported((name,), r) for r in reps):
            raise ValueError(f"{entry!r}: {name} applies to none of {reps}")
    return entries


def named_for(entries: tuple[str, ...], representation: str) -> tuple[str, ...]:
    """The augmentation names of :func:`parse`'s ``entries`` that are not limited to other CNNs than
    ``representation``'s (whether it supports them is :func:`unsupported`'s to say)."""
    named = (entry.partition(":") for entry in entries)
    return tuple(name for name, _, limit in named if not limit or representation in limit.split("+"))


def for_representation(entries: tuple[str, ...], representation: str) -> tuple[str, ...]:
    """The augmentations of :func:`parse`'s ``entries`` that a ``representation`` CNN trains with when
    the three are trained together: those named for it (:func:`named_for`) that it supports."""
    named = named_for(entries, representation)
    return tuple(a for a in named if a not in unsupported(named, representation))


def _shift_frequency(x: np.ndarray, semitones: np.ndarray, representation: str,
                     params: FeatureParams = DEFAULT) -> np.ndarray:
    """Shift each window (B, 1, F, T) up by ``semitones[b]``: the value at frequency f moves to f * ratio."""
    B, _, F, _ = x.shape
    if representation == "cqt":  # chroma: a circular axis of bins_per_semitone bins per semitone
        steps = np.rint(semitones * params.bins_per_semitone).astype(int)
        return np.stack([np.roll(x[b], steps[b], axis=1) for b in range(B)])
    freqs = features.bin_frequencies(representation, params=params)[:F]
    out = np.empty_like(x)
    for b in range(B):
        source = freqs / 2 ** (semitones[b] / 12)  # where each bin's new content comes from
        pos = np.interp(source, freqs, np.arange(F), left=0.0, right=F - 1.0)
        i0 = np.minimum(pos.astype(int), F - 2)
        w = (pos - i0).astype(np.float32)[:, None]
        out[b] = x[b][:, i0] * (1 - w) + x[b][:, i0 + 1] * w
    return out


def _add_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Log-mel windows (B, 1, F, T) with a noise floor added in the magnitude domain."""
    B, _, F, T = x.shape
    level = np.exp(x).mean(axis=(1, 2, 3), keepdims=True) * 10 ** (-rng.uniform(15, 45, (B, 1, 1, 1)) / 20)
    shape = np.exp(_eq_curves(B, F, rng))  # (B, 1, F, 1) colour of the floor
    cells = rng.rayleigh(np.sqrt(2 / np.pi), size=x.shape)  # mean 1: the floor's level is ``level``
    return np.log(np.exp(x) + (level * shape * cells).astype(np.float32)).astype(np.float32)


def _eq_curves(B: int, F: int, rng: np.random.Generator, tilt_db: float = 6.0, bumps: int = 1,
               bump_db: float = 6.0, widths: tuple[float, float] = (0.1, 0.4)) -> np.ndarray:
    """(B, 1, F, 1) smooth gains in nepers on a 0..1 axis: a tilt of up to +-``tilt_db`` at the ends and
    ``bumps`` raised-cosine bumps of up to +-``bump_db``, each ``widths`` (half-width) of the axis wide."""
    axis = np.linspace(0.0, 1.0, F)
    gain = rng.uniform(-2 * tilt_db, 2 * tilt_db, (B, 1)) * (axis - 0.5)
    for _ in range(bumps):
        centre, width = rng.uniform(0, 1, (B, 1)), rng.uniform(*widths, (B, 1))
        gain = gain + rng.uniform(-bump_db, bump_db, (B, 1)) * 0.5 * (
            1 + np.cos(np.pi * np.clip((axis - centre) / width, -1, 1)))
    return (gain * NEPER_PER_DB).astype(np.float32)[:, None, :, None]


#: ``eqstrong``: tilt, number of bumps, bump gain and widths of :func:`_eq_curves`.
STRONG_EQ = {"tilt_db": 10.0, "bumps": 3, "bump_db": 9.0, "widths": (0.05, 0.3)}
#: The equalising augmentations, applied in this order, and their curves.
EQUALISERS = {"eq": {}, "eqstrong": STRONG_EQ}


#: The Freq-MixStyle augmentations and the share of windows each restyles.
MIXSTYLES = {"mixstyle": 0.7, "mixstyle-light": 0.3}


def _mix_style(x: np.ndarray, rng: np.random.Generator, p: float, alpha: float = 0.4) -> np.ndarray:
    """Freq-MixStyle on windows (B, 1, F, T): per-bin statistics over time mixed with another window's."""
    B = len(x)
    mean = x.mean(axis=3, keepdims=True)
    std = np.sqrt(x.var(axis=3, keepdims=True) + 1e-6)
    lam = rng.beta(alpha, alpha, (B, 1, 1, 1)).astype(np.float32)
    partner = rng.permutation(B)
    mixed_mean = lam * mean + (1 - lam) * mean[partner]
    mixed_std = lam * std + (1 - lam) * std[partner]
    styled = (x - mean) / std * mixed_std + mixed_mean
    chosen = rng.random(B) < p
    return np.where(chosen[:, None, None, None], styled, x).astype(np.float32)


#: ``short``: the share of windows cut short, and the fewest and most frames they keep
SHORT_SHARE, SHORT_FRAMES = 0.25, (10, 95)


@functools.cache
def silence(representation: str) -> np.ndarray:
    """(F, 1) one frame of the features of digital silence: what pads a file shorter than a window."""
    zeros = np.zeros(DEFAULT.window_samples, np.float32)
    return features.extract(zeros, representations=(representation,))[representation][0, 0, :, -1:]


def cut_after(x: np.ndarray, keep: np.ndarray, representation: str) -> np.ndarray:
    """Windows (B, 1, F, T) with frames ``keep[b]`` onwards of window ``b`` made silence."""
    after = np.arange(x.shape[-1])[None, :] >= np.asarray(keep)[:, None]  # (B, T)
    return np.where(after[:, None, None, :], silence(representation), x).astype(np.float32)


def _context(windows: np.ndarray, file_index: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Each window followed by the next window of the same file (or itself): (B, 1, F, 2T)."""
    nxt = np.minimum(idx + 1, len(windows) - 1)
    same = file_index[nxt] == file_index[idx]
    nxt = np.where(same, nxt, idx)
    return np.concatenate([windows[idx], windows[nxt]], axis=-1)


def batch(features, idx: np.ndarray, targets: np.ndarray, augment: tuple[str, ...], rng: np.random.Generator,
          representation: str = "mel") -> tuple[np.ndarray, np.ndarray]:
    """Windows ``idx`` of a :class:`~training.cache.FeatureSet`, augmented -> (x, y) float32."""
    x = np.array(features.windows[idx], dtype=np.float32)
    y = np.array(targets[idx], dtype=np.float32)
    if not augment:
        return x, y
    B, _, F, T = x.shape
    if "crop" in augment or "stretch" in augment:
        ctx = _context(features.windows, features.file_index, idx)
        rate = rng.uniform(0.8, 1.25, B) if "stretch" in augment else np.ones(B)
        span = T * rate
        offset = rng.uniform(0, np.maximum(2 * T - 1 - span, 0)) if "crop" in augment else np.zeros(B)
        for b in range(B):
            pos = np.clip(offset[b] + np.arange(T) * rate[b], 0, 2 * T - 1)
            i0 = pos.astype(int)
            i1 = np.minimum(i0 + 1, 2 * T - 1)
            w = (pos - i0).astype(np.float32)
            x[b] = ctx[b][..., i0] * (1 - w) + ctx[b][..., i1] * w
    if "freqmask" in augment:
        for b in range(B):
            width = int(rng.integers(1, max(2, F // 8)))
            start = int(rng.integers(0, F - width))
            x[b, :, start : start + width] = x[b].mean()
    if "pitch" in augment:
        x = _shift_frequency(x, rng.uniform(-2, 2, B), representation)
    if "transpose" in augment and representation == "cqt":
        x = _shift_frequency(x, rng.uniform(-6, 6, B), representation)
    for name, curve in EQUALISERS.items():
        if name in augment and representation == "mel":
            x = np.maximum(x + _eq_curves(B, F, rng, **curve), np.float32(np.log(DEFAULT.log_floor)))
    if "noise" in augment and representation == "mel":
        x = _add_noise(x, rng)
    for name, share in MIXSTYLES.items():
        if name in augment and representation in ONLY_FOR[name]:
            x = _mix_style(x, rng, p=share)
    if "mix" in augment:
        partner = rng.permutation(B)
        differs = (y * y[partner]).sum(1) == 0
        chosen = differs & (rng.random(B) < 0.5)
        gain = rng.uniform(0.3, 1.0, B).astype(np.float32)[:, None, None, None]
        other = x[partner]
        if representation == "mel":
            mixed = np.log(np.exp(x) + gain * np.exp(other))
        else:
            mixed = (x + gain * other) / (1 + gain)
            if representation == "cqt":
                mixed /= np.maximum(mixed.max(axis=2, keepdims=True), 1e-6)
        x = np.where(chosen[:, None, None, None], mixed, x).astype(np.float32)
        y = np.where(chosen[:, None], np.maximum(y, y[partner]), y)
    if "short" in augment and representation in ONLY_FOR["short"]:
        keep = np.where(rng.random(B) < SHORT_SHARE, rng.integers(SHORT_FRAMES[0], SHORT_FRAMES[1] + 1, B), T)
        x = cut_after(x, keep, representation)
    return x, y
