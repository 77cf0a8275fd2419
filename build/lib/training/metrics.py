"""The seed's evaluation measures (its Tables 8-10), computed with scikit-learn."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import label_ranking_average_precision_score, precision_recall_fscore_support

from instrec.labels import CODES


def evaluate(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None = None) -> dict:
    """Multi-label metrics over N files and 11 instruments.

    Parameters
    ----------
    y_true, y_pred : np.ndarray [shape=(N, 11)]
        0/1 labels and decisions.
    scores : np.ndarray [shape=(N, 11)], optional
        Continuous scores, for the label ranking average precision (LRAP).

    Returns
    -------
    dict with ``accuracy`` (over all 11 x N binary decisions), micro and macro ``precision``,
    ``recall`` and ``f1``, ``lrap`` when scores are given, and ``per_instrument``
    (code -> accuracy, precision, recall, f1, support).
    """
    y_true = np.asarray(y_true).astype(int)
    y_pred = np.asarray(y_pred).astype(int)
    if y_true.shape != y_pred.shape or y_true.ndim != 2 or y_true.shape[1] != len(CODES):
        raise ValueError(f"expected two (N, {len(CODES)}) arrays, got {y_true.shape} and {y_pred.shape}")
    out: dict = {"n_files": int(len(y_true)), "accuracy": float((y_true == y_pred).mean())}
    for average in ("micro", "macro"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)
        out[f"precision_{average}"], out[f"recall_{average}"], out[f"f1_{average}"] = float(p), float(r), float(f)
    if scores is not None:
        out["lrap"] = float(label_ranking_average_precision_score(y_true, np.asarray(scores)))
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
    accuracy = (y_true == y_pred).mean(axis=0)
    out["per_instrument"] = {
        code: {
            "accuracy": float(accuracy[i]),
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(support[i]),
        }
        for i, code in enumerate(CODES)
    }
    return out
