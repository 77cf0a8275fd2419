"""The classifier on musicnn's embedding served beside the CNNs: added to exported models by
``training.retune --head``, run by the recognizer on one patch per window, streamed like the CNNs."""

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from instrec import audio, batch
from instrec.embedding import window_patches
from instrec.fusion import Fusion
from instrec.labels import CODES
from instrec.recognizer import HEAD, ModelError, Recognizer, sha256
from tests.conftest import REAL_AUDIO, tone, tones_and_noise, write
from training import head, retune
from training.datasets import read_any


@pytest.fixture(scope="module")
def fitted_head(tmp_path_factory):
    root = tmp_path_factory.mktemp("head")
    head.export([tones_and_noise(root / "train", 4, seed=0, f0=220)], root / "out")
    return root / "out"


@pytest.fixture(scope="module")
def with_head(tiny_models, tiny_corpus, fitted_head, tmp_path_factory):
    out = tmp_path_factory.mktemp("with-head") / "models"
    assert retune.main(["--models", str(tiny_models), "--validation", str(tiny_corpus / "validation"),
                        "--head", str(fitted_head), "--aggregation", "S1", "--test", str(tiny_corpus / "test"),
                        "--out", str(out)]) == 0
    return out


def test_the_head_joins_the_fusion_as_a_fourth_model_under_the_mean_rule(with_head, tiny_models, fitted_head):
    before = json.loads((tiny_models / "manifest.json").read_text())
    after = json.loads((with_head / "manifest.json").read_text())
    fusion = Fusion.from_dict(after["fusion"])
    assert fusion.models == (*before["fusion"]["models"], HEAD) and fusion.rule == "mean" and fusion.aggregation == "S1"
    info = after["models"][HEAD]
    fitted = json.loads((fitted_head / "head.json").read_text())
    assert info["sha256"] == sha256(with_head / info["file"]) == fitted["sha256"]
    assert info["training"]["train_files"] == fitted["train_files"] == 8
    for rep in before["fusion"]["models"]:  # the CNNs are the same files
        assert sha256(with_head / after["models"][rep]["file"]) == before["models"][rep]["sha256"]
    # the test figures of the served fusion join the manifest's (the app's line under the answer quotes them)
    report = json.loads((with_head / "report.json").read_text())
    served = after["test"]["metrics"]["mel+modgd+cqt+musicnn"]
    assert round(served["f1_micro"], 4) == report["on_test"]["new"]["f1_micro"] and served["n_files"] == 2
    from instrec.app import about_models

    assert f"Micro F1 {served['f1_micro']:.2f} on 2 synthetic test excerpts" in about_models(Recognizer(with_head))
    card = (with_head / "MODEL_CARD.md").read_text()
    assert "musicnn added to the fusion (now mel + modgd + cqt + musicnn), rule and replaced by mean" in card
    assert "aggregation S2 replaced by S1" in card and "--head" in after["fusion_tuning"]["command"]


def test_the_recognizer_serves_the_tuned_decisions_with_the_heads_window_probabilities(with_head, tiny_corpus):
    rec = Recognizer(with_head)
    session = ort.InferenceSession(str(with_head / f"{HEAD}.onnx"), providers=["CPUExecutionProvider"])
    for excerpt in read_any(tiny_corpus / "validation"):
        p = rec.predict(excerpt.path)
        y = audio.load(excerpt.path)
        assert set(p.models) == {"mel", "modgd", "cqt", HEAD}
        # the head's probabilities are its model's on each window's patch (the 3 s around it)
        expected = session.run(["probabilities"], {"mel:0": window_patches(y)})[0]
        assert p.window_probabilities[HEAD].shape == (audio.n_windows(len(y)), len(CODES))
        np.testing.assert_allclose(p.window_probabilities[HEAD], expected, atol=1e-5)
        # the served decision is the tuned one: the mean of the four models' scores over its thresholds
        scores = rec.fusion.file_scores(p.window_probabilities, p.window_levels)
        mean = np.mean([scores[m] for m in rec.fusion.models], axis=0)
        assert p.instruments == [c for c, s, t in zip(CODES, mean, rec.fusion.thresholds["mean"]) if s >= t]
        assert p.models[HEAD] == {c: round(float(s), 4) for c, s in zip(CODES, scores[HEAD])}


