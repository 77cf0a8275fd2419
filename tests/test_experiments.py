"""Experiments on the tiny corpus and on known answers: leave-one-source-out, the source probe, the pretrained head."""

import json
from collections import Counter

import numpy as np
import pytest
import torch

from instrec.embedding import MODEL, MSD_MODEL
from instrec.labels import CODES
from training.datasets import read_training


def test_leave_one_source_out_trains_without_it_tests_on_it_and_resumes(tiny_corpus, tmp_path):
    import shutil

    from experiments.leave_one_out import run

    result = run(tiny_corpus, tmp_path / "lolo", epochs=1, progress=False)
    manifest = json.loads((tiny_corpus / "corpus.json").read_text())
    lead = {f: [p["source"] for p in r["parts"] if p["role"] == "predominant"][0]
            for r in manifest["records"] if r["split"] == "train" for f in r["files"]}
    source_of = lambda e: lead[str(e.path.resolve().relative_to(tiny_corpus.resolve()))]
    kept, held = read_training(tmp_path / "lolo" / "train"), read_training(tmp_path / "lolo" / "held")
    assert len(kept) + len(held) == len(read_training(tiny_corpus / "train"))
    # nothing held out is trained on; everything held out is played by its class's held-out source
    assert all(source_of(e) != result["held_out"].get(e.labels[0]) for e in kept)
    assert all(source_of(e) == result["held_out"][e.labels[0]] for e in held)
    # flute has one source in the tiny corpus (every lead from its library): it cannot be held out
    assert "flu" not in result["held_out"]
    assert set(result["per_class"]) == {e.labels[0] for e in held}
    assert result["n_held"] == len(held)
    # what each class was heard as: every held-out excerpt once, the right answers the class's figure
    n_held = Counter(e.labels[0] for e in held)
    for code, heard in result["heard_as"].items():
        assert sum(heard.values()) == n_held[code] and set(heard) <= set(CODES)
        assert result["per_class"][code] == pytest.approx(heard.get(code, 0) / n_held[code])
    assert json.loads((tmp_path / "lolo" / "leave_one_out.json").read_text())["held_out"] == result["held_out"]

    # a stopped run resumed: the same split again, the CNN continued from its last.pt
    out = tmp_path / "lolo"
    first = json.loads((out / "mel" / "history.json").read_text())["history"]
    run(tiny_corpus, out, epochs=2, resume=True, progress=False)
    history = json.loads((out / "mel" / "history.json").read_text())["history"]
    assert [row["epoch"] for row in history] == [1, 2] and history[0] == first[0]
    trained = (out / "mel" / "last.pt").stat().st_mtime_ns
    run(tiny_corpus, out, epochs=2, resume=True, progress=False)  # nothing left: checked again, not trained
    assert (out / "mel" / "last.pt").stat().st_mtime_ns == trained
    # a split made otherwise (here with a further training folder) would continue the CNN on other data:
    # refused, and the first run's split stays on record
    split = (out / "split.json").read_text()
    extra = tmp_path / "extra" / "train" / "cla"
    extra.mkdir(parents=True)
    shutil.copy(next((tiny_corpus / "train" / "cla").glob("*.wav")), extra / "x__[cla][nod]__1.wav")
    with pytest.raises(ValueError, match=r"was split otherwise before \(extra_train_counts differ\)"):
        run(tiny_corpus, out, epochs=3, extra_train=[extra.parent], resume=True, progress=False)
    assert (out / "split.json").read_text() == split and (out / "mel" / "last.pt").stat().st_mtime_ns == trained


