"""The export step on tiny trained models: files, manifest, checks, and failure without damage."""

import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from instrec.fusion import AGGREGATIONS, RULES
from instrec.labels import CODES
from instrec.recognizer import sha256
from tests.conftest import ROOT
from training.checkpoints import load_checkpoint


def test_files_and_manifest(tiny_models, tiny_run):
    manifest = json.loads((tiny_models / "manifest.json").read_text())
    assert manifest["classes"] == list(CODES)
    assert manifest["fusion"]["rule"] in RULES and manifest["fusion"]["aggregation"] in AGGREGATIONS
    assert manifest["feature_params"]["sample_rate"] == 22050
    tuned = json.loads((tiny_run / "thresholds.json").read_text())
    assert manifest["validation"]["metrics"] == {k: v["validation"] for k, v in tuned["best_per_config"].items()}
    assert manifest["fusion"] == tuned["fusion"]
    assert "synthetic_corpus" in manifest["training_data"]
    assert set(manifest["versions"]) >= {"instrec", "torch", "onnx", "onnxruntime", "opset"}
    for rep in ("mel", "modgd", "cqt"):
        info = manifest["models"][rep]
        path = tiny_models / info["file"]
        assert info["max_hz"] is None and info["training"]["augment"] == [] and info["training"]["lr"] == 1e-3
        assert info["sha256"] == sha256(path)
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
        assert model.opset_import[0].version >= 17
        dims = model.graph.input[0].type.tensor_type.shape.dim
        assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == list(info["input_shape"][1:])


def test_onnx_equals_pytorch_for_any_batch(tiny_models, tiny_run):
    rng = np.random.default_rng(5)
    for rep, bins in (("mel", 128), ("modgd", 128), ("cqt", 36)):
        model = load_checkpoint(tiny_run / rep / "best.pt").model
        session = ort.InferenceSession(str(tiny_models / f"{rep}.onnx"), providers=["CPUExecutionProvider"])
        for n in (1, 5, 37):
            x = rng.standard_normal((n, 1, bins, 100)).astype(np.float32)
            with torch.inference_mode():
                expected = model(torch.from_numpy(x)).numpy()
            np.testing.assert_allclose(session.run(None, {"windows": x})[0], expected, atol=1e-4)


def test_an_exported_cnn_is_a_checkpoint_to_fine_tune(tiny_models, tiny_run, tiny_corpus, tmp_path):
    """The ONNX files hold the weights under the state dict's names: rebuilt from them (and the manifest),
    each CNN is its checkpoint exactly, and training starts from it as from the checkpoint."""
    from training.export import epochs_before
    from training.train import train

    for rep in ("mel", "modgd", "cqt"):
        rebuilt, saved = load_checkpoint(tiny_models / f"{rep}.onnx"), load_checkpoint(tiny_run / rep / "best.pt")
        assert rebuilt.model.kwargs == saved.model.kwargs and rebuilt.params == saved.params
        mine, theirs = rebuilt.model.state_dict(), saved.model.state_dict()
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    summary = train(tiny_corpus, "mel", tmp_path / "ft", epochs=1, batch_size=16, workers=1, progress=False,
                    init=tiny_models / "mel.onnx")
    assert len(summary["history"]) == 1
    tuned = load_checkpoint(tmp_path / "ft" / "mel" / "best.pt")
    assert tuned.meta["training_args"]["init"] == str(tiny_models / "mel.onnx")
    assert tuned.meta["training_args"]["init_sha256"] == sha256(tiny_models / "mel.onnx")
    assert epochs_before(tuned.meta) == 1  # the exported model's epoch, counted from its manifest
    # the input statistics come with the weights, not from the new data
    assert torch.equal(tuned.model.mean, load_checkpoint(tiny_run / "mel" / "best.pt").model.mean)
    # refused: a model without its manifest, and a quantised model (its weights are not the float ones)
    (tmp_path / "alone").mkdir()
    shutil.copy(tiny_models / "mel.onnx", tmp_path / "alone" / "mel.onnx")
    with pytest.raises(ValueError, match="no manifest.json"):
        load_checkpoint(tmp_path / "alone" / "mel.onnx")
    with pytest.raises(ValueError, match="cannot be rebuilt for training"):
        load_checkpoint(ROOT / "instrec" / "models" / "int8" / "mel.onnx")


