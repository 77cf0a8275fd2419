"""From window probabilities to instruments present: aggregation, thresholds, fusion rules.

Shared by threshold tuning, evaluation and the recognizer, so all three decide the same way.

Aggregation of a file's windows (per model):
    S1  mean of the window probabilities;
    S2  Han et al.: sum over windows, then divided by the largest class sum (the top class -> 1).
Quiet windows (``quiet_db``) are left out first: a window more than ``quiet_db`` dB under the file's
loudest window holds silence, a fading tail or room noise, and what the models answer for it says
nothing about the instruments (a recording with two seconds of silence before and after its music
would otherwise be answered by its silence too). The loudest window always counts.

Fusion of the three models (per instrument):
    "and"   the seed's rule: present when every model's score exceeds that model's own threshold;
    "vote"  majority: present when more than half the models (two of three) exceed their own
            thresholds, so no one model can veto an instrument the others hear;
    "mean"  Rajan's score-level fusion: the mean of the models' scores against one threshold
            (a weighted mean when the fusion gives the models ``weights``).

Every decision is also given as a fused score in [0, 1] whose decision boundary is 0.5: a score s
against threshold t is mapped piecewise-linearly so that 0 -> 0, t -> 0.5, 1 -> 1; the "and"
rule takes the smallest mapped score over the models, "vote" the largest that a majority of them
reach (of three, the middle one). An instrument is present when its fused score is at least 0.5,
so scores and decisions never disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

AGGREGATIONS = ("S1", "S2")
RULES = ("and", "vote", "mean")
#: Rules with a threshold per model (the others: one threshold on the mean score).
PER_MODEL_RULES = ("and", "vote")


def aggregate(window_probs: np.ndarray, method: str = "S1") -> np.ndarray:
    """(n_windows, 11) -> (11,) file scores in [0, 1]."""
    p = np.asarray(window_probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"expected (n_windows >= 1, classes) probabilities, got shape {p.shape}")
    if method == "S1":
        return p.mean(axis=0)
    if method == "S2":
        s = p.sum(axis=0)
        return s / max(s.max(), 1e-12)
    raise ValueError(f"unknown aggregation {method!r}; expected one of {AGGREGATIONS}")


def audible(levels: np.ndarray, quiet_db: float | None) -> np.ndarray:
    """(n_windows,) window levels in dB -> which windows count: those within ``quiet_db`` of the loudest
    (all of them when ``quiet_db`` is None)."""
    levels = np.asarray(levels, np.float64)
    if quiet_db is None:
        return np.ones(levels.shape, bool)
    return levels >= levels.max() - quiet_db


def file_scores(window_probs: dict[str, np.ndarray], method: str, levels: np.ndarray | None = None,
                quiet_db: float | None = None) -> dict[str, np.ndarray]:
    """{representation: (n_windows, 11)} -> {representation: (11,)}: :func:`aggregate` over the windows
    that :func:`audible` keeps (every window when ``quiet_db`` is None)."""
    keep = slice(None)
    if quiet_db is not None:
        if levels is None:
            raise ValueError("leaving quiet windows out needs the window levels")
        for rep, p in window_probs.items():
            if len(p) != len(levels):
                raise ValueError(f"{rep}: {len(p)} windows of probabilities but {len(levels)} window levels")
        keep = audible(levels, quiet_db)
    return {rep: aggregate(np.asarray(p)[keep], method) for rep, p in window_probs.items()}


def calibrate(score: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """Map scores so that each threshold lands on 0.5 (piecewise linear, monotone, [0,1] -> [0,1]).

    Exactly ``score >= threshold`` becomes ``mapped >= 0.5``, thresholds 0 and 1 included, so the
    decision is the one tuned on the grid of :mod:`training.thresholds`.
    """
    s = np.clip(np.asarray(score, np.float64), 0.0, 1.0)
    t = np.broadcast_to(np.asarray(threshold, np.float64), s.shape)
    below = 0.5 * np.divide(s, t, out=np.zeros_like(s), where=t > 0)
    above = 0.5 + 0.5 * np.divide(s - t, 1 - t, out=np.zeros_like(s), where=t < 1)
    return np.where(s < t, below, above)


def majority(n_models: int) -> int:
    """How many of ``n_models`` make a majority under the "vote" rule (of 2: both; of 3: two)."""
    return n_models // 2 + 1


def report(score: float) -> float:
    """A fused score rounded to 4 decimals for display without crossing the 0.5 boundary:
    an absent instrument's 0.49996 is shown as 0.4999, never as 0.5."""
    score = float(score)
    return math.floor(score * 1e4) / 1e4 if score < 0.5 else round(score, 4)


