"""Isolated notes of every source (corpus.notes), rendered for real by FluidSynth and the sampler."""

import json

import numpy as np
import pytest
import soundfile as sf

from corpus import notes, synth
from corpus.music import Note, Part
from instrec.labels import CODES
from training.datasets import read_training

FLUIDR3 = synth.GM_PATHS[0]
#: flute: 4 excerpts, 3 of them (0.75) from the synthetic-tone library, 1 from the GM soundfont
NOTES = {"per_class": 4, "real_share": 0.75, "seed": 0, "progress": False}


@pytest.fixture(scope="module")
def tiny_notes(tmp_path_factory, tiny_samples):
    out = tmp_path_factory.mktemp("notes")
    notes.render_notes(out, samples=tiny_samples, workers=1, **NOTES)
    return out


def test_layout_labels_and_sources(tiny_notes):
    manifest = json.loads((tiny_notes / "corpus.json").read_text())
    records = {r["files"][0]: r for r in manifest["records"]}
    ds = read_training(tiny_notes / "train")
    assert ds.counts() == {code: 4 for code in CODES}
    for e in ds:
        rec = records[str(e.path.relative_to(tiny_notes))]
        assert list(e.labels) == rec["labels"] == [rec["parts"][0]["code"]]
        info = sf.info(str(e.path))
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (44100, 2, "PCM_16", 3 * 44100)
        y, _ = sf.read(str(e.path))
        assert np.isfinite(y).all() and np.abs(y).max() > 0.05  # audible, not silent
        assert ("room" in rec["parts"][0]) != ("reverb" in rec["parts"][0])
        assert 1 <= len(rec["parts"][0]["pitches"]) <= 4
    by_source = manifest["summary"]["by_source"]
    gm = manifest["gm_soundfonts"]
    assert by_source["flu"] == {"tonejs-flute": 3, gm[0]: 1}  # the real share, exactly
    for code, sources in by_source.items():  # the others from the General MIDI soundfonts, in turn
        assert code == "flu" or (set(sources) <= set(gm) and max(sources.values()) - min(sources.values()) <= 1)
    lo, hi = synth.PLAYING_RANGE["flu"]
    assert all(lo <= p <= hi for r in manifest["records"] for p in r["parts"][0]["pitches"] if r["labels"] == ["flu"])


def test_a_held_note_sounds_at_its_pitch(tiny_samples, tmp_path):
    """Without the recording chain, every held flute note from the library of known tones has its
    fundamental at the recorded pitch: the strongest spectral peak within 15 cents (the library's
    tones have a falling harmonic series, so the fundamental is the strongest peak; 0.33 Hz FFT
    bins, parabolic interpolation, and the sampler's shift is exact to a few cents)."""
    out = tmp_path / "plain"
    notes.render_notes(out, samples=tiny_samples, workers=1, chain=False, codes=("flu",), gm=[FLUIDR3],
                       **{**NOTES, "per_class": 24, "real_share": 1.0})
    manifest = json.loads((out / "corpus.json").read_text())
    assert {r["labels"][0] for r in manifest["records"]} == {"flu"}
    held = [r for r in manifest["records"] if r["parts"][0]["plays"] == "held note"]  # no vibrato
    assert len(held) >= 3
    for r in held:
        y, sr = sf.read(str(out / r["files"][0]))
        x = y.mean(axis=1) * np.hanning(len(y))
        spectrum = np.abs(np.fft.rfft(x, n=4 * len(x)))
        k = int(np.argmax(spectrum[1:])) + 1
        a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
        peak_hz = (k + 0.5 * (a - c) / (a - 2 * b + c)) * sr / (4 * len(x))
        expected = 440.0 * 2 ** ((r["parts"][0]["pitches"][0] - 69) / 12)
        assert abs(1200 * np.log2(peak_hz / expected)) < 15, (r["key"], peak_hz, expected)