def test_a_further_training_folder_joins_the_training_excerpts_whole(tiny_corpus, tmp_path, capsys):
    import shutil

    from experiments.leave_one_out import main, split_by_source

    plain = split_by_source(tiny_corpus, tmp_path / "plain")
    extra = tmp_path / "extra" / "train"
    for code, name in (("cla", "stk-a__[cla][nod]__1.wav"), ("cla", "stk-b__[cla][nod]__1.wav"),
                       ("voi", "stk-c__[voi][nod]__1.wav")):
        (extra / code).mkdir(parents=True, exist_ok=True)
        shutil.copy(next((tiny_corpus / "train" / "cla").glob("*.wav")), extra / code / name)
    plan = split_by_source(tiny_corpus, tmp_path / "lolo", extra_train=[extra])
    assert plan["held_out"] == plain["held_out"] and plan["held_counts"] == plain["held_counts"]
    assert plan["extra_train_counts"] == {str(extra): {"cla": 2, "voi": 1}}
    kept, plain_kept = read_training(tmp_path / "lolo" / "train"), read_training(tmp_path / "plain" / "train")
    assert len(kept) == len(plain_kept) + 3
    added = {e.path.name: e.labels for e in kept}.items() - {e.path.name: e.labels for e in plain_kept}.items()
    assert dict(added) == {"stk-a__[cla][nod]__1.wav": ("cla",), "stk-b__[cla][nod]__1.wav": ("cla",),
                           "stk-c__[voi][nod]__1.wav": ("voi",)}
    # the same folder twice (or two folders naming files alike) would train on a file twice: refused
    assert main(["--corpus", str(tiny_corpus), "--out", str(tmp_path / "twice"), "--split-only",
                 "--extra-train", str(extra), "--extra-train", str(extra)]) == 1
    assert "is taken already" in capsys.readouterr().err
    # a folder that is not in training layout is named
    with pytest.raises(ValueError, match="training folder not found"):
        split_by_source(tiny_corpus, tmp_path / "lolo", extra_train=[tmp_path / "nowhere"])


def test_figures_over_seeds_are_means_with_their_spread():
    from experiments.leave_one_out import over_seeds

    real = lambda share, cla: {"data": "real", "n": 4, "top1_share": share,
                               "per_label": {"cla": {"n": 4, "correct": cla}}}
    runs = [{"seed": 0, "n_held": 10, "per_class": {"cla": 0.2, "voi": 0.6}, "mean_over_classes": 0.4,
             "heard_as": {"cla": {"cla": 1, "flu": 4}, "voi": {"voi": 3, "gel": 2}}, "real_audio": real(0.25, 1)},
            {"seed": 1, "n_held": 10, "per_class": {"cla": 0.4, "voi": 0.8}, "mean_over_classes": 0.6,
             "heard_as": {"cla": {"cla": 2, "voi": 3}, "voi": {"voi": 4, "gel": 1}}, "real_audio": real(0.75, 3)}]
    summary = over_seeds(runs)
    assert summary["seeds"] == [0, 1]
    assert summary["per_class"] == {"cla": pytest.approx(0.3), "voi": pytest.approx(0.7)}
    assert summary["mean_over_classes"] == pytest.approx(0.5)
    assert summary["heard_as"] == {"cla": {"flu": 4, "cla": 3, "voi": 3}, "voi": {"voi": 7, "gel": 3}}  # summed
    assert summary["mean_over_classes_sd"] == pytest.approx(0.1 * 2 ** 0.5)  # two values 0.2 apart, ddof 1
    assert summary["real_audio"]["top1_share"] == pytest.approx(0.5)
    assert summary["real_audio"]["per_label"]["cla"] == {"n": 4, "correct": 2}


def test_leave_one_out_over_seeds_trains_once_per_seed_on_one_split(tiny_corpus, tmp_path):
    from experiments.leave_one_out import run

    result = run(tiny_corpus, tmp_path / "lolo", epochs=1, seeds=[0, 1], progress=False)
    assert [r["seed"] for r in result["per_seed"]] == [0, 1]
    for seed in (0, 1):
        best = torch.load(tmp_path / "lolo" / f"seed{seed}" / "mel" / "best.pt", weights_only=False)
        assert best["training_args"]["seed"] == seed
    assert result["mean_over_classes"] == pytest.approx(
        sum(r["mean_over_classes"] for r in result["per_seed"]) / 2)
    assert all(r["n_held"] == result["n_held"] for r in result["per_seed"])
    assert json.loads((tmp_path / "lolo" / "leave_one_out.json").read_text())["seeds"] == [0, 1]


