"""Figures for the app: each representation with its model's per-second predictions, and the
fused timeline of which instrument plays when."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .labels import CODES  # noqa: E402
from .params import DEFAULT, FeatureParams  # noqa: E402

TITLES = {"mel": "log mel-spectrogram", "modgd": "modified group delay (modgdgram)", "cqt": "CQT chromagram"}


def prediction_figure(frames: dict[str, np.ndarray], prediction, params: FeatureParams = DEFAULT,
                      max_seconds: float = 60.0) -> Figure:
    """``frames``: representation -> (F, t) as from :func:`instrec.features.compute`."""
    reps = [r for r in ("mel", "modgd", "cqt") if r in frames]
    n_win = len(prediction.timeline)
    shown = min(n_win, int(np.ceil(max_seconds / params.window_duration_s)))
    seconds = shown * params.window_duration_s
    heights = []
    for _ in reps:
        heights += [3, 1.3]
    heights.append(1.6)
    fig, axes = plt.subplots(len(heights), 1, figsize=(10, 1.1 * sum(heights) + 0.5),
                             gridspec_kw={"height_ratios": heights}, sharex=True)
    extent_strip = (0, seconds, -0.5, len(CODES) - 0.5)
    for k, rep in enumerate(reps):
        ax, strip = axes[2 * k], axes[2 * k + 1]
        S = frames[rep][:, : shown * params.window_frames]
        cmap = "coolwarm" if rep == "modgd" else "magma"
        lim = np.percentile(np.abs(S), 99) if rep == "modgd" else None
        ax.imshow(S, origin="lower", aspect="auto", cmap=cmap, extent=(0, seconds, 0, S.shape[0]),
                  vmin=-lim if lim else None, vmax=lim)
        ax.set_ylabel("bin")
        ax.set_title(TITLES[rep], fontsize=10, loc="left")
        probs = prediction.window_probabilities[rep][:shown].T
        strip.imshow(probs, origin="lower", aspect="auto", cmap="Greens", vmin=0, vmax=1, extent=extent_strip,
                     interpolation="nearest")
        strip.set_yticks(range(len(CODES)), CODES, fontsize=6)
        strip.set_title(f"{rep} model: probability per second", fontsize=8, loc="left")
    ax = axes[-1]
    fused = np.array([[w["scores"][c] for c in CODES] for w in prediction.timeline[:shown]]).T
    ax.imshow(fused >= 0.5, origin="lower", aspect="auto", cmap="Blues", vmin=0, vmax=1.4, extent=extent_strip,
              interpolation="nearest")
    ax.set_yticks(range(len(CODES)), CODES, fontsize=7)
    ax.set_title("timeline: instruments present (fused decision per second)", fontsize=9, loc="left")
    ax.set_xlabel("time (s)" + ("" if shown == n_win else f"; first {seconds:.0f} s of {prediction.duration_s:.0f} s"))
    fig.tight_layout()
    return fig