def test_same_seed_same_bytes_whatever_the_workers(tiny_notes, tiny_samples, tmp_path):
    again = tmp_path / "again"
    notes.render_notes(again, samples=tiny_samples, workers=2, **NOTES)
    files = sorted(p.relative_to(tiny_notes) for p in tiny_notes.rglob("*.wav"))
    assert files == sorted(p.relative_to(again) for p in again.rglob("*.wav"))
    for rel in files:
        assert (tiny_notes / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_leave_one_out_holds_the_sources_notes_out_too(tiny_corpus, tiny_notes, tmp_path):
    from experiments.leave_one_out import split_by_source

    plan = split_by_source(tiny_corpus, tmp_path / "lolo", notes=tiny_notes)
    manifest = json.loads((tiny_notes / "corpus.json").read_text())
    source = {r["files"][0].removeprefix("train/"): r["parts"][0]["source"] for r in manifest["records"]}
    trained = [p for p in (tmp_path / "lolo" / "train").rglob("note-*.wav")]
    held = [p for p in (tmp_path / "lolo" / "held-notes").rglob("*.wav")]
    assert len(trained) + len(held) == len(source)
    assert held, "some held-out source plays notes"
    for p in trained:
        code = p.parent.name
        assert source[f"{code}/{p.name}"] != plan["held_out"].get(code)
    for p in held:
        code = p.parent.name
        assert source[f"{code}/{p.name}"] == plan["held_out"][code]


def test_split_only_splits_extra_notes_corpora_by_the_same_held_sources(tiny_corpus, tiny_notes, tmp_path, capsys):
    from experiments.leave_one_out import main
    from experiments.pretrained_head import checked_folders

    out = tmp_path / "lolo"
    assert main(["--corpus", str(tiny_corpus), "--out", str(out), "--split-only", "--extra-notes", str(tiny_notes)]) == 0
    plan = json.loads((out / "split.json").read_text())
    assert not (out / "leave_one_out.json").exists(), "nothing trained"
    manifest = json.loads((tiny_notes / "corpus.json").read_text())
    source = {r["files"][0].removeprefix("train/"): r["parts"][0]["source"] for r in manifest["records"]}
    kept = list((out / tiny_notes.name / "train").rglob("*.wav"))
    held = list((out / tiny_notes.name / "held").rglob("*.wav"))
    assert held and len(kept) + len(held) == len(source)
    assert all(source[f"{p.parent.name}/{p.name}"] != plan["held_out"].get(p.parent.name) for p in kept)
    assert all(source[f"{p.parent.name}/{p.name}"] == plan["held_out"][p.parent.name] for p in held)
    assert sum(plan["extra_notes"][tiny_notes.name]["held_counts"].values()) == len(held)
    assert not list((out / "train").rglob("note-*.wav")), "the extra corpus stays out of the CNNs' training folder"
    assert checked_folders(out)[f"held-{tiny_notes.name}"] == out / tiny_notes.name / "held"
    # a name the split uses itself, or two corpora of one name, would overwrite a folder: refused
    for clash in ([str(tiny_notes.parent / "held")], [str(tiny_notes), str(tmp_path / "x" / tiny_notes.name)]):
        argv = ["--corpus", str(tiny_corpus), "--out", str(out), "--split-only"]
        assert main(argv + [a for d in clash for a in ("--extra-notes", d)]) == 1
        assert "names of their own" in capsys.readouterr().err
    assert (out / "held").is_dir() and (out / tiny_notes.name / "held").is_dir(), "nothing deleted"


def test_short_files_hold_one_note_from_its_onset(tiny_samples, tmp_path):
    """``short_share=1``: every file is 0.3-1.2 s long as its record says, one note starting within 50 ms
    (the first 100 ms hold a tenth of the file's loudest 50 ms at least), at its pitch, faded to silence at
    the cut; the recognizer's windowing gives each file one window."""
    from instrec.audio import n_windows
    from instrec.params import DEFAULT

    out = tmp_path / "short"
    notes.render_notes(out, samples=tiny_samples, workers=1, chain=False, codes=("flu",), gm=[FLUIDR3],
                       short_share=1.0, **{**NOTES, "per_class": 12, "real_share": 1.0})
    manifest = json.loads((out / "corpus.json").read_text())
    assert manifest["short_share"] == 1.0 and len(manifest["records"]) == 12
    for r in manifest["records"]:
        part = r["parts"][0]
        y, sr = sf.read(str(out / r["files"][0]))
        assert 0.3 <= part["length_s"] <= 1.2 and abs(len(y) / sr - part["length_s"]) <= 5e-4  # ms recorded
        assert part["plays"].startswith("short file of ") and ", one note" in part["plays"]
        assert len(part["pitches"]) == 1 and np.abs(y[-1]).max() < 1e-3  # one note; faded out at the end
        x = y.mean(axis=1)
        rms = np.sqrt(np.convolve(x**2, np.ones(2205) / 2205, mode="valid"))  # 50 ms
        assert rms[: int(0.05 * sr)].max() > 0.1 * rms.max()
        assert n_windows(round(len(x) * DEFAULT.sample_rate / sr)) == 1
        if "vibrato" in part["plays"]:
            continue
        # the fundamental over the first 0.25 s: 0.3 Hz bins after 4x zero padding, parabolic interpolation;
        # within 25 cents (a quarter-second Hann window leaves the peak's position a little less sure)
        seg = x[: int(0.25 * sr)] * np.hanning(int(0.25 * sr))
        spectrum = np.abs(np.fft.rfft(seg, n=16 * len(seg)))
        k = int(np.argmax(spectrum[1:])) + 1
        a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
        peak_hz = (k + 0.5 * (a - c) / (a - 2 * b + c)) * sr / (16 * len(seg))
        expected = 440.0 * 2 ** ((part["pitches"][0] - 69) / 12)
        assert abs(1200 * np.log2(peak_hz / expected)) < 25, (r["key"], peak_hz, expected)
    half = tmp_path / "half"
    notes.render_notes(half, samples=tiny_samples, workers=1, codes=("flu",), gm=[FLUIDR3], short_share=0.5,
                       **{**NOTES, "per_class": 12})
    lengths = [sf.info(str(p)).frames / 44100 for p in half.rglob("*.wav")]
    assert 0 < sum(n < 1.25 for n in lengths) < 12 and all(n < 1.25 or n == 3.0 for n in lengths)
    with pytest.raises(ValueError, match="short_share 0.5, not 0.0"):
        notes.render_notes(half, samples=tiny_samples, codes=("flu",), gm=[FLUIDR3], **{**NOTES, "per_class": 12})
    with pytest.raises(ValueError, match="short_share must be within 0..1"):
        notes.render_notes(tmp_path / "x", short_share=1.5, progress=False)


def test_another_seed_or_count_is_refused(tiny_notes, tiny_samples):
    files = sorted(p.relative_to(tiny_notes) for p in tiny_notes.rglob("*.wav"))
    with pytest.raises(ValueError, match=r"another corpus \(seed 0, not 1\)"):
        notes.render_notes(tiny_notes, samples=tiny_samples, **{**NOTES, "seed": 1})
    with pytest.raises(ValueError, match="per_class 4, not 2"):
        notes.render_notes(tiny_notes, samples=tiny_samples, **{**NOTES, "per_class": 2})
    with pytest.raises(ValueError, match="guitar_rig tanh, not amps"):
        notes.render_notes(tiny_notes, samples=tiny_samples, guitar_rig="amps", **NOTES)
    assert sorted(p.relative_to(tiny_notes) for p in tiny_notes.rglob("*.wav")) == files


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="per_class"):
        notes.render_notes(tmp_path / "x", per_class=0, progress=False)
    with pytest.raises(ValueError, match="unknown instrument codes"):
        notes.render_notes(tmp_path / "x", codes=("flu", "kazoo"), progress=False)
    with pytest.raises(ValueError, match="guitar_rig must be one of tanh, amps"):
        notes.render_notes(tmp_path / "x", guitar_rig="vox", progress=False)