def test_leave_one_out_fused_checks_the_three_cnns_as_the_app_answers(tiny_corpus, tmp_path):
    from experiments.leave_one_out import run
    from instrec.recognizer import Recognizer
    from tests.conftest import REAL_AUDIO
    from training.pipeline import epochs_per_cnn

    out = tmp_path / "lolo"
    result = run(tiny_corpus, out, representation="fused", epochs=epochs_per_cnn("1,cqt:2"),
                 augment=("noise", "mix:mel"), real_audio=REAL_AUDIO,
                 freq_norm=0.5, freq_norm_kind="centre", freq_norm_models=("mel",), pcen=True, progress=False)
    # each CNN trained for its own number of epochs (the CLI's --epochs 1,cqt:2)
    ran = {rep: json.loads((out / rep / "history.json").read_text())["epochs_run"] for rep in ("mel", "modgd", "cqt")}
    assert ran == {"mel": 1, "modgd": 1, "cqt": 2} and result["epochs"] == ran
    # each CNN trained on the split, with the augmentations and the normalisations asked for it (PCEN: mel only)
    for rep, augment, freq_norm in (("mel", ["noise", "mix"], 0.5), ("modgd", [], None), ("cqt", [], None)):
        args = torch.load(out / rep / "best.pt", weights_only=False)["training_args"]
        assert args["augment"] == augment and args["data"] == str(out / "train")
        assert args["freq_norm"] == freq_norm and args["freq_norm_kind"] == ("centre" if freq_norm else "ifn")
        assert args["pcen"] == (rep == "mel")
    # the figures are the exported fused models' top class on every held-out excerpt, as the app ranks
    rec = Recognizer(out / "onnx")
    assert rec.fusion.models == ("mel", "modgd", "cqt")
    held = read_training(out / "held")
    heard = {}
    for e in held:
        scores = rec.predict(e.path).scores
        heard.setdefault(e.labels[0], Counter())[max(CODES, key=lambda c: scores[c])] += 1
    assert result["heard_as"] == {c: dict(v.most_common()) for c, v in sorted(heard.items())}
    assert result["per_class"] == {c: v.get(c, 0) / sum(v.values()) for c, v in sorted(heard.items())}
    assert result["n_held"] == len(held) and result["real_audio"]["n"] == 31


def test_leave_one_out_refuses_pcen_for_a_cnn_that_cannot_have_it(tiny_corpus, tmp_path):
    # PCEN takes log magnitudes: asked for the modgd CNN alone, the check is refused before any split is made
    # rather than run without it
    from experiments.leave_one_out import main

    assert main(["--corpus", str(tiny_corpus), "--out", str(tmp_path / "lolo"), "--representation", "modgd",
                 "--pcen"]) == 1
    assert not (tmp_path / "lolo").exists()


def test_source_probe_known_answers():
    # an embedding that is the family (plus noise) names it every time; noise alone names it about as often
    # as the most common family (0.5 of two even families: within 0.05 over 2 000 held-out windows, whose
    # standard error is 0.011); the windows of one file stay on one side
    import numpy as np

    from experiments.source_probe import held_out_windows, probe_accuracy

    rng = np.random.default_rng(0)
    files = np.repeat(np.arange(400), 10)
    families = (files % 2).astype(np.int64)
    telling = np.eye(2)[families] + 0.1 * rng.standard_normal((4000, 2))
    assert probe_accuracy(telling, families, files) == 1.0
    assert abs(probe_accuracy(rng.standard_normal((4000, 8)), families, files) - 0.5) < 0.05
    held = held_out_windows(files)
    assert held.sum() == 2000 and all(len(set(held[files == f])) == 1 for f in range(400))
    with pytest.raises(ValueError, match="one source family"):
        probe_accuracy(telling, np.zeros(4000, np.int64), files)