def test_export_fails_cleanly_without_thresholds(tiny_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "mel").symlink_to(tiny_run / "mel")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "export/to_onnx.py", "--run", str(run), "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "thresholds.json not found" in proc.stderr
    assert not out.exists()


def test_model_card_from_files(tiny_models, tiny_run, tiny_corpus):
    from training.evaluate import run_evaluation
    from training.model_card import card

    run_evaluation(tiny_run, tiny_corpus / "test", progress=False)
    text = card(tiny_models, tiny_run)
    manifest = json.loads((tiny_models / "manifest.json").read_text())
    assert manifest["models"]["mel"]["sha256"][:16] in text
    assert "synthetic" in text and "0.648 / 0.561" in text
    assert "| mel+modgd+cqt |" in text
    assert "windows more than 30 dB under a file's loudest are left out of its scores" in text
    # the tiny corpus is rendered with the default recording chain: nothing said of clipping or the rig
    assert manifest["training_data"]["synthetic_corpus"]["clipping"] == 0.0
    assert "clipped" not in text and "--guitar-rig" not in text


def test_model_card_names_the_recording_options_a_corpus_was_rendered_with():
    from training.model_card import recording_text

    assert recording_text({"clipping": 0.0, "guitar_rig": "tanh"}) == ""
    assert recording_text({}) == ""  # corpora rendered before the options existed
    assert recording_text({"clipping": 0.3, "guitar_rig": "amps"}) == (
        "; 30% of its excerpts clipped (`--clipping 0.3`); electric guitars through `--guitar-rig amps`")


def test_model_card_names_what_a_cnn_started_from():
    from training.model_card import started_from

    assert started_from({"init": None}) == "scratch"
    assert started_from({"init": "runs/a/mel/best.pt"}) == "`runs/a/mel/best.pt`"  # runs before the sha256
    assert started_from({"init": "runs/cnn/mel.onnx", "init_sha256": "ab" * 32}) == (
        "`runs/cnn/mel.onnx` (sha256 `abababababababab...`)")


def test_real_audio_check_agrees_between_onnx_and_checkpoint(tiny_models, tiny_run, recognizer, tmp_path):
    from tests.conftest import REAL_AUDIO
    from training.real_audio import check_checkpoints, check_real_audio

    exported = check_real_audio(tiny_models, REAL_AUDIO)
    assert exported["n"] == len(exported["clips"]) > 0
    assert exported["top1_correct"] == sum(c["top"] == c["label"] for c in exported["clips"])
    assert all(1 <= c["rank"] <= 11 for c in exported["clips"])
    # the PyTorch checkpoint and its ONNX export pick the same top instrument on every real clip
    # whose two best mel scores are more than 1e-4 apart (the two differ by < 1e-6 per score,
    # see test_onnx_equals_pytorch_for_any_batch)
    name = str(tiny_run / "mel" / "best.pt")
    ckpt = check_checkpoints([tiny_run / "mel" / "best.pt"], REAL_AUDIO)[name]
    assert ckpt["n"] == exported["n"]
    compared = 0
    for c in exported["clips"]:
        scores = np.sort(recognizer.predict(REAL_AUDIO / c["file"]).model_scores["mel"])
        if scores[-1] - scores[-2] > 1e-4:
            assert ckpt["top"][c["file"]] == c["top_per_model"]["mel"], c["file"]
            compared += 1
    assert compared >= len(exported["clips"]) // 2
    # by recording: labels.csv's recording column groups the 31 clips into 4 clarinet and 2 voice tracks
    groups = {}
    for c in exported["clips"]:
        groups.setdefault(c["recording"], []).append(c["top"] == c["label"])
    assert exported["n_recordings"] == len(groups) == 6
    assert sorted(len(g) for g in groups.values()) == [1, 2, 2, 5, 5, 16]
    assert exported["recordings_right"] == sum(2 * sum(g) > len(g) for g in groups.values())
    assert exported["recording_share"] == pytest.approx(np.mean([np.mean(g) for g in groups.values()]))
    (tmp_path / "a.flac").write_bytes((REAL_AUDIO / exported["clips"][0]["file"]).read_bytes())
    with pytest.raises(FileNotFoundError, match="labels.csv"):
        check_real_audio(tiny_models, tmp_path)
    (tmp_path / "b.flac").write_bytes((REAL_AUDIO / exported["clips"][-1]["file"]).read_bytes())
    (tmp_path / "labels.csv").write_text("file,label\na.flac,cla\nb.flac,voi\n")
    alone = check_real_audio(tiny_models, tmp_path)  # no recording column: every clip is its own recording
    assert alone["n_recordings"] == 2 and alone["recording_share"] == alone["top1_share"]
    assert alone["recordings_right"] == alone["top1_correct"]


