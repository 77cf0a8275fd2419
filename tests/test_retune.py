"""Thresholds of the tiny exported models tuned again on other labelled audio, the models unchanged."""

import json

import numpy as np
import pytest

from instrec.fusion import Fusion
from instrec.labels import CODES
from instrec.recognizer import Recognizer, sha256
from tests.conftest import REAL_AUDIO
from training import retune
from training.datasets import read_any


def test_retune_tiny_models(tiny_models, tiny_corpus, tmp_path):
    out = tmp_path / "retuned"
    tune_on = [tiny_corpus / "validation", tiny_corpus / "test"]
    assert retune.main(["--models", str(tiny_models), "--validation", str(tune_on[0]), "--validation", str(tune_on[1]),
                        "--out", str(out), "--test", str(tiny_corpus / "test"), "--real-audio", str(REAL_AUDIO)]) == 0
    before = json.loads((tiny_models / "manifest.json").read_text())
    after = json.loads((out / "manifest.json").read_text())
    report = json.loads((out / "report.json").read_text())
    n = sum(len(read_any(f)) for f in tune_on)
    assert report["on_validation"]["n_files"] == after["fusion_tuning"]["n_validation_files"] == n
    assert after["fusion_tuning"]["previous_fusion"] == before["fusion"]
    # the models are the same files; only the thresholds are new, under the same rule and aggregation
    for rep, info in after["models"].items():
        assert sha256(out / info["file"]) == before["models"][rep]["sha256"] == info["sha256"]
    old, new = Fusion.from_dict(before["fusion"]), Fusion.from_dict(after["fusion"])
    assert (new.models, new.rule, new.aggregation, new.quiet_db) == (old.models, old.rule, old.aggregation, 30.0)
    # an exhaustive search: on the files it was tuned on, no instrument's F1 is below the old thresholds'
    tuned = report["on_validation"]
    for code in CODES:
        assert tuned["new"]["f1_per_instrument"][code] >= tuned["old"]["f1_per_instrument"][code], code
    assert report["on_test"]["n_files"] == len(read_any(tiny_corpus / "test"))
    assert report["on_real"]["n_files"] == 31 and 0 <= report["on_real"]["top1_new"] <= 31
    assert "## Thresholds tuned again" in (out / "MODEL_CARD.md").read_text()
    # the recognizer serves exactly the tuned decisions
    rec = Recognizer(out)
    assert rec.fusion == new
    for excerpt in read_any(tune_on[0]):
        p = rec.predict(excerpt.path)
        scores = new.file_scores(p.window_probabilities, p.window_levels)
        decided = [CODES[i] for i in np.flatnonzero(new.decide(scores))]
        assert p.instruments == decided, excerpt.path


def test_retune_on_the_training_validation_set_gives_the_trained_thresholds(tiny_models, tiny_corpus, tmp_path):
    """Through the recognizer (decoding, features, onnxruntime) on the files training tuned on, the search
    finds the thresholds that training found from cached features and PyTorch: serving scores as tuning did."""
    out = tmp_path / "again"
    retune.retune(tiny_models, [tiny_corpus / "validation"], out)
    before = json.loads((tiny_models / "manifest.json").read_text())["fusion"]
    assert json.loads((out / "manifest.json").read_text())["fusion"] == before


def test_retune_under_the_vote_rule_serves_the_tuned_vote(tiny_models, tiny_corpus, tmp_path):
    """``--rule vote`` tunes two-of-three thresholds, here none under 0.2; the recognizer then serves that
    rule's decisions."""
    out = tmp_path / "vote"
    assert retune.main(["--models", str(tiny_models), "--validation", str(tiny_corpus / "validation"),
                        "--out", str(out), "--rule", "vote", "--min-threshold", "0.2"]) == 0
    after = json.loads((out / "manifest.json").read_text())
    old, new = Fusion.from_dict(after["fusion_tuning"]["previous_fusion"]), Fusion.from_dict(after["fusion"])
    assert (new.rule, new.models, new.aggregation) == ("vote", old.models, old.aggregation)
    assert f"rule {old.rule} replaced by vote, no threshold under 0.2" in (out / "MODEL_CARD.md").read_text()
    assert min(min(t) for t in new.thresholds.values()) >= 0.2 and after["fusion_tuning"]["min_threshold"] == 0.2
    rec = Recognizer(out)
    for excerpt in read_any(tiny_corpus / "validation"):
        p = rec.predict(excerpt.path)
        scores = new.file_scores(p.window_probabilities, p.window_levels)
        over = sum((scores[m] >= np.array(new.thresholds[m])).astype(int) for m in new.models)
        assert p.instruments == [CODES[i] for i in np.flatnonzero(over >= 2)], excerpt.path


def test_retune_can_count_every_window_again(tiny_models, tiny_corpus, tmp_path):
    """``--quiet-db none``: the models served as before quiet windows were left out; a file with 2 s of
    silence on both sides then has its silent windows counted (and named in the timeline like any other)."""
    import soundfile as sf

    from instrec.fusion import aggregate

    out = tmp_path / "every"
    assert retune.main(["--models", str(tiny_models), "--validation", str(tiny_corpus / "validation"),
                        "--out", str(out), "--quiet-db", "none"]) == 0
    after = json.loads((out / "manifest.json").read_text())
    assert "quiet_db" not in after["fusion"] and after["fusion_tuning"]["quiet_db"] is None
    assert "every window counted" in (out / "MODEL_CARD.md").read_text()
    excerpt = read_any(tiny_corpus / "validation").excerpts[0]
    y, sr = sf.read(excerpt.path, dtype="float32")
    silence = np.zeros((2 * sr, *y.shape[1:]), np.float32)
    rec = Recognizer(out)
    p = rec.predict(np.concatenate([silence, y, silence]), sr)
    assert not any(w["quiet"] for w in p.timeline)
    scores = {m: aggregate(p.window_probabilities[m], rec.fusion.aggregation) for m in rec.fusion.models}
    assert p.instruments == [CODES[i] for i in np.flatnonzero(rec.fusion.decide(scores))]
    assert p.models == {m: {c: round(float(x), 4) for c, x in zip(CODES, s)} for m, s in scores.items()}
    with pytest.raises(SystemExit):
        retune.main(["--models", str(tiny_models), "--validation", str(tiny_corpus / "validation"),
                     "--out", str(tmp_path / "o"), "--quiet-db", "-3"])


def test_retune_refuses_what_it_cannot_tune_on(tiny_models, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert retune.main(["--models", str(tiny_models), "--validation", str(empty), "--out", str(tmp_path / "o")]) == 1
    assert "no .wav files found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        retune.main(["--models", str(tiny_models), "--validation", str(empty), "--out", str(tiny_models)])
    assert "another folder than --models" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        retune.main(["--models", str(tiny_models), "--validation", str(empty), "--out", str(tmp_path / "o"),
                     "--rule", "majority"])
    assert "invalid choice: 'majority'" in capsys.readouterr().err
    assert retune.main(["--models", str(tiny_models), "--validation", str(empty), "--out", str(tmp_path / "o"),
                        "--rule", "mean", "--min-threshold", "0.1"]) == 1
    assert "not 'mean'" in capsys.readouterr().err
    assert retune.main(["--models", str(tiny_models), "--validation", str(empty), "--out", str(tmp_path / "o"),
                        "--min-threshold", "1.5"]) == 1
    assert "must be in [0, 1]" in capsys.readouterr().err