def test_source_probe_on_a_trained_run(tiny_corpus, tiny_run, tmp_path, capsys):
    import shutil

    from experiments.source_probe import main

    out = tmp_path / "probe.json"
    assert main(["--data", str(tiny_corpus), "--checkpoint", str(tiny_run / "mel" / "best.pt"), "--checkpoint",
                 str(tiny_run / "cqt" / "best.pt"), "--cache", str(tmp_path / "cache"), "--workers", "1",
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert len(result["families"]) >= 2 and 0 < result["chance"] < 1 and 0 <= result["class_alone"] <= 1
    assert [r["representation"] for r in result["checkpoints"].values()] == ["mel", "cqt"]
    windows = {r["windows"] for r in result["checkpoints"].values()}
    assert len(windows) == 1  # every window of the corpus, in either representation
    assert all(0.0 <= r["probe"] <= 1.0 for r in result["checkpoints"].values())
    assert "from the class alone" in capsys.readouterr().out
    # a folder that no corpus manifest describes: a clear error
    plain = tmp_path / "plain"
    shutil.copytree(tiny_corpus / "train", plain)
    assert main(["--data", str(plain), "--checkpoint", str(tiny_run / "mel" / "best.pt"),
                 "--cache", str(tmp_path / "cache")]) == 1
    assert "source families" in capsys.readouterr().err


def test_pretrained_head_tells_tones_from_noise_it_never_heard(tmp_path):
    # known answer: harmonic tones (pia) and white noise (org) are far apart in any tagger's embedding, so a
    # head fitted on some of each names every unheard one right
    from experiments.pretrained_head import run
    from tests.conftest import tones_and_noise

    split = tmp_path / "split"
    tones_and_noise(split / "train", 5, seed=0, f0=220)
    tones_and_noise(split / "held", 3, seed=1, f0=180)
    result = run(split, cache=tmp_path / "cache")
    assert result["train_files"] == 10 and "held-notes" not in result and "real" not in result
    assert result["held"]["head"] == {"per_class": {"org": 1.0, "pia": 1.0}, "mean_over_classes": 1.0,
                                      "correct": 6, "n": 6}
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 16  # each file embedded once, then read back
    assert run(split, cache=tmp_path / "cache")["held"] == result["held"]
    per_class = run(split, cache=tmp_path / "cache", per_class=True)  # a head per class tells them apart too
    assert per_class["per_class"] and per_class["held"]["head"]["mean_over_classes"] == 1.0
    # fitted on named training folders and checked on a labelled folder: the same head, the same figures
    named = run(train=[split / "train"], real_audio=split / "held", cache=tmp_path / "cache",
                checks={"again": split / "held"})
    assert named["real"] == named["held-again"] == result["held"] and named["split"] is None
    assert named["checked"] == ["held-again"]
    with pytest.raises(ValueError, match="no such folder"):
        run(split, cache=tmp_path / "cache", checks={"organ": tmp_path / "nowhere"})
    with pytest.raises(ValueError, match="needs a name"):  # the API refuses an unnamed check as the CLI does
        run(split, cache=tmp_path / "cache", checks={"": split / "held"})
    (split / "held-notes").mkdir()  # a split's own held-out notes: a check may not take their name
    with pytest.raises(ValueError, match="held-notes is checked already"):
        run(split, cache=tmp_path / "cache", checks={"notes": split / "held"})
    (split / "held-notes").rmdir()
    with pytest.raises(ValueError, match="nothing to fit"):
        run(real_audio=split / "held")
    # one output of the tagger: the head sees its 753 values only
    from training.head import columns

    assert np.array_equal(columns(("max_pool",)), np.arange(753))
    assert np.array_equal(columns(("taggram", "max_pool")), np.r_[np.arange(753), np.arange(1706, 1756)])
    with pytest.raises(ValueError, match="unknown musicnn outputs"):
        columns(("max_pool", "logits"))
    assert run(split, cache=tmp_path / "cache", outputs=("taggram",))["outputs"] == ["taggram"]


def test_pretrained_head_on_two_taggers_side_by_side(tmp_path):
    # a second tagger: musicnn with its tag layer's bias moved, so its taggram differs and the rest does not
    import onnx
    from onnx import numpy_helper

    from experiments.pretrained_head import run
    from tests.conftest import tones_and_noise
    from training.head import Taggers

    model = onnx.load(str(MODEL))
    bias = next(i for i in model.graph.initializer if i.name == "dense_1/BiasAdd/ReadVariableOp:0")
    bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias) + 1.0, bias.name))
    other = tmp_path / "other.onnx"
    onnx.save(model, str(other))
    split = tmp_path / "split"
    tones_and_noise(split / "train", 3, seed=0, f0=220)
    tones_and_noise(split / "held", 2, seed=1, f0=180)

    taggers = Taggers((MODEL, other))
    paths, x, y, silent = taggers.folder(split / "held", tmp_path / "cache")
    assert x.shape == (4, 2 * 1756) and not silent
    assert np.array_equal(x[:, :1706], x[:, 1756:3462])  # the same pooled and penultimate values
    assert (x[:, 3462:] > x[:, 1706:1756]).all()  # a higher taggram, every tag: each model is cached apart
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 8
    assert np.array_equal(taggers.columns(("taggram",)), np.r_[np.arange(1706, 1756), np.arange(3462, 3512)])
    result = run(split, cache=tmp_path / "cache", taggers=(MODEL, other))
    assert result["taggers"] == [MODEL.name, "other.onnx"] and result["held"]["head"]["mean_over_classes"] == 1.0
    with pytest.raises(ValueError, match="no tagger"):
        Taggers(())