def test_real_audio_scores_the_mean_of_checkpoints(tiny_run):
    from tests.conftest import REAL_AUDIO
    from training.real_audio import check_checkpoints, main, read_labels

    mel, modgd = tiny_run / "mel" / "best.pt", tiny_run / "modgd" / "best.pt"
    result = check_checkpoints([mel, modgd], REAL_AUDIO, mean=True)
    assert set(result) == {str(mel), str(modgd), "mean"}
    a, b, m = (result[k]["scores"] for k in (str(mel), str(modgd), "mean"))
    for f in m:  # the ensemble's clip scores are the mean of the two models' (each stored to 1e-6)
        np.testing.assert_allclose(m[f], (np.array(a[f]) + np.array(b[f])) / 2, atol=1.5e-6)
        assert result["mean"]["top"][f] == CODES[int(np.argmax(m[f]))]
    assert result["mean"]["top1_correct"] == sum(result["mean"]["top"][f] == lab for f, lab in
                                                 ((p.name, lab) for p, lab in read_labels(REAL_AUDIO)))
    assert set(check_checkpoints([mel], REAL_AUDIO, mean=True)) == {str(mel)}  # one model: nothing to average
    assert main(["--data", str(REAL_AUDIO), "--checkpoint", str(mel), "--checkpoint", str(modgd), "--mean"]) == 0


def test_real_audio_reads_training_layouts_and_low_passes(tiny_corpus):
    from tests.conftest import tone
    from training.datasets import read_training
    from training.real_audio import lowpass, read_labels

    clips = read_labels(tiny_corpus / "train")  # no labels.csv: each file labelled by its class folder
    assert len(clips) == len(read_training(tiny_corpus / "train"))
    assert all(path.parent.name == label for path, label in clips)
    # a 6th-order low-pass at 4 kHz keeps 500 Hz (within 0.1 dB) and takes 8 kHz down by over 30 dB
    # (36 dB per octave from the corner), after the filter's first 0.1 s
    rms = lambda y: float(np.sqrt(np.mean(y[2205:] ** 2)))
    low, high = tone(500, 1.0), tone(8000, 1.0)
    assert abs(20 * np.log10(rms(lowpass(low, 4000, 22050)) / rms(low))) < 0.1
    assert 20 * np.log10(rms(lowpass(high, 4000, 22050)) / rms(high)) < -30
    assert lowpass(low, None, 22050) is low


