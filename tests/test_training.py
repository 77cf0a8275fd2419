"""Threshold search, fusion and aggregation on constructed scores; the tiny real training chain."""

import json
import shutil

import numpy as np
import pytest
import torch

from instrec.fusion import AGGREGATIONS, RULES, Fusion, aggregate, audible, calibrate, file_scores, report
from training import augment, thresholds
from training.cache import FeatureSet
from training.datasets import read_testing
from training.evaluate import run_evaluation
from training.train import train


def test_aggregations_by_hand():
    p = np.array([[0.2, 0.6, 0.2], [0.4, 0.4, 0.2]])
    np.testing.assert_allclose(aggregate(p, "S1"), [0.3, 0.5, 0.2])
    np.testing.assert_allclose(aggregate(p, "S2"), [0.6, 1.0, 0.4])  # sums 0.6, 1.0, 0.4 over max 1.0
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate(p, "S3")
    with pytest.raises(ValueError):
        aggregate(np.zeros((0, 3)), "S1")


def test_quiet_windows_are_left_out_of_the_file_scores():
    """Windows more than quiet_db under the loudest are left out before aggregating (strictly more: one
    exactly quiet_db under counts); the loudest always counts; None counts every window."""
    levels = np.array([-20.0, -50.0, -15.0, -45.0, -200.0])
    np.testing.assert_array_equal(audible(levels, 30.0), [True, False, True, True, False])
    np.testing.assert_array_equal(audible(levels, None), [True] * 5)
    assert audible(np.array([-200.0]), 30.0).tolist() == [True]  # one window of silence: still counted
    p = np.array([[0.8, 0.2], [0.0, 1.0], [0.6, 0.4], [0.7, 0.3], [0.0, 1.0]])
    kept = file_scores({"mel": p}, "S2", levels, 30.0)["mel"]
    np.testing.assert_allclose(kept, [1.0, 0.9 / 2.1])  # windows 0, 2, 3: sums 2.1 and 0.9
    np.testing.assert_allclose(file_scores({"mel": p}, "S1")["mel"], aggregate(p, "S1"))
    with pytest.raises(ValueError, match="window levels"):
        file_scores({"mel": p}, "S1", None, 30.0)
    with pytest.raises(ValueError, match="4 window levels"):
        file_scores({"mel": p}, "S1", levels[:4], 30.0)
    fusion = Fusion(("mel",), "and", "S2", {"mel": [0.5, 0.5]}, quiet_db=30.0)
    np.testing.assert_allclose(fusion.file_scores({"mel": p, "cqt": p[:1]}, levels)["mel"], kept)
    again = Fusion.from_dict(json.loads(json.dumps(fusion.to_dict())))
    assert again == fusion and "quiet_db" not in Fusion(("mel",), "and", "S2", {"mel": [0.5] * 2}).to_dict()
    for bad in (0.0, -3.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="quiet_db"):
            Fusion(("mel",), "and", "S2", {"mel": [0.5, 0.5]}, quiet_db=bad)


def test_calibration_puts_threshold_at_half():
    t = np.array([0.2, 0.5, 0.9])
    np.testing.assert_allclose(calibrate(t, t), 0.5)
    np.testing.assert_allclose(calibrate(np.zeros(3), t), 0)
    np.testing.assert_allclose(calibrate(np.ones(3), t), 1)


def test_reported_scores_keep_their_side_of_one_half():
    # shown to 4 decimals: under 0.5 rounded down (an absent 0.49996 never reads 0.5), else to nearest;
    # plain floats, as the JSON contract says, whatever numpy type came in
    cases = [(0.49996, 0.4999), (np.float32(0.25), 0.25), (0.123456, 0.1234), (0.5, 0.5), (0.50004, 0.5),
             (np.float64(0.87655), 0.8766), (0.0, 0.0), (1.0, 1.0)]
    for score, shown in cases:
        assert report(score) == pytest.approx(shown, abs=1e-12) and type(report(score)) is float


def test_single_threshold_known_answer():
    # positives score 0.62..0.9, negatives 0.1..0.4: the 22 grid points 0.41 .. 0.62 are all perfect;
    # the one nearest their middle (0.515; of 0.51 and 0.52 the first) is chosen
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.62, 0.7, 0.8, 0.9])
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    t, f1 = thresholds.best_threshold(scores, y)
    assert f1 == 1.0 and t == pytest.approx(0.51)


def test_joint_search_keeps_a_model_that_is_not_needed_in_the_middle():
    # model a alone separates the files (any t_a in 0.41..0.61); model b scores every file 0.7, so
    # any t_b in 0.00..0.70 gives the same F1: b's threshold goes to the middle of that range
    # (0.35), not to 0.00 where b would never take part in the "and" rule
    a = np.array([0.2, 0.4, 0.61, 0.9])
    b = np.full(4, 0.7)
    y = np.array([0, 0, 1, 1])
    (ta, tb), f1 = thresholds.search_joint([a, b], y)
    assert f1 == 1.0
    assert ta == pytest.approx(0.51) and tb == pytest.approx(0.35)


def test_joint_and_search_finds_the_only_perfect_combination():
    # model a separates only with t_a in (0.5, 0.6], model b only with t_b in (0.3, 0.35],
    # model c is needed to reject the file both a and b accept wrongly (c < 0.7 there)
    a = np.array([0.9, 0.8, 0.55, 0.6, 0.2, 0.95])
    b = np.array([0.5, 0.9, 0.32, 0.8, 0.9, 0.96])
    c = np.array([0.8, 0.9, 0.75, 0.1, 0.9, 0.60])
    y = np.array([1, 1, 0, 0, 0, 0])
    (ta, tb, tc), f1 = thresholds.search_joint([a, b, c], y)
    assert f1 == 1.0
    decided = (a >= ta) & (b >= tb) & (c >= tc)
    np.testing.assert_array_equal(decided, y.astype(bool))
    # brute force over the grid agrees on the best F1 (here: 1.0) and on the first best point
    grid = thresholds.GRID
    best = max(((i, j, k) for i in range(101) for j in range(0, 101, 5) for k in range(0, 101, 5)),
               key=lambda ijk: (((a >= grid[ijk[0]]) & (b >= grid[ijk[1]]) & (c >= grid[ijk[2]])) == y).all())
    assert (((a >= grid[best[0]]) & (b >= grid[best[1]]) & (c >= grid[best[2]])) == y).all()


