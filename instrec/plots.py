"""Figures for the app: each representation as its model saw it, with that model's probabilities per
second (the musicnn head's probabilities alone), and the fused decisions per second beside the whole-file answer.

Matplotlib's object API only (:class:`matplotlib.figure.Figure`, no pyplot): a figure belongs to the
request that made it, nothing global is touched, and it is freed with its last reference, so the
server can draw for several requests at once.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .features import bin_frequencies
from .labels import CODES, NAMES
from .params import DEFAULT, FeatureParams

TITLES = {"mel": "log mel-spectrogram", "modgd": "modified group delay (modgdgram)", "cqt": "CQT chromagram"}
NOTES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FONT = 9  # smallest text in the figure (pt)


def _hz_ticks(ax, freqs: np.ndarray, targets: tuple[int, ...]) -> None:
    """Label a bin axis with the frequencies (Hz or kHz) of the bins nearest ``targets``."""
    targets = [f for f in targets if freqs[0] <= f <= freqs[-1]]
    bins = [int(np.argmin(np.abs(freqs - f))) for f in targets]
    ax.set_yticks(bins, [f"{f / 1000:g}k" if f >= 1000 else str(f) for f in targets], fontsize=FONT)
    ax.set_ylabel("Hz", fontsize=FONT)


def prediction_figure(prediction, params: FeatureParams = DEFAULT, max_seconds: float = 60.0) -> Figure:
    """The page's figure for a :class:`~instrec.recognizer.Prediction` made with ``keep_windows``
    (its ``features`` are drawn; at most ``max_seconds`` of them)."""
    frames = prediction.features
    reps = [r for r in ("mel", "modgd", "cqt") if r in frames]
    n_win = len(prediction.timeline)
    shown = min(n_win, int(np.ceil(max_seconds / params.window_duration_s)), *(f.shape[1] // params.window_frames
                                                                               for f in frames.values()))
    seconds = shown * params.window_duration_s
    # models drawn by their probabilities alone: the head on musicnn's embedding (its picture is musicnn's own)
    strips_only = [m for m in prediction.window_probabilities if m not in ("mel", "modgd", "cqt")]
    heights = []
    for _ in reps:
        heights += [2.6, 2.8]  # a strip's 11 names at 9 pt need ~1.5 inches
    heights += [2.8] * len(strips_only)
    heights.append(2.8)
    # a fixed grid (plots, then a narrow column for the colour bars) rather than a layout solver: the
    # figure is drawn for every page request, and constrained layout doubled its cost
    fig = Figure(figsize=(11, 0.62 * sum(heights) + 1.0))
    fig.suptitle(f"{prediction.file or 'audio'}: what each model saw, and what it heard, second by second",
                 fontsize=FONT + 2, x=0.01, y=0.995, ha="left", va="top")
    grid = fig.add_gridspec(len(heights), 2, height_ratios=heights, width_ratios=[60, 1], left=0.13, right=0.9,
                            top=1 - 0.55 / fig.get_figheight(), bottom=0.5 / fig.get_figheight(), hspace=0.55,
                            wspace=0.02)
    axes = [fig.add_subplot(grid[0, 0])]
    axes += [fig.add_subplot(grid[i, 0], sharex=axes[0]) for i in range(1, len(heights))]
    for ax in axes[:-1]:
        ax.tick_params(axis="x", labelbottom=False)
    bar_axes = {ax: fig.add_subplot(grid[i, 1]) for i, ax in enumerate(axes[:-1])}
    extent_strip = (0, seconds, -0.5, len(CODES) - 0.5)
    names = [NAMES[c] for c in CODES]
    for k, rep in enumerate(reps):
        ax, strip = axes[2 * k], axes[2 * k + 1]
        S = frames[rep][:, : shown * params.window_frames]
        if rep == "modgd":
            lim = float(np.percentile(np.abs(S), 99)) or 1.0
            image = ax.imshow(S, origin="lower", aspect="auto", cmap="coolwarm", vmin=-lim, vmax=lim,
                              extent=(0, seconds, -0.5, S.shape[0] - 0.5))
            _hz_ticks(ax, bin_frequencies("modgd", params=params), (250, 500, 750, 1000, 1250))
            unit = "sign * log(1 + |tau|)"
        elif rep == "mel":
            image = ax.imshow(S, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, -0.5, S.shape[0] - 0.5))
            _hz_ticks(ax, bin_frequencies("mel", params=params), (200, 500, 1000, 2000, 4000, 8000))
            unit = "ln magnitude"
        else:
            image = ax.imshow(S, origin="lower", aspect="auto", cmap="magma", vmin=0, vmax=1,
                              extent=(0, seconds, -0.5, S.shape[0] - 0.5))
            per = S.shape[0] // 12
            ax.set_yticks(np.arange(0, S.shape[0], per), NOTES[: S.shape[0] // per], fontsize=FONT)
            ax.set_ylabel("note", fontsize=FONT)
            unit = "share of frame max"
        bar = fig.colorbar(image, cax=bar_axes[ax])
        bar.set_label(unit, fontsize=FONT)
        bar.ax.tick_params(labelsize=FONT)
        ax.set_title(TITLES[rep], fontsize=FONT + 1, loc="left")
        probs = prediction.window_probabilities[rep][:shown].T
        image = strip.imshow(probs, origin="lower", aspect="auto", cmap="Greens", vmin=0, vmax=1, extent=extent_strip,
                             interpolation="nearest")
        strip.set_yticks(range(len(CODES)), names, fontsize=FONT)
        strip.set_title(f"{rep} model: probability of each instrument, per second", fontsize=FONT, loc="left")
        bar = fig.colorbar(image, cax=bar_axes[strip])
        bar.ax.tick_params(labelsize=FONT)
    for k, model in enumerate(strips_only):
        strip = axes[2 * len(reps) + k]
        image = strip.imshow(prediction.window_probabilities[model][:shown].T, origin="lower", aspect="auto",
                             cmap="Greens", vmin=0, vmax=1, extent=extent_strip, interpolation="nearest")
        strip.set_yticks(range(len(CODES)), names, fontsize=FONT)
        strip.set_title(f"{model} model (a pretrained tagger's embedding of the 3 s around each second): "
                        "probability of each instrument, per second", fontsize=FONT, loc="left")
        bar = fig.colorbar(image, cax=bar_axes[strip])
        bar.ax.tick_params(labelsize=FONT)
    ax = axes[-1]
    fused = np.array([[w["scores"][c] for c in CODES] for w in prediction.timeline[:shown]]).T
    ax.imshow(fused >= 0.5, origin="lower", aspect="auto", cmap="Blues", vmin=0, vmax=1.4, extent=extent_strip,
              interpolation="nearest")
    ax.set_yticks(range(len(CODES)), names, fontsize=FONT)
    for label, code in zip(ax.get_yticklabels(), CODES):
        if code in prediction.instruments:
            label.set_fontweight("bold")
    step = params.window_duration_s
    for i, window in enumerate(prediction.timeline[:shown]):
        if window.get("quiet"):
            ax.axvspan(i * step, (i + 1) * step, color="0.5", alpha=0.35, lw=0, zorder=3)
    ax.set_title("fused decision per second (blue; grey: a quiet second, left out); names in bold: the whole-file "
                 "answer, decided on all seconds together", fontsize=FONT, loc="left")
    ax.set_xlabel("time (s)" + ("" if shown == n_win else f"; first {seconds:.0f} s of {prediction.duration_s:.0f} s"),
                  fontsize=FONT)
    ax.tick_params(axis="x", labelsize=FONT)
    return fig