def test_first_right_counts_the_top_class_per_true_class():
    from experiments.pretrained_head import first_right

    scores = np.zeros((4, len(CODES)))
    scores[[0, 1, 2, 3], [CODES.index(c) for c in ("cla", "flu", "voi", "voi")]] = 1
    y = np.array([CODES.index(c) for c in ("cla", "cla", "voi", "voi")])
    assert first_right(scores, y) == {"per_class": {"cla": 0.5, "voi": 1.0}, "mean_over_classes": 0.75,
                                      "correct": 3, "n": 4}


def test_top_among_true_counts_a_top_class_that_is_one_of_the_songs():
    from experiments.pretrained_head import top_among_true

    truth = np.zeros((3, len(CODES)))
    truth[0, [0, 1]] = truth[1, 2] = truth[2, [3, 4]] = 1
    scores = np.zeros((3, len(CODES)))
    scores[0, 1] = scores[1, 5] = scores[2, 4] = 1  # second of two, wrong, second of two
    assert top_among_true(scores, truth) == {"correct": 2, "n": 3, "share": pytest.approx(2 / 3)}


def test_the_product_keeps_the_heads_top_class_at_its_fused_score_and_thresholds_are_tuned_per_class():
    from experiments.pretrained_head import product, tune_product

    fused = np.full((4, len(CODES)), 0.6)
    head = np.full((4, len(CODES)), 0.01)
    head[:, 0] = 0.5  # the head's top class everywhere: cello
    head[:2, 1] = 0.25  # clarinet half as likely in the first two songs
    g = product(fused, head)
    assert np.allclose(g[:, 0], 0.6) and np.allclose(g[:2, 1], 0.3) and np.allclose(g[2:, 1], 0.012)
    truth = np.zeros((4, len(CODES)))
    truth[:, 0] = 1
    truth[:2, 1] = 1  # clarinet plays where the head gave it half: a threshold between 0.012 and 0.3 finds it
    thresholds = tune_product(head, fused, truth)
    assert 0.012 < thresholds[1] <= 0.3 and thresholds[0] <= 0.6
    decided = g >= thresholds
    assert decided[:, 0].all() and np.array_equal(decided[:, 1], [True, True, False, False])