def test_vote_search_hears_what_one_model_would_veto():
    # each of three models misses one of the three present files (score 0.05) and fires wrongly on one
    # absent file (0.9); every file is still decided right by two of three, so the vote separates
    # them perfectly. Under "and" a miss can only be kept by a threshold of 0.05 or less, which lets
    # the other absent files through: "and" stays under 1.
    miss, hit, fire, quiet = 0.05, 0.8, 0.9, 0.2
    a = np.array([miss, hit, hit, fire, quiet, quiet])
    b = np.array([hit, miss, hit, quiet, fire, quiet])
    c = np.array([hit, hit, miss, quiet, quiet, fire])
    y = np.array([1, 1, 1, 0, 0, 0])
    thr, f1 = thresholds.search_joint([a, b, c], y, "vote")
    assert f1 == 1.0
    # the thresholds the search returns decide, through the served rule, exactly the truth
    fusion = Fusion(("mel", "modgd", "cqt"), "vote", "S1",
                    {m: [t] * 11 for m, t in zip(("mel", "modgd", "cqt"), thr)})
    scores = {m: np.repeat(s[:, None], 11, axis=1) for m, s in zip(("mel", "modgd", "cqt"), (a, b, c))}
    np.testing.assert_array_equal(fusion.decide(scores)[:, 0], y.astype(bool))
    assert thresholds.search_joint([a, b, c], y, "and")[1] < 1.0
    with pytest.raises(ValueError, match="joint search"):
        thresholds.search_joint([a, b, c], y, "mean")


def test_vote_search_counts_as_a_direct_count_does():
    # the inclusion-exclusion counts of the vote, checked against counting the majority file by file
    # at the best thresholds and at every point of a coarse subgrid (no better point hides there)
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    scores = [np.clip(y * 0.25 + rng.random(200) * 0.75, 0, 1) for _ in range(3)]

    def f1_at(t):
        votes = sum((s >= ti).astype(int) for s, ti in zip(scores, t)) >= 2
        return 2 * (votes & (y == 1)).sum() / (votes.sum() + y.sum())

    thr, f1 = thresholds.search_joint(scores, y, "vote")
    assert f1 == pytest.approx(f1_at(thr))
    coarse = thresholds.GRID[::10]
    assert max(f1_at((i, j, k)) for i in coarse for j in coarse for k in coarse) <= f1 + 1e-12
    # of two models, a majority is both: the vote is the "and" rule
    assert thresholds.search_joint(scores[:2], y, "vote") == thresholds.search_joint(scores[:2], y, "and")


def test_a_floor_keeps_every_threshold_at_or_above_it():
    # the floor leaves the search exhaustive over the grid points at or above it: the F1 returned is a
    # direct count's at those thresholds, and no coarse point at or above the floor beats it
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 200)
    scores = [np.clip(y * 0.2 + rng.random(200) * 0.5, 0, 1) for _ in range(3)]  # all under 0.7

    def f1_at(t, needed):
        agree = sum((s >= ti).astype(int) for s, ti in zip(scores, t)) >= needed
        return 2 * (agree & (y == 1)).sum() / (agree.sum() + y.sum())

    for rule, floor in (("and", 0.3), ("vote", 0.3), ("vote", 0.6)):
        needed = 3 if rule == "and" else 2
        thr, f1 = thresholds.search_joint(scores, y, rule, min_threshold=floor)
        assert min(thr) >= floor, (rule, floor, thr)
        assert f1 == pytest.approx(f1_at(thr, needed))
        coarse = thresholds.GRID[thresholds.GRID >= floor][::5]
        for t in ((i, j, k) for i in coarse for j in coarse for k in coarse):
            assert f1_at(t, needed) <= f1 + 1e-6  # f1 is float32
    # without the floor the best "and" point of these scores has a threshold under 0.3
    assert min(thresholds.search_joint(scores, y, "and")[0]) < 0.3
    assert thresholds.best_threshold(scores[0], y, min_threshold=0.45)[0] >= 0.45
    with pytest.raises(ValueError, match="min_threshold"):
        thresholds.search_joint(scores, y, "vote", min_threshold=1.5)


def test_vote_rule_is_decided_by_its_fused_score():
    # random scores and thresholds: the fused score is >= 0.5 exactly when two or more models are over
    # their own thresholds; of two models the vote equals "and"
    rng = np.random.default_rng(4)
    models = ("mel", "modgd", "cqt")
    scores = {m: rng.random((50, 11)) for m in models}
    limits = {m: list(np.round(rng.random(11), 2)) for m in models}
    over = sum((scores[m] >= np.array(limits[m])).astype(int) for m in models)
    vote = Fusion(models, "vote", "S1", limits)
    np.testing.assert_array_equal(vote.decide(scores), over >= 2)
    assert ((vote.fused_score(scores) >= 0) & (vote.fused_score(scores) <= 1)).all()
    two = {m: limits[m] for m in models[:2]}
    np.testing.assert_array_equal(Fusion(models[:2], "vote", "S1", two).fused_score(scores),
                                  Fusion(models[:2], "and", "S1", two).fused_score(scores))
    assert thresholds.rules_for(3) == ("and", "vote", "mean") and thresholds.rules_for(2) == ("and", "mean")


def test_and_search_is_fast_enough_for_real_sizes():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 600)
    scores = [np.clip(y * 0.3 + rng.random(600) * 0.7, 0, 1) for _ in range(3)]
    (t1, t2, t3), f1 = thresholds.search_joint(scores, y)  # 101^3 x 600 in matrix products
    decided = (scores[0] >= t1) & (scores[1] >= t2) & (scores[2] >= t3)
    tp = (decided & (y == 1)).sum()
    assert f1 == pytest.approx(2 * tp / (decided.sum() + y.sum()))


def test_fusion_rules_on_constructed_scores():
    y = np.eye(11)[[0, 1, 2, 3]]
    good = y * 0.8 + 0.1
    noisy = good.copy()
    noisy[0, 5] = 0.95  # one model alone fires wrongly on file 0
    scores = {"mel": noisy, "modgd": good, "cqt": good}
    fused = thresholds.tune_fusion(scores, y, ("mel", "modgd", "cqt"), "and", "S1")
    np.testing.assert_array_equal(fused.decide(scores), y.astype(bool))  # the others veto the error
    mean = thresholds.tune_fusion(scores, y, ("mel", "modgd", "cqt"), "mean", "S1")
    assert (mean.fused_score(scores) >= 0).all() and (mean.fused_score(scores) <= 1).all()
    again = Fusion.from_dict(json.loads(json.dumps(fused.to_dict())))
    np.testing.assert_array_equal(again.decide(scores), fused.decide(scores))
    with pytest.raises(ValueError, match="needs thresholds"):
        Fusion(("mel", "modgd"), "and", "S1", {"mel": [0.5] * 11})