@dataclass
class Fusion:
    """A complete decision rule, as stored in ``thresholds.json`` and the ONNX manifest."""

    models: tuple[str, ...]
    rule: str = "and"
    aggregation: str = "S1"
    #: "and", "vote": representation -> 11 thresholds; "mean": {"mean": 11 thresholds}
    thresholds: dict[str, list[float]] = field(default_factory=dict)
    #: windows this many dB under the file's loudest are left out of the file scores (None: none are)
    quiet_db: float | None = None
    #: "mean" only: each model's weight in the mean, summing to 1 (None: every model the same)
    weights: dict[str, float] | None = None

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown fusion rule {self.rule!r}; expected one of {RULES}")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {self.aggregation!r}")
        needed = self.models if self.rule in PER_MODEL_RULES else ("mean",)
        missing = [k for k in needed if k not in self.thresholds]
        if missing:
            raise ValueError(f"fusion rule {self.rule!r} needs thresholds for {missing}")
        if self.quiet_db is not None and not (math.isfinite(self.quiet_db) and self.quiet_db > 0):
            raise ValueError(f"quiet_db must be a positive number of dB or None, not {self.quiet_db!r}")
        if self.weights is not None:
            self.weights = check_weights(self.weights, self.models, self.rule)

    def mean(self, scores: dict[str, np.ndarray]) -> np.ndarray:
        """The models' mean score, weighted by :attr:`weights` when the fusion has them (the "mean" rule's score)."""
        stacked = [scores[m] for m in self.models]
        if self.weights is None:
            return np.mean(stacked, axis=0)
        return np.average(stacked, axis=0, weights=[self.weights[m] for m in self.models])

    def file_scores(self, window_probs: dict[str, np.ndarray], levels: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """A file's (n_windows, 11) window probabilities per model -> its (11,) scores per model, as this
        rule aggregates them (quiet windows left out when :attr:`quiet_db` is set)."""
        return file_scores({m: window_probs[m] for m in self.models}, self.aggregation, levels, self.quiet_db)

    def fused_score(self, scores: dict[str, np.ndarray]) -> np.ndarray:
        """{representation: (..., 11) aggregated scores} -> (..., 11) fused scores in [0, 1]."""
        if self.rule == "mean":
            return calibrate(self.mean(scores), np.asarray(self.thresholds["mean"]))
        mapped = np.stack([calibrate(scores[m], np.asarray(self.thresholds[m])) for m in self.models])
        if self.rule == "and":
            return mapped.min(axis=0)
        # "vote": the k-th largest mapped score, k the smallest majority; >= 0.5 exactly when k models agree
        return -np.sort(-mapped, axis=0)[majority(len(self.models)) - 1]

    def decide(self, scores: dict[str, np.ndarray]) -> np.ndarray:
        return self.fused_score(scores) >= 0.5

    def to_dict(self) -> dict:
        d = {"models": list(self.models), "rule": self.rule, "aggregation": self.aggregation,
             "thresholds": {k: [round(float(x), 4) for x in v] for k, v in self.thresholds.items()}}
        if self.quiet_db is not None:
            d["quiet_db"] = float(self.quiet_db)
        if self.weights is not None:
            d["weights"] = {m: float(w) for m, w in self.weights.items()}  # unrounded: served as tuned
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Fusion:
        return cls(tuple(d["models"]), d["rule"], d["aggregation"], {k: list(v) for k, v in d["thresholds"].items()},
                   d.get("quiet_db"), d.get("weights"))


def check_weights(weights: dict[str, float], models: tuple[str, ...], rule: str) -> dict[str, float]:
    """The "mean" rule's weights, one per model, none negative, scaled to sum to 1 when their sum is off
    by more than float rounding (written by hand, up to 1e-3); anything else is a clear error. Weights
    that already sum to 1 are kept bit for bit, so a fusion read back from its manifest weighs exactly
    as the tuned one did."""
    if rule != "mean":
        raise ValueError(f"weights are for the 'mean' rule, not {rule!r}")
    if set(weights) != set(models):
        raise ValueError(f"weights must name the fused models {list(models)}, not {sorted(weights)}")
    values = np.array([weights[m] for m in models], dtype=float)
    if not np.all(np.isfinite(values)) or np.any(values < 0) or abs(values.sum() - 1) > 1e-3:
        raise ValueError(f"weights must be non-negative and sum to 1, not {weights}")
    if abs(values.sum() - 1) > 1e-12:
        values = values / values.sum()
    return {m: float(w) for m, w in zip(models, values)}