def test_pretrained_head_beside_the_fused_cnns_on_a_split(tiny_corpus, tiny_models, tmp_path, capsys):
    from experiments.leave_one_out import split_by_source
    from experiments.pretrained_head import main
    from instrec.recognizer import Recognizer
    from tests.conftest import REAL_AUDIO
    from training.real_audio import check_real_audio

    split = tmp_path / "lolo"
    plan = split_by_source(tiny_corpus, split)
    assert main(["--split", str(split), "--fused", str(tiny_models), "--real-audio", str(REAL_AUDIO),
                 "--songs", str(tiny_corpus / "test"), "--tune-songs", str(tiny_corpus / "validation"),
                 "--check", f"again={split / 'held'}", "--out", str(tmp_path / "head.json")]) == 0
    result = json.loads((tmp_path / "head.json").read_text())
    # the corpus's test songs, multi-label: the top class counted right when it is one of a song's
    from training.datasets import read_testing

    assert result["songs"]["fused"]["n"] == len(read_testing(tiny_corpus / "test"))
    assert set(result["songs"]) == {"data", "head", "fused", "fused_times_head", "presence"}
    presence = result["songs"]["presence"]
    assert tuple(presence["thresholds"]) == CODES and 0 <= presence["product_f1_micro"] <= 1
    # the fused CNNs' presence is the app's: a fused score of at least 0.5 is an instrument answered
    from training.metrics import evaluate

    songs = read_testing(tiny_corpus / "test")
    rec = Recognizer(tiny_models)
    decided = np.stack([[c in rec.predict(e.path).instruments for c in CODES] for e in songs])
    assert presence["fused_f1_micro"] == pytest.approx(evaluate(songs.targets(), decided)["f1_micro"])
    assert result["train_files"] == sum(plan["train_counts"].values())
    assert result["held"]["head"]["n"] == sum(plan["held_counts"].values())
    assert result["held-again"] == result["held"]  # a folder given with --check: the same files, the same figures
    assert set(result["real"]) == {"head", "fused", "fused_times_head"}
    # the fused CNNs' figure is the app's own answer, counted by the real-audio check
    assert result["real"]["fused"]["correct"] == check_real_audio(tiny_models, REAL_AUDIO)["top1_correct"]
    assert "real       fused_times_head" in capsys.readouterr().out
    for spec in (str(REAL_AUDIO), f"={REAL_AUDIO}", "again="):  # a check must be named and have a folder
        with pytest.raises(SystemExit):
            main(["--split", str(split), "--check", spec])
    # nothing to check on: a clear error, not a figure
    (split / "held").rename(split / "elsewhere")
    assert main(["--split", str(split)]) == 1
    assert "no held-out folder" in capsys.readouterr().err


def test_served_head_names_each_head_folder_by_its_regularisation_and_taggers():
    from experiments.served_head import folder_suffix
    from training.head import C

    assert folder_suffix(C, (MODEL,)) == ""
    assert folder_suffix(0.1, (MODEL,)) == "-c0.1"
    assert folder_suffix(C, (MODEL, MSD_MODEL)) == "-musicnn_mtt+musicnn_msd"
    assert folder_suffix(0.003, (MSD_MODEL,)) == "-c0.003-musicnn_msd"