def test_electric_guitar_notes_through_amplifiers(tmp_path):
    """``guitar_rig="amps"``: most electric-guitar notes go through an amplifier and cabinet, as the
    records say; the manifest records the rig."""
    out = tmp_path / "gel"
    notes.render_notes(out, per_class=6, codes=("gel",), gm=[FLUIDR3], chain=False, workers=1,
                       guitar_rig="amps", progress=False)
    manifest = json.loads((out / "corpus.json").read_text())
    plays = [r["parts"][0]["plays"] for r in manifest["records"]]
    assert manifest["guitar_rig"] == "amps" and len(plays) == 6
    assert sum("cabinet" in what for what in plays) >= 3, plays


def test_leave_one_out_baseline_trains_on_no_notes(tiny_corpus, tiny_notes, tmp_path):
    from experiments.leave_one_out import split_by_source

    plan = split_by_source(tiny_corpus, tmp_path / "lolo", notes=tiny_notes, train_notes=False)
    assert not list((tmp_path / "lolo" / "train").rglob("note-*.wav"))
    assert sum(plan["notes_held_counts"].values()) == len(list((tmp_path / "lolo" / "held-notes").rglob("*.wav"))) > 0


def test_a_key_the_preset_has_no_sample_for_is_drawn_again_not_rendered_as_silence():
    # FluidR3's violin has no sample at A#6 (MIDI 94): rendered there it gives a peak near 1e-6, and such an
    # excerpt of silence labelled violin was once in the corpus. Within 93-94 every note comes out audible;
    # within 94 alone nothing can, which is an error rather than a silent excerpt
    renderer = synth.Renderer([str(FLUIDR3)])
    violin = lambda lo, hi: synth.Instrument(str(FLUIDR3), 0, 40, lo, hi, code="vio")
    silent = renderer.render(Part(notes=[Note(0.1, 1.5, 94, 80)]), violin(94, 94), 2 * 44100)
    assert np.abs(silent).max() < notes.SILENT_PEAK
    rng = np.random.default_rng(0)
    pitches = []
    for _ in range(12):
        y, record = notes.render_note(renderer, violin(93, 94), rng, chain=False)
        assert np.abs(y).max() > 100 * notes.SILENT_PEAK
        pitches.append(record["pitches"])
    assert all(93 in p for p in pitches)  # a part of A#6 alone was drawn again every time
    with pytest.raises(RuntimeError, match="silent for 8 draws of notes between MIDI 94 and 94"):
        notes.render_note(renderer, violin(94, 94), rng, chain=False)
    # the same seed: the same excerpts, redraws included
    again = [notes.render_note(renderer, violin(93, 94), np.random.default_rng(0), chain=False)[1]["pitches"]]
    assert again[0] == pitches[0]