def test_mixtures_of_known_tones(tmp_path):
    from tests.conftest import tone, write
    from training.real_audio import MIX_GAIN_DB, mixtures

    # three sines labelled as three instruments, of three lengths and levels
    tones = {"flu": (440.0, 2.0, 0.5), "vio": (1000.0, 1.5, 0.05), "cel": (2500.0, 3.0, 0.9)}
    rows = ["file,label"]
    for code, (hz, seconds, amp) in tones.items():
        write(tmp_path / f"{code}.wav", tone(hz, seconds, amp=amp))
        rows.append(f"{code}.wav,{code}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    mixes = mixtures(tmp_path, 20, seed=3)
    assert len(mixes) == 20 and {len(labels) for _, labels, _ in mixes} == {2, 3}
    for name, labels, y in mixes:
        assert labels == sorted(set(labels)) and name.count("+") == len(labels) - 1
        assert len(y) == round(22050 * min(tones[c][1] for c in labels))  # cut to the shortest clip
        # each tone is brought to unit RMS, then 0 to -6 dB: its spectral peak is within 6 dB of the
        # loudest one's (0.1 dB for the Hann window's scalloping, the tones sitting between bins)
        spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
        freqs = np.fft.rfftfreq(len(y), 1 / 22050)
        peaks = {c: 20 * np.log10(spectrum[np.abs(freqs - tones[c][0]) < 20].max()) for c in labels}
        assert max(peaks.values()) - min(peaks.values()) <= MIX_GAIN_DB + 0.1, (name, peaks)
        absent = [c for c in tones if c not in labels]
        for c in absent:  # nothing at a tone that was not mixed (>60 dB down)
            assert 20 * np.log10(spectrum[np.abs(freqs - tones[c][0]) < 20].max()) < min(peaks.values()) - 60
    again = mixtures(tmp_path, 20, seed=3)
    assert [n for n, _, _ in again] == [n for n, _, _ in mixes]
    assert all(np.array_equal(a[2], b[2]) for a, b in zip(again, mixes))
    assert [n for n, _, _ in mixtures(tmp_path, 20, seed=4)] != [n for n, _, _ in mixes]
    with pytest.raises(ValueError, match="at least 1"):
        mixtures(tmp_path, 0)
    (tmp_path / "labels.csv").write_text("file,label\nflu.wav,flu\n")
    with pytest.raises(ValueError, match="at least two instruments"):
        mixtures(tmp_path, 3)


def test_real_clips_surrounded_by_silence_or_noise(tiny_models, capsys):
    """``--surround S`` puts S seconds of silence (or white noise ``--surround-db`` under the clip's peak)
    on both sides of every clip, at the level asked; the check then asks about the same clips."""
    from tests.conftest import REAL_AUDIO
    from training.real_audio import check_real_audio, main, surrounded

    rng = np.random.default_rng(0)
    y = np.ones(100, np.float32)
    silent = surrounded(y, 0.5, None, rng, 1000)
    assert len(silent) == 1100 and not silent[:500].any() and not silent[600:].any() and silent[500:600].all()
    noisy = surrounded(y, 10.0, -40.0, rng, 1000)
    rms_db = 10 * np.log10(np.mean(np.square(noisy[:10_000], dtype=np.float64)))
    assert rms_db == pytest.approx(-40.0, abs=0.1)  # 10 000 samples: the RMS is within 0.05 dB of the asked
    plain, around = check_real_audio(tiny_models, REAL_AUDIO), check_real_audio(tiny_models, REAL_AUDIO, 2.0)
    assert plain["n"] == around["n"] == 31 and [c["file"] for c in plain["clips"]] == [c["file"] for c in around["clips"]]
    assert main(["--models", str(tiny_models), "--data", str(REAL_AUDIO), "--surround", "1", "--surround-db", "-50"]) == 0
    for bad in (["--surround-db", "-50"], ["--surround", "1", "--record"], ["--surround", "1", "--mixtures", "2"]):
        with pytest.raises(SystemExit):
            main(["--models", str(tiny_models), "--data", str(REAL_AUDIO), *bad])
    assert main(["--models", str(tiny_models), "--data", str(REAL_AUDIO), "--surround", "1", "--surround-db", "3"]) == 2
    assert "a level under 0 dB" in capsys.readouterr().err


def test_real_clips_with_the_defects_of_amateur_recordings(tiny_models, capsys):
    """``--defect``: each defect does what it says on a signal with a known answer (a 440 Hz sine of peak
    1), and the check runs with several in a row; malformed ones are refused before any model runs."""
    from tests.conftest import REAL_AUDIO
    from training.real_audio import main, with_defect

    sr = 22050
    y = np.sin(2 * np.pi * 440 * np.arange(sr) / sr).astype(np.float32)
    clipped = with_defect(y, "clip", 6.0, sr)  # x2 into full scale: |2 sin| >= 1 for 2/3 of the time
    assert np.abs(clipped).max() == 1.0 and np.mean(np.abs(clipped) == 1.0) == pytest.approx(2 / 3, abs=0.01)
    hum = with_defect(y, "hum", -20.0, sr) - y  # 50, 100, 150 Hz, 20 dB under the sine's RMS
    assert 10 * np.log10(np.mean(hum.astype(np.float64) ** 2) / 0.5) == pytest.approx(-20.0, abs=0.01)
    spectrum = np.abs(np.fft.rfft(hum))  # 1 Hz bins: the hum's partials and nothing else
    assert set(np.argsort(spectrum)[-3:]) == {50, 100, 150}
    high = np.sin(2 * np.pi * 6000 * np.arange(sr) / sr).astype(np.float32)
    assert np.abs(with_defect(high, "lowpass", 3400.0, sr)[sr // 2 :]).max() < 0.01  # 6 kHz: over 50 dB down
    assert np.mean(with_defect(y, "dc", 0.3, sr)) == pytest.approx(0.3, abs=1e-3)
    assert np.array_equal(with_defect(y, "first", 0.25, sr), y[: sr // 4])  # a quarter of a second, the start
    assert main(["--models", str(tiny_models), "--data", str(REAL_AUDIO), "--defect", "clip:6",
                 "--defect", "hum:-30", "--surround", "1"]) == 0
    for bad in ("clip", "clip:x", "clip:-3", "hum:10", "reverb:3", "lowpass:0", "first:0"):
        with pytest.raises(SystemExit):
            main(["--models", str(tiny_models), "--data", str(REAL_AUDIO), "--defect", bad])
    assert "expected KIND:VALUE" in capsys.readouterr().err
    # a cut under the recognizer's minimum is refused by it, so the check asks for the minimum to be lifted
    with pytest.raises(SystemExit):
        main(["--models", str(tiny_models), "--data", str(REAL_AUDIO), "--defect", "first:0.1"])
    assert "--min-seconds 0" in capsys.readouterr().err
    assert main(["--models", str(tiny_models), "--data", str(REAL_AUDIO), "--defect", "first:0.1",
                 "--min-seconds", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 31


def test_real_mixtures_and_answered_sets(tiny_models, capsys):
    from tests.conftest import REAL_AUDIO
    from training.real_audio import check_mixtures, check_real_audio, main

    def micro_f1(truth, answered):  # by hand: 2 tp / (2 tp + fp + fn)
        tp = sum(len(set(t) & set(a)) for t, a in zip(truth, answered))
        wrong = sum(len(set(t) ^ set(a)) for t, a in zip(truth, answered))
        return 2 * tp / (2 * tp + wrong)

    result = check_mixtures(tiny_models, REAL_AUDIO, 4, seed=1)
    rows = result["mixtures"]
    assert result["n"] == len(rows) == 4
    assert all(r["labels"] == ["cla", "voi"] for r in rows)  # the clips are of two instruments only
    assert result["answered_f1_micro"] == pytest.approx(micro_f1([r["labels"] for r in rows],
                                                                 [r["present"] for r in rows]))
    assert result["top_among_true"] == sum(r["top"] in r["labels"] for r in rows) / 4
    assert result["recall"]["cla"] == {"answered": sum("cla" in r["present"] for r in rows), "n": 4}
    solos = check_real_audio(tiny_models, REAL_AUDIO)
    assert solos["answered_f1_micro"] == pytest.approx(micro_f1([[c["label"]] for c in solos["clips"]],
                                                                [c["present"] for c in solos["clips"]]))
    assert main(["--models", str(tiny_models), "--data", str(REAL_AUDIO), "--mixtures", "2"]) == 0
    with pytest.raises(SystemExit):  # the manifest records the clips' check, not a mixture's
        main(["--models", str(tiny_models), "--data", str(REAL_AUDIO), "--mixtures", "2", "--record"])
    assert main(["--models", str(tiny_models), "--data", str(REAL_AUDIO), "--mixtures", "0"]) == 2
    assert main(["--models", str(tiny_models.parent / "none"), "--data", str(REAL_AUDIO)]) == 2
    assert "manifest.json missing" in capsys.readouterr().err


def test_served_decisions_are_the_tuned_decisions(tiny_run, tiny_corpus, recognizer):
    # the decisions tuned on the validation files (PyTorch, thresholds.json's fusion) are exactly the
    # recognizer's on the same files (ONNX, the manifest's fusion), file by file
    from pathlib import Path

    from instrec.fusion import Fusion
    from instrec.labels import CODES
    from training.checkpoints import load_run, pick_device
    from training.datasets import read_testing
    from training.thresholds import window_probabilities

    tuned = Fusion.from_dict(json.loads((tiny_run / "thresholds.json").read_text())["fusion"])
    dataset = read_testing(tiny_corpus / "validation")
    windows = window_probabilities(load_run(tiny_run, tuned.models), dataset, Path(tiny_run / "cache"),
                                   pick_device("cpu"), progress=False)
    decided = tuned.decide(windows.under(tuned))
    assert len(windows.keep) == len(dataset) >= 2
    for row, i in zip(decided, windows.keep):
        served = recognizer.predict(dataset.excerpts[i].path).instruments
        assert served == [c for c, d in zip(CODES, row) if d], dataset.excerpts[i].path.name


def test_quiet_windows_are_left_out_alike_in_tuning_and_serving(tiny_run, tiny_corpus, recognizer, tmp_path):
    """Validation files with 2 s of digital silence or of noise 60 dB down on both sides: the training
    cache's window levels are the recognizer's, bit for bit, and the tuned rule (quiet windows left out)
    decides as the recognizer serves; every quiet window is marked in the timeline and names nothing."""
    import soundfile as sf

    from instrec import audio
    from instrec.fusion import Fusion, audible
    from instrec.labels import CODES
    from training.checkpoints import load_run, pick_device
    from training.datasets import read_testing
    from training.thresholds import QUIET_DB, window_probabilities

    tuned = Fusion.from_dict(json.loads((tiny_run / "thresholds.json").read_text())["fusion"])
    assert tuned.quiet_db == QUIET_DB == recognizer.fusion.quiet_db
    rng = np.random.default_rng(0)
    for k, excerpt in enumerate(read_testing(tiny_corpus / "validation").excerpts[:3]):
        y, sr = sf.read(excerpt.path, dtype="float32", always_2d=True)
        pad = np.zeros((2 * sr, y.shape[1]), np.float32) if k % 2 == 0 else \
            (rng.standard_normal((2 * sr, y.shape[1])) * 1e-3 * np.abs(y).max()).astype(np.float32)
        sf.write(tmp_path / f"padded{k}.wav", np.concatenate([pad, y, pad]), sr)
        shutil.copy(excerpt.path.with_suffix(".txt"), tmp_path / f"padded{k}.txt")
    dataset = read_testing(tmp_path)
    windows = window_probabilities(load_run(tiny_run, tuned.models), dataset, tmp_path / "cache",
                                   pick_device("cpu"), progress=False)
    decided = tuned.decide(windows.under(tuned))
    for row, i, levels in zip(decided, windows.keep, windows.levels):
        served = recognizer.predict(dataset.excerpts[i].path)
        np.testing.assert_array_equal(served.window_levels, levels)
        assert served.instruments == [c for c, d in zip(CODES, row) if d], dataset.excerpts[i].path.name
        quiet = [w["quiet"] for w in served.timeline]
        assert quiet == (~audible(levels, QUIET_DB)).tolist() and sum(quiet) >= 3  # >= 2 s, on two sides
        assert all(not w["instruments"] and max(w["scores"].values()) == 0 for w in served.timeline if w["quiet"])
        assert len(levels) == audio.n_windows(round(served.duration_s * recognizer.params.sample_rate))


def test_real_audio_record_reaches_the_apps_model_line(tiny_models, tmp_path):
    from instrec.app import about_models
    from instrec.recognizer import Recognizer
    from tests.conftest import REAL_AUDIO
    from training.real_audio import main

    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    assert main(["--models", str(models), "--data", str(REAL_AUDIO), "--record", "--json"]) == 0
    recorded = json.loads((models / "manifest.json").read_text())["real_audio"]
    assert recorded["n_files"] == 31 and 0 <= recorded["top1_correct"] <= 31
    line = about_models(Recognizer(models))
    assert "On 31 real recordings (clarinet, voice only)" in line
    assert f"they name the right instrument first for {recorded['top1_correct']} (" in line


def test_a_further_training_folder_of_ones_own_recordings_is_counted_and_named(tmp_path):
    """``training.pipeline --extra-train``: a folder with no maker's record (a user's own recordings) is
    described by its files per class alone; the card says so in one sentence."""
    from training.export import extra_description
    from training.model_card import extra_text

    for code, n in (("cla", 2), ("voi", 1)):
        (tmp_path / code).mkdir()
        for k in range(n):
            (tmp_path / code / f"take{k}__[{code}][nod]__1.wav").write_bytes(b"")
    (tmp_path / "cla" / "notes.txt").write_text("not audio, not counted")
    extra = extra_description(tmp_path)
    assert extra == {"root": str(tmp_path), "counts": {"cla": 2, "voi": 1}}
    assert extra_text(extra) == f"Beside it, `{tmp_path}`: 3 excerpts (cla 2, voi 1). "