def test_served_head_decides_the_held_out_files_with_each_fusion(tiny_corpus, tiny_models, tmp_path, capsys):
    import shutil

    from corpus.notes import render_notes
    from corpus.synth import GM_PATHS
    from experiments.leave_one_out import split_by_source
    from experiments.pretrained_head import first_right
    from experiments.served_head import main
    from instrec.recognizer import Recognizer
    from training.real_audio import read_labels

    split = tmp_path / "lolo"
    plan = split_by_source(tiny_corpus, split)
    shutil.copytree(tiny_models, split / "onnx")  # the split's CNNs, as --representation fused exports them
    (split / "leave_one_out.json").write_text(json.dumps(plan))  # what the check writes: the held-out sources
    # a corpus that plays a held-out source cannot teach the head: the check would hear that source
    assert main(["--split", str(split), "--validation", str(tiny_corpus / "validation"),
                 "--head-extra", str(tiny_corpus)]) == 1
    assert "holds out" in capsys.readouterr().err and not (split / "head").exists()
    # flute notes of FluidR3, which the split does not hold out of the flute, can
    notes_dir = tmp_path / "notes"
    render_notes(notes_dir, per_class=2, codes=("flu",), gm=[GM_PATHS[0]], samples=None, workers=1, progress=False)
    assert plan["held_out"].get("flu") != GM_PATHS[0].name
    # the head on musicnn's Million Song Dataset model instead of the default MagnaTagATune one, a patch per 3 windows
    assert main(["--split", str(split), "--validation", str(tiny_corpus / "validation"), "--head-weight", "0.5",
                 "--c", "0.1", "--tagger", str(MSD_MODEL), "--head-stride", "3", "--head-extra", str(notes_dir),
                 "--out", str(tmp_path / "served.json")]) == 0
    result = json.loads((tmp_path / "served.json").read_text())
    assert set(result["held"]) == {"own", "cnns_and", "cnns_mean", "four_mean", "four_mean_head_0.5", "head_alone"}
    assert result["fusions"]["four_mean_head_0.5"]["weights"] == pytest.approx({"mel": 1 / 6, "modgd": 1 / 6,
                                                                                "cqt": 1 / 6, "musicnn": 0.5})
    assert result["held"]["own"]["n"] == sum(plan["held_counts"].values())
    assert result["fusions"]["four_mean"]["models"] == ["mel", "modgd", "cqt", "musicnn"]
    # the four models' figure is what the models the experiment made answer, file by file
    labelled = read_labels(split / "held")
    # another regularisation and tagger are fitted and served beside the default's folders
    fitted = json.loads((split / "head-c0.1-musicnn_msd-plus-notes" / "head.json").read_text())
    assert fitted["c"] == 0.1 == result["c"] and [t["file"] for t in fitted["taggers"]] == result["taggers"] == [MSD_MODEL.name]
    assert fitted["train"] == [str(split / "train"), str(notes_dir / "train")] and result["head_extra"] == [str(notes_dir)]
    assert fitted["train_files"] == len(read_labels(split / "train")) + 2
    assert not (split / "head").exists()
    rec = Recognizer(split / "with-head-c0.1-musicnn_msd-plus-notes-s3")
    assert rec.head_stride == 3 == result["head_stride"]
    scores = np.array([rec.predict(p).fused_scores for p, _ in labelled])
    expected = first_right(scores, np.array([CODES.index(c) for _, c in labelled]))
    assert result["held"]["four_mean"]["correct"] == expected["correct"]
    assert "held       four_mean" in capsys.readouterr().out
    shutil.rmtree(split / "onnx")
    assert main(["--split", str(split), "--validation", str(tiny_corpus / "validation")]) == 1
    assert "no exported CNNs" in capsys.readouterr().err


def test_head_variants_weigh_sources_alike_and_project_out_where_they_differ():
    from experiments.head_variants import nuisance_directions, source_weights

    y = np.array([0, 0, 0, 1, 1])
    sources = np.array(["a", "a", "b", "c", "d"])
    w = source_weights(y, sources)
    assert w.mean() == pytest.approx(1.0)
    assert w[:2].sum() == pytest.approx(w[2]) and w[3] == pytest.approx(w[4])  # each source of a class alike
    assert w[:3].sum() / w[3:].sum() == pytest.approx(3 / 2)  # each class as much as its files
    # two classes apart along the first axis, two sources of each apart along the second: the direction that
    # separates the sources is the second axis, and once it is projected out the sources' means coincide
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    sources = np.tile(np.repeat(["p", "q"], 20), 2)
    z = np.zeros((80, 5))
    z[:, 0] = np.where(y == 0, -3.0, 3.0)
    z[:, 1] = np.where(sources == "p", -1.0, 1.0)
    z += 0.01 * rng.standard_normal(z.shape)
    v = nuisance_directions(z, y, sources, 1)
    assert abs(v[0, 1]) > 0.99 and np.linalg.norm(v[0]) == pytest.approx(1.0)
    projected = z - (z @ v.T) @ v
    for c in (0, 1):
        means = [projected[(y == c) & (sources == s)].mean(axis=0) for s in ("p", "q")]
        assert np.abs(means[0] - means[1]).max() < 0.02
    np.testing.assert_allclose(projected[:, 0], z[:, 0], atol=0.02)  # what tells the classes apart is kept


