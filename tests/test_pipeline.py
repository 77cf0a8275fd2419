"""The one-command pipeline on the tiny corpus: fine-tuning from a run, export, real-audio check, model card."""

import argparse
import json
import shutil

import pytest
import torch

from experiments.stk_notes import render_notes as render_stk_notes
from instrec.recognizer import sha256
from tests.conftest import REAL_AUDIO, TINY_MATERIAL, TINY_SCALE
from training.model_card import commands
from training.pipeline import epochs_per_cnn, main


def test_pipeline_fine_tunes_exports_and_writes_the_card(tiny_corpus, tiny_samples, tiny_run, tmp_path, capsys):
    corpus, out, models = tmp_path / "corpus", tmp_path / "run", tmp_path / "models"
    shutil.copytree(tiny_corpus, corpus)  # finished songs are kept: the corpus stage only checks them
    render_stk_notes(tmp_path / "stk", per_class=2, classes=("cla",))  # a further training folder
    argv = ["--corpus", str(corpus), "--scale", str(TINY_SCALE), "--material-pieces", str(TINY_MATERIAL),
            "--out", str(out), "--models", str(models), "--epochs", "1,cqt:2", "--workers", "1", "--lr", "3e-4",
            "--init-run", str(tiny_run), "--augment", "noise,pitch:mel+cqt,mixstyle", "--real-audio", str(REAL_AUDIO),
            "--cache", str(tmp_path / "cache"), "--samples", str(tiny_samples), "--real-share", "1.0",
            "--notes-per-class", "1", "--seed", "1", "--adversary", "0.5", "--extra-train", str(tmp_path / "stk" / "train")]
    songs = sorted(p.relative_to(corpus) for p in corpus.rglob("*.wav"))
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "augmentations: noise,pitch,mixstyle; starting from" in printed
    # pitch limited to mel and cqt: the modgd CNN gets mixstyle only
    assert "augmentations: mixstyle; starting from" in printed and "augmentations: pitch; starting from" in printed
    times = json.loads((out / "pipeline_times.json").read_text())
    assert set(times) == {"render the synthetic corpus", "render the isolated notes", "train mel", "train modgd", "train cqt",
                          "tune thresholds and fusion", "evaluate", "export to ONNX", "check on real recordings"}
    mel = torch.load(out / "mel" / "best.pt", weights_only=False)["training_args"]
    cqt = torch.load(out / "cqt" / "best.pt", weights_only=False)["training_args"]
    assert mel["augment"] == ["noise", "pitch", "mixstyle"] and cqt["augment"] == ["pitch"]
    # the notes and the further folder, trained on
    assert mel["extra_train"] == cqt["extra_train"] == [str(corpus / "notes"), str(tmp_path / "stk" / "train")]
    assert mel["init"] == str(tiny_run / "mel" / "best.pt") and mel["lr"] == 3e-4
    # a training seed of its own trains on the corpus as rendered (corpus seed 0): no song added to it
    assert mel["seed"] == 1
    # each CNN trained against a source-family adversary, the notes' sources named by their own manifest
    assert mel["adversary"] == cqt["adversary"] == 0.5
    assert "source_accuracy" in json.loads((out / "cqt" / "history.json").read_text())["history"][0]
    # --epochs 1,cqt:2: the CQT CNN trains two epochs, the others one
    ran = {rep: json.loads((out / rep / "history.json").read_text())["epochs_run"] for rep in ("mel", "modgd", "cqt")}
    assert ran == {"mel": 1, "modgd": 1, "cqt": 2}
    cqt_s = sum(e["seconds"] for e in json.loads((out / "cqt" / "history.json").read_text())["history"])
    assert sorted(p.relative_to(corpus) for p in corpus.rglob("*.wav") if "notes" not in p.parts) == songs
    assert {p.name for p in models.iterdir()} == {"mel.onnx", "modgd.onnx", "cqt.onnx", "manifest.json", "MODEL_CARD.md"}
    card = (models / "MODEL_CARD.md").read_text()
    assert "## Real recordings" in card and "--init-run" in card
    assert f"Training time of each CNN of `{out}`, summed over its epochs: mel " in card
    assert f"cqt {cqt_s:.0f} s (2 epochs)." in card and "(1 epoch)" in card
    real = json.loads((out / "real_audio.json").read_text())
    assert f"The clips come from 6 recordings; most clips of {real['recordings_right']} of them" in card
    start = tiny_run / "mel" / "best.pt"
    assert mel["init_sha256"] == sha256(start)
    assert (f"| 1 + 1 | noise, pitch, mixstyle; source adversary, weight 0.5 | `{start}` (sha256 "
            f"`{sha256(start)[:16]}...`) |" in card)  # epochs: start + fine-tuning
    notes = json.loads((models / "manifest.json").read_text())["training_data"]["notes"]
    assert notes["root"] == str(corpus / "notes") and sum(notes["summary"]["counts"].values()) == 11
    assert "11 excerpts of isolated notes rendered by `python -m corpus.notes`" in card
    extra = json.loads((models / "manifest.json").read_text())["training_data"]["extra"]
    assert extra == [{"root": str(tmp_path / "stk" / "train"), "counts": {"cla": 2},
                      "made_by": {"module": "experiments.stk_notes", "seed": 7, "without": [],
                                  "models": ["stk-blowhole", "stk-clarinet"]}}]
    assert (f"Beside it, `{tmp_path / 'stk' / 'train'}`: 2 excerpts (cla 2) of isolated notes from the physical and "
            "FM instrument models of the Synthesis ToolKit (`python -m experiments.stk_notes`, seed 7; "
            "`stk-blowhole`, `stk-clarinet`; STK: Perry R. Cook and Gary P. Scavone") in card
    # the stage times as measured: a stage of seconds is given in seconds, not rounded to "0 min"
    export_s = times["export to ONNX"]
    assert export_s < 120 and f"export to ONNX {export_s:.0f} s" in card and " 0 min" not in card
    assert commands(out)[-1].startswith("python -m training.pipeline --corpus")
    assert (tmp_path / "cache").is_dir() and not (out / "cache").exists()
    # a second call resumes: every CNN continues from its own last.pt, not from the starting run
    assert main(argv) == 0
    assert "starting from" not in capsys.readouterr().out