def test_weighted_mean_rule_on_known_scores():
    models = ("mel", "musicnn")
    scores = {"mel": np.full((1, 11), 0.2), "musicnn": np.full((1, 11), 0.8)}
    fusion = Fusion(models, "mean", "S1", {"mean": [0.35] * 11}, weights={"mel": 0.75, "musicnn": 0.25})
    # 0.75 * 0.2 + 0.25 * 0.8 = 0.35, exactly the threshold: mapped to 0.5, present
    np.testing.assert_allclose(fusion.fused_score(scores), 0.5, atol=1e-12)
    assert fusion.decide(scores).all()
    equal = Fusion(models, "mean", "S1", {"mean": [0.35] * 11})  # without weights: the plain mean, 0.5
    np.testing.assert_allclose(equal.fused_score(scores), calibrate(np.full((1, 11), 0.5), np.full(11, 0.35)))
    again = Fusion.from_dict(json.loads(json.dumps(fusion.to_dict())))
    assert again.weights == fusion.weights and "weights" not in equal.to_dict()
    # weights that do not round to a short decimal come back bit for bit, so serving weighs as tuning did
    sixths = Fusion(("a", "b", "c", "d"), "mean", "S1", {"mean": [0.5] * 11}, weights={**dict.fromkeys("abc", 1 / 6), "d": 0.5})
    assert Fusion.from_dict(json.loads(json.dumps(sixths.to_dict()))) == sixths
    # a stored sum off by rounding (three thirds to 4 decimals) is scaled back to 1
    thirds = Fusion(("a", "b", "c"), "mean", "S1", {"mean": [0.5] * 11}, weights=dict.fromkeys("abc", 0.3333))
    assert sum(thirds.weights.values()) == pytest.approx(1.0, abs=1e-12)
    # tuning with weights puts each threshold where the weighted mean separates the files
    y = np.array([[1] * 11, [0] * 11])
    two = {"mel": np.array([[0.2] * 11, [0.6] * 11]), "musicnn": np.array([[0.9] * 11, [0.1] * 11])}
    tuned = thresholds.tune_fusion(two, y, models, "mean", "S1", weights={"mel": 0.25, "musicnn": 0.75})
    # weighted: 0.725 for the file with every instrument, 0.225 without; equal weights would give 0.55 and 0.35
    assert tuned.weights == {"mel": 0.25, "musicnn": 0.75}
    np.testing.assert_array_equal(tuned.decide(two), y.astype(bool))
    assert all(0.225 < t <= 0.725 for t in tuned.thresholds["mean"])


@pytest.mark.parametrize("weights, rule, message", [
    ({"mel": 0.5}, "mean", "must name the fused models"),
    ({"mel": 0.5, "musicnn": 0.5, "cqt": 0.0}, "mean", "must name the fused models"),
    ({"mel": 1.2, "musicnn": -0.2}, "mean", "non-negative"),
    ({"mel": 0.5, "musicnn": 0.4}, "mean", "sum to 1"),
    ({"mel": float("nan"), "musicnn": 0.5}, "mean", "sum to 1"),
    ({"mel": 0.5, "musicnn": 0.5}, "and", "for the 'mean' rule"),
])
def test_bad_weights_are_a_clear_error(weights, rule, message):
    thresholds_ = {"mean": [0.5] * 11} if rule == "mean" else {"mel": [0.5] * 11, "musicnn": [0.5] * 11}
    with pytest.raises(ValueError, match=message):
        Fusion(("mel", "musicnn"), rule, "S1", thresholds_, weights=weights)


def test_augmentations_keep_shapes_and_labels():
    class FS:
        windows = np.random.default_rng(0).standard_normal((10, 1, 128, 100)).astype(np.float32)
        file_index = np.repeat(np.arange(5), 2)

    targets = np.eye(11, dtype=np.float32)[[0, 0, 1, 1, 2, 2, 3, 3, 4, 4]]
    idx = np.arange(10)
    rng = np.random.default_rng(1)
    x, y = augment.batch(FS, idx, targets, ("crop", "stretch", "freqmask", "mix"), rng, "mel")
    assert x.shape == (10, 1, 128, 100) and np.isfinite(x).all()
    assert (y.sum(1) >= 1).all() and (y.sum(1) <= 2).all()
    assert not np.allclose(x, FS.windows)
    x0, y0 = augment.batch(FS, idx, targets, (), rng)
    np.testing.assert_array_equal(x0, FS.windows)


def test_tiny_end_to_end(tiny_run, tiny_corpus):
    for rep in ("mel", "modgd", "cqt"):
        ckpt = torch.load(tiny_run / rep / "best.pt", weights_only=False)
        assert ckpt["model_class"] == "InstrumentCNN" and ckpt["classes"][0] == "cel"
        assert ckpt["model_kwargs"]["representation"] == rep and "feature_params" in ckpt
        assert (tiny_run / rep / "loss.png").exists()
    tuned = json.loads((tiny_run / "thresholds.json").read_text())
    assert tuned["validation_data"].endswith("validation")
    assert set(tuned["best_per_config"]) == {"mel", "mel+modgd", "mel+modgd+cqt"}
    summary = run_evaluation(tiny_run, tiny_corpus / "test", progress=False)
    assert set(summary["configs"]) == {"mel", "mel+modgd", "mel+modgd+cqt"}
    assert summary["n_files"] == len(read_testing(tiny_corpus / "test"))
    written = json.loads((tiny_run / "eval" / "metrics.json").read_text())
    assert {k: v["test"]["f1_micro"] for k, v in written["configs"].items()} == {
        k: v["test"]["f1_micro"] for k, v in summary["configs"].items()}
    report = (tiny_run / "eval" / "report.md").read_text()
    assert "never on this test set" in report and "| pia (piano) |" in report
    for png in ("fig5_validation_loss", "fig6_f1_vs_threshold", "fig8_instruments_per_file", "fig9_accuracy", "fig10_f1"):
        assert (tiny_run / "eval" / f"{png}.png").stat().st_size > 1000


def test_tuning_records_every_rule_and_chooses_among_those_asked(tiny_run, tmp_path, capsys):
    written = json.loads((tiny_run / "thresholds.json").read_text())
    options = written["all"]["mel+modgd+cqt"]
    assert {(o["fusion"]["rule"], o["fusion"]["aggregation"]) for o in options} == {
        (r, a) for r in RULES for a in AGGREGATIONS}
    # by default the vote is tuned and recorded, but the fusion is the best of "and" and "mean"
    assert written["fusion"]["rule"] in thresholds.CHOSEN_RULES == ("and", "mean")
    assert written["best_per_config"]["mel+modgd+cqt"]["validation"]["f1_micro"] == max(
        o["validation"]["f1_micro"] for o in options if o["fusion"]["rule"] in thresholds.CHOSEN_RULES)
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    assert thresholds.main(["--run", str(run), "--choose-from", "vote"]) == 0
    again = json.loads((run / "thresholds.json").read_text())
    best_vote = max((o for o in options if o["fusion"]["rule"] == "vote"), key=lambda o: o["validation"]["f1_micro"])
    assert again["fusion"] == best_vote["fusion"]
    assert again["best_per_config"]["mel"]["fusion"]["rule"] == "and"  # one model: no vote to take
    with pytest.raises(SystemExit):
        thresholds.main(["--run", str(run), "--choose-from", "and,majority"])
    assert "expected rules of and,vote,mean" in capsys.readouterr().err