def test_a_weighted_head_is_tuned_and_served_with_its_weight(tiny_models, tiny_corpus, fitted_head, with_head, tiny_run,
                                                             tmp_path):
    out = tmp_path / "weighted"
    assert retune.main(["--models", str(tiny_models), "--validation", str(tiny_corpus / "validation"),
                        "--head", str(fitted_head), "--head-weight", "0.4", "--aggregation", "S1",
                        "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fusion"]["weights"] == pytest.approx({"mel": 0.2, "modgd": 0.2, "cqt": 0.2, HEAD: 0.4}, abs=1e-15)
    assert "--head-weight 0.4" in manifest["fusion_tuning"]["command"]
    assert "the mean weighing mel 0.2, modgd 0.2, cqt 0.2, musicnn 0.4" in (out / "MODEL_CARD.md").read_text()
    from training.evaluate import run_evaluation
    from training.model_card import card

    run_evaluation(tiny_run, tiny_corpus / "test", progress=False)
    assert "rule **mean** (weighted: mel 0.2, modgd 0.2, cqt 0.2, musicnn 0.4)" in card(out, tiny_run)
    rec, equal = Recognizer(out), Recognizer(with_head)
    for excerpt in read_any(tiny_corpus / "validation"):
        p = rec.predict(excerpt.path)
        assert p.to_dict()["fusion"]["weights"] == {"mel": 0.2, "modgd": 0.2, "cqt": 0.2, HEAD: 0.4}  # how it was fused
        assert "weights" not in equal.predict(excerpt.path).to_dict()["fusion"]
        scores = rec.fusion.file_scores(p.window_probabilities, p.window_levels)
        weighted = 0.2 * (scores["mel"] + scores["modgd"] + scores["cqt"]) + 0.4 * scores[HEAD]
        assert p.instruments == [c for c, s, t in zip(CODES, weighted, rec.fusion.thresholds["mean"]) if s >= t]
        # the same window probabilities as the equally weighted models: only the fusion differs
        q = equal.predict(excerpt.path)
        for m in p.window_probabilities:
            np.testing.assert_allclose(p.window_probabilities[m], q.window_probabilities[m], atol=1e-6)
    # tuned again without --head-weight, the models keep their weights; with it, models that have the head
    # are weighed anew
    val = str(tiny_corpus / "validation")
    assert retune.main(["--models", str(out), "--validation", val, "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "manifest.json").read_text())["fusion"]
    assert again["weights"] == manifest["fusion"]["weights"]
    assert retune.main(["--models", str(with_head), "--validation", val, "--head-weight", "0.7",
                        "--out", str(tmp_path / "reweighed")]) == 0
    reweighed = json.loads((tmp_path / "reweighed" / "manifest.json").read_text())["fusion"]
    assert reweighed["weights"] == pytest.approx({"mel": 0.1, "modgd": 0.1, "cqt": 0.1, HEAD: 0.7}, abs=1e-15)


def test_a_head_with_a_stride_is_tuned_and_served_one_patch_per_three_windows(with_head, tiny_corpus, tmp_path):
    val = str(tiny_corpus / "validation")
    out = tmp_path / "strided"
    assert retune.main(["--models", str(with_head), "--validation", val, "--head-stride", "3", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["models"][HEAD]["stride"] == 3 and "--head-stride 3" in manifest["fusion_tuning"]["command"]
    card = (out / "MODEL_CARD.md").read_text()
    assert "the musicnn head hearing one patch per 3 windows (before: one per window)" in card
    # a 10.4 s file: 10 windows, patches of windows 1, 4, 7 and 9 (the last group, window 9 alone)
    y = np.concatenate([tone(330.0, 5.0), tone(196.0, 5.4)])
    path = write(tmp_path / "ten.wav", y)
    session = ort.InferenceSession(str(out / f"{HEAD}.onnx"), providers=["CPUExecutionProvider"])
    every = session.run(["probabilities"], {"mel:0": window_patches(audio.load(path))})[0]
    served = Recognizer(out).predict(path)
    assert len(served.window_probabilities[HEAD]) == audio.n_windows(len(y)) == 10
    np.testing.assert_allclose(served.window_probabilities[HEAD], every[[1, 1, 1, 4, 4, 4, 7, 7, 7, 9]], atol=1e-5)
    streamed = Recognizer(out, whole_file_s=5, chunk_windows=4, stream_chunk_windows=4).predict(path)
    np.testing.assert_allclose(streamed.window_probabilities[HEAD], served.window_probabilities[HEAD], atol=1e-5)
    # the served decision is the tuned fusion's on those probabilities
    fusion = Fusion.from_dict(manifest["fusion"])
    decided = fusion.decide(fusion.file_scores(served.window_probabilities, served.window_levels))
    assert served.instruments == [c for c, d in zip(CODES, decided) if d]
    # tuned again without --head-stride, the stride stays
    assert retune.main(["--models", str(out), "--validation", val, "--out", str(tmp_path / "again")]) == 0
    assert json.loads((tmp_path / "again" / "manifest.json").read_text())["models"][HEAD]["stride"] == 3
    # models from before strides (no stride in the manifest) hear a patch per window; a stride it cannot serve
    # is a clear error
    def with_stride(name: str, stride: int | None) -> Path:
        other = tmp_path / name
        shutil.copytree(out, other)
        m = json.loads((other / "manifest.json").read_text())
        m["models"][HEAD].pop("stride")
        if stride is not None:
            m["models"][HEAD]["stride"] = stride
        (other / "manifest.json").write_text(json.dumps(m))
        return other

    before = Recognizer(with_stride("before", None))
    assert before.head_stride == 1
    np.testing.assert_allclose(before.predict(path).window_probabilities[HEAD], every, atol=1e-5)
    with pytest.raises(ModelError, match="the musicnn head's stride: a patch serves 1 to 3 windows, not 5"):
        Recognizer(with_stride("five", 5))


@pytest.mark.parametrize("extra, message", [
    (["--head-weight", "0.4"], "give --head too, or models that have it"),
    (["--head", "HEAD", "--head-weight", "1"], "between 0 and 1"),
    (["--head", "HEAD", "--head-weight", "0"], "between 0 and 1"),
    (["--head-stride", "3"], "--head-stride is the musicnn head's: give --head too"),
    (["--head", "HEAD", "--head-stride", "4"], "a patch serves 1 to 3 windows, not 4"),
])
def test_bad_head_weights_are_refused_before_anything_is_written(tiny_models, tiny_corpus, fitted_head, tmp_path,
                                                                 capsys, extra, message):
    extra = [str(fitted_head) if word == "HEAD" else word for word in extra]
    assert retune.main(["--models", str(tiny_models), "--validation", str(tiny_corpus / "validation"), *extra,
                        "--out", str(tmp_path / "out")]) == 1
    assert message in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_a_streamed_long_file_gets_the_heads_answer_of_the_whole_file(with_head, tmp_path):
    rng = np.random.default_rng(3)
    y = np.concatenate([tone(330.0, 7.3), 0.2 * rng.standard_normal(6 * 22050).astype(np.float32), tone(196.0, 5.0)])
    path = write(tmp_path / "long.wav", y)
    whole = Recognizer(with_head).predict(path)
    streamed = Recognizer(with_head, whole_file_s=5, chunk_windows=4, stream_chunk_windows=4).predict(path)
    assert len(whole.window_probabilities[HEAD]) == audio.n_windows(len(y)) == 18
    for rep in whole.window_probabilities:  # 1e-5: the same patches in other arrays, through other batches
        np.testing.assert_allclose(streamed.window_probabilities[rep], whole.window_probabilities[rep], atol=1e-5)
    assert streamed.instruments == whole.instruments
    # the tones are the tones' class to the head, the noise the noise's (it was fitted on nothing else)
    top = whole.window_probabilities[HEAD].argmax(axis=1)
    assert CODES[top[3]] == "pia" and CODES[top[10]] == "org"


def test_batch_rows_keep_the_heads_scores(with_head, tiny_corpus):
    answer = Recognizer(with_head).predict(next(iter(read_any(tiny_corpus / "validation"))).path).to_dict()
    row = batch.to_row(answer, "/x/a.wav", 1, 2, "f")
    assert row[f"scores_{HEAD}"] == [answer["models"][HEAD][c] for c in CODES]
    assert batch.from_row(row)["models"] == answer["models"]


def test_bad_heads_and_rules_are_refused_before_anything_is_scored(with_head, tiny_models, tiny_corpus, fitted_head,
                                                                   tmp_path, capsys):
    val = str(tiny_corpus / "validation")
    assert retune.main(["--models", str(tiny_models), "--validation", val, "--head", str(tmp_path),
                        "--out", str(tmp_path / "a")]) == 1
    assert "no head.onnx and head.json" in capsys.readouterr().err
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "head.onnx").write_bytes((fitted_head / "head.onnx").read_bytes() + b"\0")
    (changed / "head.json").write_text((fitted_head / "head.json").read_text())
    assert retune.main(["--models", str(tiny_models), "--validation", val, "--head", str(changed),
                        "--out", str(tmp_path / "b")]) == 1
    assert "sha256 is not the one head.json records" in capsys.readouterr().err
    assert retune.main(["--models", str(tiny_models), "--validation", val, "--head", str(fitted_head), "--rule", "and",
                        "--out", str(tmp_path / "c")]) == 1
    assert "rule 'and' is not one for 4 models" in capsys.readouterr().err
    assert retune.main(["--models", str(with_head), "--validation", val, "--head", str(fitted_head),
                        "--out", str(tmp_path / "d")]) == 1
    assert "already has a musicnn head" in capsys.readouterr().err
    assert not any((tmp_path / k).exists() for k in "abcd")


def test_a_manifest_naming_an_unknown_model_is_a_clear_error(with_head, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    manifest = json.loads((with_head / "manifest.json").read_text())
    for info in manifest["models"].values():
        (other / info["file"]).write_bytes((with_head / info["file"]).read_bytes())
    manifest["models"]["yamnet"] = manifest["models"].pop(HEAD)
    manifest["fusion"]["models"][-1] = "yamnet"
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(Exception, match="unknown model 'yamnet'"):
        Recognizer(other)


def test_the_model_card_describes_the_head_and_how_the_fusion_was_tuned(with_head, tiny_run, tiny_corpus, tmp_path):
    from training.evaluate import run_evaluation
    from training.model_card import card
    from training.real_audio import check_real_audio

    run_evaluation(tiny_run, tiny_corpus / "test", progress=False)
    check = tmp_path / "real.json"
    check.write_text(json.dumps(check_real_audio(with_head, REAL_AUDIO)))
    text = card(with_head, tiny_run, check)
    real = json.loads(check.read_text())
    assert f"{HEAD} {real['top1_share_per_model'][HEAD]:.0%}" in text  # beside each CNN alone
    assert "A fourth model, `musicnn`" in text and "ISC licence" in text and "8 excerpts of" in text
    assert "## Thresholds tuned again" in text and "python -m training.retune --models" in text
    assert "python -m training.head --train" in text
    assert f"**{real['top1_correct']} of 31" in text
    assert "| musicnn |" not in text  # not a row of the CNNs' table
    assert "rule **mean**, window" in text  # every model the same: no weights to name
    assert "`musicnn_mtt.onnx` (trained on the real song excerpts of MagnaTagATune)" in text
    # how the head hears a file: a patch per window, or per group of windows with a stride
    from training.model_card import head_section

    assert "It hears the 3 seconds around each 1-second window" in text
    strided = json.loads((with_head / "manifest.json").read_text())
    strided["models"][HEAD]["stride"] = 3
    assert "It hears one 3-second patch per group of 3 one-second windows" in "\n".join(head_section(strided))
    # every library is credited: the songs', and one that only the head's training heard, in the head's words
    from training.model_card import head_only_libraries

    assert strided["training_data"]["synthetic_corpus"]["libraries"] == ["tonejs-flute"] and "- `tonejs-flute`: " in text
    assert head_only_libraries(strided) == [] and "also heard" not in text
    strided["models"][HEAD]["training"]["libraries"] = ["sinsy-f001", "tonejs-flute"]
    assert head_only_libraries(strided) == ["sinsy-f001"]
    assert ("The head alone also heard `sinsy-f001`: female singer's voice model NIT SONG070 F001"
            in "\n".join(head_section(strided)))
    # three taggers are named in a list, each with what it was trained on
    strided["models"][HEAD]["training"]["taggers"] = [
        {"file": f} for f in ("musicnn_mtt.onnx", "musicnn_msd.onnx", "musicnn_mtt_vgg.onnx")]
    assert ("the models `musicnn_mtt.onnx` (trained on the real song excerpts of MagnaTagATune), `musicnn_msd.onnx` "
            "(trained on the real songs of the Million Song Dataset) and `musicnn_mtt_vgg.onnx` (trained on the real "
            "song excerpts of MagnaTagATune; musicnn's VGG network), side by side") in "\n".join(head_section(strided))

    # refreshed after the fusion changes, without the training run: the card made from the run comes back,
    # but for the line that says how it was made, and a changed real-recording check is what it then says
    from training.model_card import main, refresh

    (with_head / "MODEL_CARD.md").write_text(text)
    again = refresh(with_head, check)
    made_by = [line for line in text.split("\n") if line.startswith("python -m training.model_card")]
    assert again.split("\n") == [f"python -m training.model_card --models {with_head} --refresh --real-audio {check}"
                                 if line in made_by else line for line in text.split("\n")]
    changed = json.loads(check.read_text())
    changed["top1_correct"] = 3
    check.write_text(json.dumps(changed))
    refreshed = refresh(with_head, check)
    assert "**3 of 31" in refreshed and f"**{real['top1_correct']} of 31" not in refreshed
    assert refreshed.split("```")[-1] == text.split("```")[-1]  # the run's times and versions, kept
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "manifest.json").write_text((with_head / "manifest.json").read_text())
    (plain / "MODEL_CARD.md").write_text("# some other card\n")
    assert main(["--models", str(plain), "--refresh", "--real-audio", str(check)]) == 1
    assert main(["--models", str(tmp_path / "none"), "--refresh", "--real-audio", str(check)]) == 1
    (with_head / "MODEL_CARD.md").write_text(text)


def test_quantising_models_with_the_head_keeps_it_in_float(with_head, tiny_corpus, tmp_path, capsys):
    from training import quantize

    out = tmp_path / "int8"
    assert quantize.main(["--models", str(with_head), "--corpus", str(tiny_corpus), "--out", str(out),
                          "--calibration-files", "4"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert {rep: m["precision"] for rep, m in manifest["models"].items()} == {
        "mel": "int8", "modgd": "int8", "cqt": "int8", HEAD: "fp32"}
    assert sha256(out / f"{HEAD}.onnx") == manifest["models"][HEAD]["sha256"] == sha256(with_head / f"{HEAD}.onnx")
    y = np.concatenate([tone(262, 2.0), tone(440, 2.0)])
    p32, p8 = (Recognizer(m).predict(y, 22050).window_probabilities for m in (with_head, out))
    np.testing.assert_array_equal(p8[HEAD], p32[HEAD])  # the same float model on the same patches
    assert not np.array_equal(p8["mel"], p32["mel"])

    # --reuse: the int8 CNNs of that quantisation taken as they are, no calibration; the head and the
    # thresholds the fp32 models' own; both precisions scored again
    again = tmp_path / "int8-again"
    assert quantize.main(["--models", str(with_head), "--corpus", str(tiny_corpus), "--out", str(again),
                          "--reuse", str(out)]) == 0
    reused = json.loads((again / "manifest.json").read_text())
    for rep in ("mel", "modgd", "cqt"):
        assert (again / f"{rep}.onnx").read_bytes() == (out / f"{rep}.onnx").read_bytes()
        assert reused["models"][rep]["fp32_sha256"] == sha256(with_head / f"{rep}.onnx")
    assert reused["quantization"]["reused_from"] == str(out) and reused["parity"]["int8_vs_fp32"]["validation"]
    # a folder whose CNN was quantised from another fp32 model is refused before anything is written
    other = tmp_path / "other-int8"
    shutil.copytree(out, other)
    changed = json.loads((other / "manifest.json").read_text())
    changed["models"]["mel"]["fp32_sha256"] = "0" * 64
    (other / "manifest.json").write_text(json.dumps(changed))
    assert quantize.main(["--models", str(with_head), "--corpus", str(tiny_corpus), "--out", str(tmp_path / "no"),
                          "--reuse", str(other)]) == 1
    assert not (tmp_path / "no").exists()
    del changed["models"]["mel"]["fp32_sha256"]  # an older record: compared field by field
    changed["models"]["mel"]["best_val_loss"] += 1
    (other / "manifest.json").write_text(json.dumps(changed))
    assert quantize.main(["--models", str(with_head), "--corpus", str(tiny_corpus), "--out", str(tmp_path / "no"),
                          "--reuse", str(other)]) == 1
    # an int8 CNN of the earlier rule, which named only the first convolution and the dense layers: onnxruntime
    # runs that convolution as an integer one all the same, so it is refused, and the error says so
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    older = tmp_path / "older-int8"
    shutil.copytree(out, older)
    graph = onnx.load(str(with_head / "mel.onnx")).graph
    nodes = graph.node
    first_and_dense = [n.name for n in nodes if n.op_type == "Conv"][:1] + [n.name for n in nodes if n.op_type == "Gemm"]
    windows = quantize.calibration_windows(tiny_corpus, manifest, 4)["mel"]
    quantize_static(str(with_head / "mel.onnx"), str(older / "mel.onnx"), quantize._Reader(graph.input[0].name, windows),
                    quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, nodes_to_exclude=first_and_dense)
    assert first_and_dense[0] in quantize.integer_nodes(older / "mel.onnx")
    old_rule = json.loads((older / "manifest.json").read_text())
    old_rule["models"]["mel"].update(sha256=sha256(older / "mel.onnx"), float_nodes=first_and_dense)
    (older / "manifest.json").write_text(json.dumps(old_rule))
    assert quantize.main(["--models", str(with_head), "--corpus", str(tiny_corpus), "--out", str(tmp_path / "no"),
                          "--reuse", str(older)]) == 1
    assert "integer operators" in capsys.readouterr().err and not (tmp_path / "no").exists()


def test_fusion_candidates_are_tuned_on_the_same_windows_and_scored_as_served(with_head, tiny_models, tiny_corpus,
                                                                               capsys, tmp_path):
    from experiments import fusion_candidates
    from training.real_audio import check_real_audio

    assert fusion_candidates.main(["--models", str(with_head), "--validation", str(tiny_corpus / "validation"),
                                   "--test", str(tiny_corpus / "test"), "--real-audio", str(REAL_AUDIO),
                                   "--mixtures", "4", "--head-weight", "0.4", "--head-weight", "0.6",
                                   "--out", str(tmp_path / "c.json")]) == 0
    rows = json.loads((tmp_path / "c.json").read_text())["candidates"]
    assert {"head_weighted_0.4_S1", "head_weighted_0.6_S1"} <= set(rows)
    assert len(rows) == 10 and all(set(r) == {"validation", "test", "real", "mixtures"} for r in rows.values())
    # the CNNs' own fusion is the CNN-only models' answer; the four's mean with S1, tuned on the same
    # validation songs, is the fusion the retune made
    assert rows["cnns_own"]["real"]["right_first"] == check_real_audio(tiny_models, REAL_AUDIO)["top1_correct"]
    assert rows["four_mean_S1"]["real"]["right_first"] == check_real_audio(with_head, REAL_AUDIO)["top1_correct"]
    rec = Recognizer(with_head)
    paths, y = retune.labelled_files([tiny_corpus / "validation"])
    from training.quantize import window_scores

    val = window_scores(rec, paths, "validation")
    tuned = fusion_candidates.candidates(Fusion.from_dict(rec.manifest["fusion_tuning"]["previous_fusion"]), val, y)
    assert tuned["four_mean_S1"] == rec.fusion
    # the head added to the CNNs' "and" keeps their thresholds and can only take instruments away
    added, before = tuned["cnns_and_head_added"], tuned["cnns_own"]
    assert all(added.thresholds[m] == before.thresholds[m] for m in before.models)
    scores = val.file_scores(before.aggregation, before.quiet_db)
    assert not (added.decide(scores) & ~before.decide(scores)).any()
    assert "four_mean_S1" in capsys.readouterr().out
    assert fusion_candidates.main(["--models", str(tiny_models), "--validation", str(tiny_corpus / "validation"),
                                   "--test", str(tiny_corpus / "test"), "--real-audio", str(REAL_AUDIO)]) == 1
    assert "no musicnn head in the fusion" in capsys.readouterr().err