def test_pipeline_refuses_another_corpus_seed_in_a_rendered_folder(tiny_corpus, tiny_samples, tmp_path, capsys):
    # the corpus folder holds corpus seed 0: asking for corpus seed 1 there stops with a clear message,
    # before anything is rendered or trained
    corpus, out = tmp_path / "corpus", tmp_path / "run"
    shutil.copytree(tiny_corpus, corpus)
    before = sorted(p.relative_to(corpus) for p in corpus.rglob("*.wav"))
    argv = ["--corpus", str(corpus), "--scale", str(TINY_SCALE), "--material-pieces", str(TINY_MATERIAL),
            "--out", str(out), "--models", str(tmp_path / "models"), "--workers", "1",
            "--samples", str(tiny_samples), "--real-share", "1.0", "--corpus-seed", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "holds another corpus (seed 0, not 1): rendering there would mix the two" in err
    # a further training folder that is not there: refused before anything is rendered
    assert main([*argv[:-2], "--extra-train", str(tmp_path / "nowhere")]) == 2
    assert f"{tmp_path / 'nowhere'}: training folder not found" in capsys.readouterr().err
    assert sorted(p.relative_to(corpus) for p in corpus.rglob("*.wav")) == before
    assert not (out / "mel").exists()


def test_epochs_per_cnn():
    assert epochs_per_cnn("8") == {"mel": 8, "modgd": 8, "cqt": 8}
    assert epochs_per_cnn("8,modgd:16") == {"mel": 8, "modgd": 16, "cqt": 8}
    assert epochs_per_cnn("modgd+cqt:3") == {"mel": 50, "modgd": 3, "cqt": 3}  # unnamed CNNs: the default
    assert epochs_per_cnn("cqt:2,4") == {"mel": 4, "modgd": 4, "cqt": 4}  # read left to right
    for bad in ("0", "eight", "wav:3", "mel:", "mel:-1"):
        with pytest.raises(argparse.ArgumentTypeError, match="count of epochs"):
            epochs_per_cnn(bad)