def test_head_variants_tell_apart_classes_a_linear_head_cannot():
    """Two classes on a ring around a third (an XOR of the first two values' signs): the logistic head is at
    chance on fresh samples, the hidden layer learns it; on linearly separable classes every variant is right."""
    from experiments.head_variants import fit_variants

    rng = np.random.default_rng(0)

    def xor(n):
        a = rng.choice([-2.0, 2.0], size=(n, 2))
        x = np.concatenate([a + 0.3 * rng.standard_normal((n, 2)), rng.standard_normal((n, 6))], axis=1)
        return x, (np.sign(a[:, 0]) == np.sign(a[:, 1])).astype(int)

    x, y = xor(600)
    sources = np.where(rng.random(600) < 0.5, "p", "q")
    variants = fit_variants(x, y, sources, np.array([0, 8]), c=1.0, nuisance=(1,), mlp_alphas=(0.01,))
    xt, yt = xor(400)
    right = {name: float(np.mean(predict(xt).argmax(axis=1) == yt)) for name, predict in variants.items()}
    assert right["head"] < 0.65 and right["mlp_0.01"] > 0.95, right
    assert variants["mlp_0.01"](xt).shape == (400, len(CODES))  # every class a column, the unseen ones 0
    separable = rng.standard_normal((600, 8)) + 3.0 * np.eye(8)[y]
    variants = fit_variants(separable, y, sources, np.array([0, 8]), c=1.0, nuisance=(1,), mlp_alphas=(1.0,))
    test = rng.standard_normal((400, 8)) + 3.0 * np.eye(8)[yt]
    for name, predict in variants.items():
        assert np.mean(predict(test).argmax(axis=1) == yt) > 0.95, name


def test_head_variants_on_a_split_of_the_tiny_corpus(tiny_corpus, tmp_path, capsys):
    from experiments.head_variants import main
    from experiments.leave_one_out import split_by_source
    from experiments.pretrained_head import run
    from tests.conftest import REAL_AUDIO

    split = tmp_path / "lolo"
    split_by_source(tiny_corpus, split)
    cache = tmp_path / "cache"
    assert main(["--split", str(split), "--corpus", str(tiny_corpus), "--real-audio", str(REAL_AUDIO),
                 "--cache", str(cache), "--c", "0.1", "--nuisance", "2", "--mlp-alpha", "1",
                 "--out", str(tmp_path / "v.json")]) == 0
    result = json.loads((tmp_path / "v.json").read_text())
    assert set(result["held"]) == {"head", "sources_balanced", "nuisance_2", "lda", "signed_sqrt", "mlp_1",
                                   "head_mlp_1"}  # one tagger: no product
    assert result["real"]["head"]["n"] == 31 and result["sources"] >= 2 * len(result["held"]["head"]["per_class"])
    # the shipped head's figures are experiments.pretrained_head's for the same split
    shipped = run(split, real_audio=REAL_AUDIO, c=0.1, cache=cache)
    assert result["held"]["head"] == shipped["held"]["head"] and result["real"]["head"] == shipped["real"]["head"]
    assert "held       lda" in capsys.readouterr().out
    # a further training folder is fitted on beside the split's train: here the held-out songs themselves
    assert main(["--split", str(split), "--corpus", str(tiny_corpus), "--cache", str(cache), "--c", "0.1",
                 "--nuisance", "", "--mlp-alpha", "", "--extra-train", str(split / "held"),
                 "--out", str(tmp_path / "w.json")]) == 0
    heard = json.loads((tmp_path / "w.json").read_text())
    assert heard["train_files"] == result["train_files"] + result["held"]["head"]["n"]
    assert heard["held"]["head"]["correct"] > result["held"]["head"]["correct"]
    capsys.readouterr()
    # the corpus the split's files link into must be named, and must be a rendered corpus
    assert main(["--split", str(split), "--corpus", str(tmp_path)]) == 1
    assert "corpus.json" in capsys.readouterr().err
