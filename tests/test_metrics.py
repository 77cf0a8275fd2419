"""The seed's measures on cases small enough to check by hand."""

import numpy as np
import pytest

from training.metrics import evaluate


def onehot(rows):
    y = np.zeros((len(rows), 11), int)
    for i, cols in enumerate(rows):
        y[i, cols] = 1
    return y


def test_hand_checked_case():
    # file 0: truth {cel, cla}, predicted {cel}; file 1: truth {pia}, predicted {pia, voi}
    y_true = onehot([[0, 1], [6]])
    y_pred = onehot([[0], [6, 10]])
    m = evaluate(y_true, y_pred)
    # 22 decisions, 2 wrong (cla missed, voi false alarm)
    assert m["accuracy"] == pytest.approx(20 / 22)
    # micro: tp = 2, fp = 1, fn = 1
    assert m["precision_micro"] == pytest.approx(2 / 3)
    assert m["recall_micro"] == pytest.approx(2 / 3)
    assert m["f1_micro"] == pytest.approx(2 / 3)
    # macro over 11 classes: f1 = 1 for cel and pia, 0 elsewhere
    assert m["f1_macro"] == pytest.approx(2 / 11)
    assert m["per_instrument"]["cla"] == {"accuracy": 0.5, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["per_instrument"]["pia"]["f1"] == 1.0


def test_perfect_and_lrap():
    y = onehot([[0], [3, 4], [10]])
    scores = 2 * y + 0.1 * np.arange(11)  # true labels (>= 2) always rank above the others (<= 1)
    m = evaluate(y, y, scores)
    assert m["accuracy"] == 1.0 and m["f1_micro"] == 1.0 and m["lrap"] == pytest.approx(1.0)
    worst = evaluate(y, 1 - y, -scores)
    assert worst["accuracy"] == 0.0 and worst["f1_micro"] == 0.0 and worst["lrap"] < 0.5


def test_shape_mismatch():
    with pytest.raises(ValueError, match="expected two"):
        evaluate(np.zeros((2, 11)), np.zeros((2, 10)))