def test_other_feature_parameters_travel_from_training_to_serving(tiny_corpus, tmp_path):
    # a mel CNN on 96 bands (not the default 128; its four 3x3 poolings need at least 81): thresholds,
    # evaluation, export and the recognizer all compute 96-band windows, taking the checkpoint's parameters
    from instrec.params import FeatureParams
    from instrec.recognizer import Recognizer
    from training.export import export

    params = FeatureParams(n_mels=96)
    train(tiny_corpus, "mel", tmp_path / "run", epochs=1, batch_size=16, workers=1, params=params, progress=False)
    tuned = thresholds.tune(tmp_path / "run", progress=False)
    assert tuned["fusion"]["models"] == ["mel"]
    run_evaluation(tmp_path / "run", tiny_corpus / "test", progress=False)
    manifest = export(tmp_path / "run", tmp_path / "models")
    assert manifest["feature_params"]["n_mels"] == 96 and manifest["models"]["mel"]["input_shape"] == ["batch", 1, 96, 100]
    rec = Recognizer(tmp_path / "models")
    assert rec.params == params and rec.sessions["mel"].get_inputs()[0].shape[2] == 96
    wav = sorted((tiny_corpus / "test").glob("*.wav"))[0]
    assert len(rec.predict(wav).timeline) >= 5


def test_input_normalisations_travel_from_training_to_serving(tiny_corpus, tiny_run, tmp_path):
    # a CNN built with PCEN on its input and relaxed frequency-wise normalisation (its rows centred), trained
    # on the cosine schedule: recorded in the checkpoint, the manifest and the card, exported to ONNX with the
    # same outputs, served by the recognizer
    import onnxruntime as ort

    from instrec.recognizer import Recognizer
    from training.checkpoints import load_checkpoint
    from training.export import export
    from training.model_card import card

    summary = train(tiny_corpus, "mel", tmp_path / "run", epochs=1, batch_size=16, workers=1, freq_norm=0.5,
                    freq_norm_kind="centre", lr_schedule="cosine", pcen=True, progress=False)
    assert summary["args"]["freq_norm"] == 0.5 and summary["args"]["freq_norm_kind"] == "centre"
    assert summary["args"]["pcen"] is True
    model = load_checkpoint(tmp_path / "run" / "mel" / "best.pt").model
    assert model.freq_norm == 0.5 and model.freq_norm_kind == "centre"
    assert model.pcen == pytest.approx(0.4 * 22050 / 220)  # librosa's 0.4 s, in frames
    # the standardisation's statistics are those of the PCEN output (a log magnitude's mean is far below 0)
    assert 0.0 < float(model.mean.mean()) < 5.0
    thresholds.tune(tmp_path / "run", progress=False)
    run_evaluation(tmp_path / "run", tiny_corpus / "test", progress=False)
    manifest = export(tmp_path / "run", tmp_path / "models")
    assert manifest["models"]["mel"]["freq_norm"] == 0.5 and manifest["models"]["mel"]["freq_norm_kind"] == "centre"
    assert manifest["models"]["mel"]["pcen"] == model.pcen
    assert manifest["models"]["mel"]["training"]["ema"] is None
    assert manifest["models"]["mel"]["training"]["lr_schedule"] == "cosine"
    row = next(r for r in card(tmp_path / "models", tmp_path / "run").splitlines() if r.startswith("| mel |"))
    # no augmentation, no weight average
    assert ("| none; cosine learning rate; frequency-wise normalisation 0.5 (rows centred); "
            "PCEN on the input (40 frames' time constant) |") in row
    session = ort.InferenceSession(str(tmp_path / "models" / "mel.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(3).standard_normal((7, 1, 128, 100)).astype(np.float32) * 3
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(session.run(None, {"windows": x})[0], expected, atol=1e-4)
    wav = sorted((tiny_corpus / "test").glob("*.wav"))[0]
    assert len(Recognizer(tmp_path / "models").predict(wav).timeline) >= 5
    # resuming and fine-tuning keep the architecture they start from
    with pytest.raises(ValueError, match="trained with freq_norm=0.5, not None"):
        train(tiny_corpus, "mel", tmp_path / "run", epochs=2, batch_size=16, workers=1, resume=True, progress=False)
    with pytest.raises(ValueError, match="freq_norm=None, not 0.5"):
        train(tiny_corpus, "mel", tmp_path / "tuned", epochs=1, workers=1, init=tiny_run / "mel" / "best.pt",
              freq_norm=0.5, progress=False)
    with pytest.raises(ValueError, match="freq_norm_kind=centre, not ifn"):
        train(tiny_corpus, "mel", tmp_path / "tuned", epochs=1, workers=1, init=tmp_path / "run" / "mel" / "best.pt",
              freq_norm=0.5, progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        train(tiny_corpus, "mel", tmp_path / "bad", epochs=1, workers=1, freq_norm=-0.1, progress=False)
    with pytest.raises(ValueError, match="needs --freq-norm"):
        train(tiny_corpus, "mel", tmp_path / "bad", epochs=1, workers=1, freq_norm_kind="centre", progress=False)
    with pytest.raises(ValueError, match="trained with PCEN"):
        train(tiny_corpus, "mel", tmp_path / "tuned", epochs=1, workers=1, init=tmp_path / "run" / "mel" / "best.pt",
              freq_norm=0.5, freq_norm_kind="centre", progress=False)
    with pytest.raises(ValueError, match="mel CNN only"):
        train(tiny_corpus, "cqt", tmp_path / "bad", epochs=1, workers=1, pcen=True, progress=False)


def test_resume_continues_where_it_stopped(tiny_corpus, tmp_path):
    first = train(tiny_corpus, "cqt", tmp_path, epochs=1, batch_size=16, workers=1, patience=99, progress=False)
    assert [h["epoch"] for h in first["history"]] == [1]
    resumed = train(tiny_corpus, "cqt", tmp_path, epochs=3, batch_size=16, workers=1, patience=99, resume=True,
                    progress=False)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    assert resumed["history"][0] == first["history"][0]
    # a run of 3 epochs straight through is the same run: training is deterministic on the CPU
    straight = train(tiny_corpus, "cqt", tmp_path / "straight", epochs=3, batch_size=16, workers=1, patience=99,
                     progress=False)
    for a, b in zip(straight["history"], resumed["history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    # a resume keeps the recipe it continues: another seed or augmentation is refused, naming what differs
    with pytest.raises(ValueError, match=r"seed=0, not 1, augment=\[\], not \['pitch'\]; resume it with the same"):
        train(tiny_corpus, "cqt", tmp_path, epochs=4, batch_size=16, workers=1, patience=99, resume=True, seed=1,
              augment=("pitch",), progress=False)


def test_cosine_schedule_known_values():
    from training.train import LR_FLOOR, lr_factor

    # half a cosine from 1 at the first step to the floor at the last: the midpoint is half-way between
    assert lr_factor("cosine", 0, 101) == pytest.approx(1.0)
    assert lr_factor("cosine", 50, 101) == pytest.approx((1 + LR_FLOOR) / 2)
    assert lr_factor("cosine", 100, 101) == pytest.approx(LR_FLOOR)
    assert lr_factor("cosine", 25, 101) == pytest.approx(LR_FLOOR + (1 - LR_FLOOR) * (1 + np.sqrt(0.5)) / 2)
    assert lr_factor("cosine", 500, 101) == pytest.approx(LR_FLOOR)  # steps past the plan stay at the floor
    assert lr_factor("constant", 77, 101) == 1.0
    with pytest.raises(ValueError, match="--lr-schedule"):
        lr_factor("linear", 0, 10)


def test_cosine_schedule_trains_resumes_and_keeps_its_plan(tiny_corpus, tmp_path):
    from training.train import LR_FLOOR

    kw = dict(batch_size=16, workers=1, patience=99, lr=1e-3, lr_schedule="cosine", progress=False)
    straight = train(tiny_corpus, "cqt", tmp_path / "straight", epochs=3, **kw)
    steps = -(-straight["n_train_windows"] // 16)
    total = 3 * steps
    # the rate recorded after each epoch is the schedule's at that step (the last is past the plan: the floor)
    for h in straight["history"]:
        progress = min(h["epoch"] * steps, total - 1) / (total - 1)
        assert h["lr"] == pytest.approx(1e-3 * (LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + np.cos(np.pi * progress))))
    assert straight["history"][-1]["lr"] == pytest.approx(1e-3 * LR_FLOOR)
    assert straight["args"]["lr_schedule"] == "cosine"
    # stopped after one epoch and resumed: the same run, rate and loss, as three epochs straight through
    first = train(tiny_corpus, "cqt", tmp_path / "run", epochs=3, max_minutes=0, **kw)  # one epoch, then stops
    assert [h["epoch"] for h in first["history"]] == [1]
    resumed = train(tiny_corpus, "cqt", tmp_path / "run", epochs=3, resume=True, **kw)
    for a, b in zip(straight["history"], resumed["history"]):
        assert a["lr"] == pytest.approx(b["lr"])
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    # the schedule is spread over the planned epochs, so a resume may not change them, nor drop the schedule
    with pytest.raises(ValueError, match="epochs=3, not 5"):
        train(tiny_corpus, "cqt", tmp_path / "run", epochs=5, resume=True, **kw)
    with pytest.raises(ValueError, match="lr_schedule=cosine, not constant"):
        train(tiny_corpus, "cqt", tmp_path / "run", epochs=3, resume=True, **{**kw, "lr_schedule": "constant"})
    with pytest.raises(ValueError, match="--lr-schedule"):
        train(tiny_corpus, "cqt", tmp_path / "bad", epochs=1, **{**kw, "lr_schedule": "step"})


def test_ema_decay_spans_the_asked_number_of_epochs():
    from training.train import ema_decay

    assert ema_decay(2.0, 50) == pytest.approx(0.99)  # 1 - 1 / (2 epochs x 50 steps)
    assert ema_decay(0.01, 10) == 0.0  # under one step: the average is the last step's weights
    with pytest.raises(ValueError, match="positive"):
        ema_decay(0, 10)


def test_ema_saves_and_resumes_the_moving_average(tiny_corpus, tmp_path):
    kw = dict(batch_size=16, workers=1, patience=99, progress=False)
    first = train(tiny_corpus, "cqt", tmp_path / "run", epochs=1, ema=0.5, **kw)
    last = torch.load(tmp_path / "run" / "cqt" / "last.pt", weights_only=False)
    best = torch.load(tmp_path / "run" / "cqt" / "best.pt", weights_only=False)
    steps = -(-first["n_train_windows"] // 16)
    assert int(last["averaged"]["n_averaged"]) == steps
    name = "head.3.weight"
    # the saved (and validated) model is the average, which lags behind the last step's weights
    torch.testing.assert_close(best["state_dict"][name], last["averaged"][f"module.{name}"])
    assert not torch.allclose(best["state_dict"][name], last["state_dict"][name])
    assert best["training_args"]["ema"] == 0.5
    # resuming restores the average too: the same run as two epochs straight through
    resumed = train(tiny_corpus, "cqt", tmp_path / "run", epochs=2, ema=0.5, resume=True, **kw)
    straight = train(tiny_corpus, "cqt", tmp_path / "straight", epochs=2, ema=0.5, **kw)
    assert resumed["history"][1]["val_loss"] == pytest.approx(straight["history"][1]["val_loss"], rel=1e-5)
    a = torch.load(tmp_path / "run" / "cqt" / "last.pt", weights_only=False)["averaged"]
    b = torch.load(tmp_path / "straight" / "cqt" / "last.pt", weights_only=False)["averaged"]
    torch.testing.assert_close(a[f"module.{name}"], b[f"module.{name}"], rtol=1e-5, atol=1e-6)
    # a run trained without the average cannot be resumed with one
    train(tiny_corpus, "cqt", tmp_path / "plain", epochs=1, **kw)
    with pytest.raises(ValueError, match="without --ema"):
        train(tiny_corpus, "cqt", tmp_path / "plain", epochs=2, ema=0.5, resume=True, **kw)


@pytest.mark.parametrize("rep", ["mel", "modgd", "cqt"])
def test_pitch_shift_moves_a_sine_by_the_right_interval(rep):
    from instrec import features
    from tests.conftest import tone

    def peak(freq, shift=0.0):
        w = features.extract(tone(freq, 2.0), representations=(rep,))[rep][:1]
        if shift:
            w = augment._shift_frequency(w, np.array([shift]), rep)
        return int(w[0, 0].mean(axis=1).argmax())

    # a 440 Hz sine shifted up an octave peaks where an 880 Hz sine does (mel, modgd: within one bin,
    # the bins' spacing); the chromagram is circular: an octave is no change, a semitone is 3 bins
    if rep == "cqt":
        assert peak(440, 12) == peak(440)
        assert peak(440, 1) == (peak(440) + 3) % 36
        assert peak(440, -2) == (peak(440) - 6) % 36
    else:
        assert abs(peak(440, 12) - peak(880)) <= 1
        assert abs(peak(440, -12) - peak(220)) <= 1


def test_transpose_rolls_the_chromagram_over_the_whole_octave():
    from instrec import features
    from tests.conftest import tone

    w = features.extract(tone(440, 2.0), representations=("cqt",))["cqt"][:1]
    # 400 copies of one window of a 440 Hz tone, as a feature set of one file
    windows = np.repeat(w, 400, axis=0)
    features_ = FeatureSet(windows, np.zeros(400, int), np.zeros((1, 11), np.float32), {})
    x, _ = augment.batch(features_, np.arange(400), features_.window_targets, ("transpose",),
                         np.random.default_rng(0), representation="cqt")
    home = int(w[0, 0].mean(axis=1).argmax())
    shifts = [(int(x[b, 0].mean(axis=1).argmax()) - home) % 36 for b in range(400)]
    # every one of the 36 positions of the circular axis is reached, and each window is only rolled:
    # the same values along the pitch-class axis, in the same order
    assert set(shifts) == set(range(36))
    for b, k in enumerate(shifts):
        np.testing.assert_array_equal(x[b, 0], np.roll(w[0, 0], k, axis=0))
    assert augment.unsupported(("transpose",), "mel") == ["transpose"]
    assert augment.unsupported(("transpose",), "cqt") == []


def test_augmentations_limited_to_some_cnns():
    entries = augment.parse("noise, eq,mix:mel,pitch:mel+cqt")
    assert entries == ("noise", "eq", "mix:mel", "pitch:mel+cqt")
    assert augment.for_representation(entries, "mel") == ("noise", "eq", "mix", "pitch")
    assert augment.for_representation(entries, "modgd") == ()  # noise and eq are the mel CNN's; mix, pitch not named
    assert augment.for_representation(entries, "cqt") == ("pitch",)
    # one CNN trained alone gets every name not limited to others; training refuses what it cannot do
    assert augment.named_for(entries, "modgd") == ("noise", "eq")
    assert augment.parse("") == ()
    for bad, why in (("nois", "unknown augmentation"), ("mix:mfcc", "representations joined"),
                     ("mix:", "representations joined"), ("mix:mel+", "representations joined"),
                     ("eq:modgd+cqt", "applies to none")):
        with pytest.raises(ValueError, match=why):
            augment.parse(bad)


def test_eq_curves_are_smooth_bounded_and_mel_only():
    rng = np.random.default_rng(0)
    curves = augment._eq_curves(200, 128, rng)[:, 0, :, 0] / augment.NEPER_PER_DB  # dB
    assert np.abs(curves).max() <= 12.0 + 1e-4  # tilt at most +-6 dB at the ends, bump at most +-6 dB
    assert np.abs(np.diff(curves, axis=1)).max() < 1.0  # no step between neighbouring bins over 1 dB
    assert curves.std(axis=1).mean() > 1.0  # and it does colour the spectrum
    assert augment.unsupported(("eq", "pitch"), "modgd") == ["eq"]
    assert augment.unsupported(("eq", "pitch"), "mel") == []
    strong = augment._eq_curves(200, 128, np.random.default_rng(0), **augment.STRONG_EQ)[:, 0, :, 0] / augment.NEPER_PER_DB
    assert np.abs(strong).max() <= 10.0 + 3 * 9.0 + 1e-4  # tilt +-10 dB at the ends, three bumps of at most +-9 dB
    # the narrowest bump (half-width 0.05 of 128 bins, about 6 bins) rises 9 dB over 6 bins: under 3 dB a bin
    assert np.abs(np.diff(strong, axis=1)).max() < 3.0
    assert strong.std(axis=1).mean() > 1.5 * curves.std(axis=1).mean()
    assert augment.unsupported(("eqstrong",), "cqt") == ["eqstrong"]

    class FS:  # log-mel windows well above the floor: the equaliser adds one gain curve per window
        windows = np.random.default_rng(1).uniform(-5, 0, (4, 1, 128, 100)).astype(np.float32)
        file_index = np.arange(4)

    targets = np.eye(11, dtype=np.float32)[:4]
    for name in ("eq", "eqstrong"):
        x, _ = augment.batch(FS, np.arange(4), targets, (name,), np.random.default_rng(2), "mel")
        gain = (x - FS.windows) / augment.NEPER_PER_DB  # dB, per window and bin
        assert np.abs(gain - gain[..., :1]).max() < 1e-3  # constant over time: an equaliser, not noise
        assert gain.std(axis=2).mean() > 1.0


def test_init_starts_from_a_checkpoint(tiny_run, tiny_corpus, tmp_path):
    start = torch.load(tiny_run / "mel" / "best.pt", weights_only=False)
    # with a learning rate of 0 the fine-tuned model is the starting model, statistics included
    train(tiny_corpus, "mel", tmp_path, epochs=1, batch_size=16, workers=1, lr=0.0, init=tiny_run / "mel" / "best.pt",
          progress=False)
    tuned = torch.load(tmp_path / "mel" / "best.pt", weights_only=False)
    for k, v in start["state_dict"].items():
        torch.testing.assert_close(tuned["state_dict"][k], v, rtol=0, atol=0)
    assert tuned["training_args"]["init"].endswith("best.pt")
    with pytest.raises(ValueError, match="holds a mel"):
        train(tiny_corpus, "modgd", tmp_path, epochs=1, workers=1, init=tiny_run / "mel" / "best.pt", progress=False)
    with pytest.raises(ValueError, match="give one of them"):
        train(tiny_corpus, "mel", tmp_path, epochs=1, workers=1, init=tiny_run / "mel" / "best.pt", resume=True,
              progress=False)
    with pytest.raises(ValueError, match="do not apply to cqt"):
        train(tiny_corpus, "cqt", tmp_path, epochs=1, workers=1, augment=("eq",), progress=False)


def test_ablation_table_means_and_spread():
    from experiments.ablation import table

    rows = [{"setting": "none", "best_val_loss": 1.0, "best_val_f1": 0.5, "test_f1_micro": 0.4, "test_f1_macro": 0.3},
            {"setting": "none", "best_val_loss": 2.0, "best_val_f1": 0.7, "test_f1_micro": 0.6, "test_f1_macro": 0.5},
            {"setting": "eq", "best_val_loss": 1.5, "best_val_f1": 0.6, "test_f1_micro": 0.5, "test_f1_macro": 0.4}]
    lines = table(rows).splitlines()
    assert lines[2] == "| none | 2 | 1.500 ± 0.707 | 0.600 ± 0.141 | 0.500 ± 0.141 | 0.400 ± 0.141 |"
    assert lines[3] == "| eq | 1 | 1.500 | 0.600 | 0.500 | 0.400 |"


def test_ablation_runs_each_setting_and_seed(tiny_corpus, tmp_path, capsys):
    from experiments.ablation import main

    assert main(["--data", str(tiny_corpus), "--out", str(tmp_path), "--settings", "none,pitch+eq", "--epochs", "1",
                 "--seeds", "0,1", "--extra-train", str(tiny_corpus / "train")]) == 0
    result = json.loads((tmp_path / "ablation.json").read_text())
    assert [(r["setting"], r["seed"]) for r in result["runs"]] == [("none", 0), ("none", 1), ("pitch+eq", 0),
                                                                    ("pitch+eq", 1)]
    assert result["extra_train"] == [str(tiny_corpus / "train")]
    # the extra folder (here the training folder itself) is added on top of the training split
    alone = train(tiny_corpus, "mel", tmp_path / "alone", epochs=1, batch_size=16, workers=1, progress=False)
    assert result["runs"][0]["n_train_windows"] > alone["n_train_windows"]
    assert "| pitch+eq | 2 |" in capsys.readouterr().out


def test_noise_lifts_the_floor_and_leaves_strong_partials():
    # one partial at magnitude 1 over silence (the log floor, 1e-5): the window's mean magnitude is 1/128,
    # the added floor 15-45 dB under it (x a +-12 dB colour) is 1e-5 to 7e-3 on average, far under the partial
    x = np.full((50, 1, 128, 100), np.log(1e-5), np.float32)
    x[:, :, 20, :] = 0.0
    y = augment._add_noise(x, np.random.default_rng(0))
    assert np.isfinite(y).all() and y.dtype == np.float32
    assert np.abs(y[:, :, 20] - 0.0).max() < 0.05  # the partial moves by less than 0.05 neper (0.4 dB)
    floor = np.exp(np.median(np.delete(y, 20, axis=2), axis=(1, 2, 3)))  # median magnitude off the partial
    assert (floor > 1e-5).all() and (floor < 1e-2).all()
    assert floor.max() / floor.min() > 10  # the level varies from window to window


def test_mixstyle_swaps_spectral_shape_and_keeps_the_time_pattern():
    # two kinds of windows: A bright (a rising per-bin level), B dark (falling); each with its own
    # time pattern. Freq-MixStyle moves each styled window's per-bin mean and deviation to a mix of its
    # own and its partner's (weights lam, 1 - lam), and keeps its normalised time pattern exactly.
    rng = np.random.default_rng(0)
    F, T = 128, 100
    level = np.linspace(-5, 5, F, dtype=np.float32)[:, None]
    pattern = rng.standard_normal((64, 1, F, T)).astype(np.float32)
    x = pattern + np.where(np.arange(64) % 2 == 0, 1, -1)[:, None, None, None] * level
    y = augment._mix_style(x, np.random.default_rng(1), p=augment.MIXSTYLES["mixstyle"])
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    changed = ~np.isclose(y, x).all(axis=(1, 2, 3))
    assert 0.4 < changed.mean() < 0.95  # about 70 % of the windows are styled
    norm = lambda v: (v - v.mean(axis=3, keepdims=True)) / np.sqrt(v.var(axis=3, keepdims=True) + 1e-6)
    np.testing.assert_allclose(norm(y), norm(x), atol=1e-3)  # the time pattern of every bin is its own
    # spectral slopes (nepers over the band): +-10 for the originals; the styled ones lie between,
    # many of them well inside (a Beta(0.4, 0.4) mix with a partner of the other kind)
    slope = np.polyfit(np.arange(F), y.mean(axis=3)[:, 0].T, 1)[0] * F
    np.testing.assert_allclose(np.abs(slope[~changed]), 10, atol=0.2)
    # (about half the partners are of the other kind, and Beta(0.4, 0.4) puts ~55 % of lam in 0.1..0.9)
    assert np.abs(slope).max() < 10.2 and (np.abs(slope[changed]) < 8).mean() > 0.15
    assert augment.unsupported(("mixstyle",), "cqt") == ["mixstyle"]
    assert augment.unsupported(("mixstyle",), "modgd") == []


@pytest.mark.parametrize("name, share", [("mixstyle", 0.7), ("mixstyle-light", 0.3)])
def test_mixstyle_styles_its_share_of_a_training_batch(name, share):
    # through the training batch: about the named share of 2000 windows is restyled (a binomial share of
    # 2000 has a standard deviation under 0.011, so +-0.05 cannot fail by chance), the rest are untouched
    windows = np.random.default_rng(0).standard_normal((2000, 1, 128, 100)).astype(np.float32)
    targets = np.eye(11, dtype=np.float32)[np.arange(2000) % 11]
    features_ = FeatureSet(windows, np.arange(2000), targets, {})
    x, y = augment.batch(features_, np.arange(2000), features_.window_targets, (name,), np.random.default_rng(1),
                         "modgd")
    changed = ~np.isclose(x, windows).all(axis=(1, 2, 3))
    assert abs(changed.mean() - share) < 0.05
    np.testing.assert_array_equal(y, targets)  # labels are kept
    assert augment.unsupported((name,), "cqt") == [name]


@pytest.mark.parametrize("representation", ["mel", "modgd"])
def test_a_window_cut_short_is_the_window_of_a_short_file(representation):
    """A 3-second tone (A4 with its octave); its first window cut after k frames against the window of the
    same tone cut to k hops of audio, which the recognizer pads with zeros: the frames whose analysis
    window (3 frames either side) lies wholly on one side of the cut are the same to float precision,
    and only the two frames either side of the cut differ (there the file's frames hear part of the tone)."""
    from instrec import features

    sr = 22050
    t = np.arange(3 * sr) / sr
    y = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 880 * t)).astype(np.float32)
    first = features.extract(y, representations=(representation,))[representation][:1]
    silent = features.extract(np.zeros(sr, np.float32), representations=(representation,))[representation]
    for k in (10, 50, 95):
        short = features.extract(y[: k * 220], representations=(representation,))[representation]
        cut = augment.cut_after(first, np.array([k]), representation)
        assert cut.shape == first.shape and cut.dtype == np.float32
        differs = np.nonzero(np.abs(cut - short)[0, 0].max(axis=0) > 1e-4)[0]
        assert set(differs) <= set(range(k - 2, k + 3)), (k, differs)
        np.testing.assert_allclose(cut[0, 0, :, k + 3 :], silent[0, 0, :, k + 3 :], atol=1e-6)
        assert np.abs(cut[0, 0, :, : k - 3] - first[0, 0, :, : k - 3]).max() == 0  # the kept part as it was
    assert augment.unsupported(("short",), "cqt") == ["short"]


def test_short_cuts_a_quarter_of_a_training_batch():
    # through the training batch: about SHORT_SHARE of 2000 windows end in silence after 10-95 frames
    # (a binomial share of 2000 has a standard deviation under 0.01, so +-0.05 cannot fail by chance)
    windows = np.random.default_rng(0).standard_normal((2000, 1, 128, 100)).astype(np.float32)
    targets = np.eye(11, dtype=np.float32)[np.arange(2000) % 11]
    features_ = FeatureSet(windows, np.arange(2000), targets, {})
    x, y = augment.batch(features_, np.arange(2000), features_.window_targets, ("short",), np.random.default_rng(1),
                         "mel")
    floor = augment.silence("mel")[0, 0]
    assert floor == pytest.approx(np.log(1e-5))  # log-mel of digital silence: the log floor
    cut = (x[:, 0, 0, :] == floor)  # no frame of the random windows is exactly the floor
    changed = cut.any(axis=1)
    assert abs(changed.mean() - augment.SHORT_SHARE) < 0.05
    kept = cut[changed].argmax(axis=1)  # the first silent frame
    assert kept.min() >= 10 and kept.max() <= 95 and (cut[changed].sum(1) == 100 - kept).all()
    np.testing.assert_array_equal(x[~changed], windows[~changed])
    np.testing.assert_array_equal(y, targets)


def test_excerpt_sources_follow_links_to_the_corpus_manifest(tiny_corpus, tmp_path):
    from corpus.subset import link_subset
    from training.datasets import read_training, training_root
    from training.sources import excerpt_sources, family_labels, source_family

    assert source_family("tonejs-cello") == "tonejs" and source_family("freepats-guitar-nylon") == "freepats"
    assert source_family("FluidR3_GM.sf2") == "FluidR3_GM.sf2"
    rendered = json.loads((tiny_corpus / "corpus.json").read_text())
    lead = {(tiny_corpus / f).resolve(): p["source"] for r in rendered["records"] if r["split"] == "train"
            for p in r["parts"] if p["role"] == "predominant" for f in r["files"]}
    dataset = read_training(training_root(tiny_corpus))
    sources = excerpt_sources(dataset)
    assert sources == [lead[e.path.resolve()] for e in dataset.excerpts]
    assert "tonejs-flute" in sources  # every flute lead of the tiny corpus is the recorded-note library
    # the links of a subset name the same sources; a file no manifest records has none
    link_subset(tiny_corpus, tmp_path / "gm", "gm")
    linked = read_training(tmp_path / "gm")
    assert excerpt_sources(linked) == [lead[e.path.resolve()] for e in linked.excerpts]
    stray = tmp_path / "stray" / "cel" / "x__[cel][nod][cla]0001__1.wav"
    stray.parent.mkdir(parents=True)
    shutil.copy(dataset.excerpts[0].path, stray)
    assert excerpt_sources(read_training(tmp_path / "stray")) == [None]
    labels, families = family_labels(["tonejs-cello", None, "FluidR3_GM.sf2", "tonejs-flute"])
    assert families == ["tonejs", "FluidR3_GM.sf2"] and labels.tolist() == [0, -1, 1, 0]  # most common first


def test_adversary_strength_ramps_from_zero_to_its_weight():
    from training.train import adversary_strength

    assert adversary_strength(0.5, 0, 100) == 0.0
    assert adversary_strength(0.5, 50, 100) == pytest.approx(0.5 * (2 / (1 + np.exp(-5)) - 1))  # 0.4933
    assert adversary_strength(0.5, 100, 100) == pytest.approx(0.5, abs=1e-4)
    steps = [adversary_strength(1.0, s, 20) for s in range(21)]
    assert all(a < b for a, b in zip(steps, steps[1:]))


def test_adversarial_training_records_sources_resumes_and_refuses_what_it_cannot_use(tiny_corpus, tmp_path):
    from training.checkpoints import load_checkpoint
    from training.datasets import read_training, training_root
    from training.sources import excerpt_sources, family_labels

    kw = dict(batch_size=16, workers=1, patience=99, progress=False)
    first = train(tiny_corpus, "mel", tmp_path / "run", epochs=2, max_minutes=0, adversary=0.5, **kw)  # 1 epoch
    assert first["args"]["adversary"] == 0.5 and len(first["history"]) == 1
    row = first["history"][0]
    steps = -(-first["n_train_windows"] // 16)
    assert row["strength"] == pytest.approx(0.5 * (2 / (1 + np.exp(-10 * steps / (2 * steps))) - 1))  # halfway
    assert 0.0 <= row["source_accuracy"] <= 1.0
    # the families counted over the training windows (the song-aware split's): every excerpt has a source
    _, families = family_labels(excerpt_sources(read_training(training_root(tiny_corpus))))
    assert len(first["source_families"]) >= 2 and set(first["source_families"]) <= set(families)
    assert sum(first["source_families"].values()) == first["n_train_windows"]
    assert first["source_chance"] == max(first["source_families"].values()) / first["n_train_windows"]
    # the saved model is a plain InstrumentCNN: the adversary is not part of it
    model = load_checkpoint(tmp_path / "run" / "mel" / "best.pt").model
    assert not any(k.startswith("critic") for k in model.state_dict())
    # resuming restores the adversary: the same run as two epochs straight through
    resumed = train(tiny_corpus, "mel", tmp_path / "run", epochs=2, adversary=0.5, resume=True, **kw)
    straight = train(tiny_corpus, "mel", tmp_path / "straight", epochs=2, adversary=0.5, **kw)
    assert resumed["history"][1]["val_loss"] == pytest.approx(straight["history"][1]["val_loss"], rel=1e-5)
    assert resumed["history"][1]["source_accuracy"] == straight["history"][1]["source_accuracy"]
    # the ramp is spread over the planned epochs, so a resume may change neither them nor the adversary
    with pytest.raises(ValueError, match="epochs=2, not 3"):
        train(tiny_corpus, "mel", tmp_path / "run", epochs=3, adversary=0.5, resume=True, **kw)
    with pytest.raises(ValueError, match="adversary=0.5, not None"):
        train(tiny_corpus, "mel", tmp_path / "run", epochs=2, resume=True, **kw)
    with pytest.raises(ValueError, match="positive weight"):
        train(tiny_corpus, "mel", tmp_path / "bad", epochs=1, adversary=0.0, **kw)
    # a training folder that no corpus manifest describes (IRMAS, generated audio) has no families to learn
    plain = tmp_path / "plain"
    shutil.copytree(training_root(tiny_corpus), plain)
    with pytest.raises(ValueError, match="at least two source families"):
        train(plain, "mel", tmp_path / "bad", epochs=1, adversary=0.5, **kw)
