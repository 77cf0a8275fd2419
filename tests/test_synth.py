"""The synthetic corpus rendered for real by FluidSynth, small."""

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from corpus import synth
from instrec import audio
from instrec.labels import CODES
from training.datasets import read_testing, read_training


def test_training_layout_and_labels(tiny_corpus):
    ds = read_training(tiny_corpus / "train")
    manifest = json.loads((tiny_corpus / "corpus.json").read_text())
    records = {f: r for r in manifest["records"] for f in r["files"]}
    assert set(ds.counts()) == set(CODES) and min(ds.counts().values()) >= 1
    for e in ds:
        rec = records[str(e.path.relative_to(tiny_corpus))]
        # every label matches what was rendered as the predominant part
        assert list(e.labels) == rec["labels"]
        assert [p["code"] for p in rec["parts"] if p["role"] == "predominant"] == rec["labels"]
        # the drums tag is true: a drum part was rendered, audibly, exactly when the name says dru
        drums = [p for p in rec["parts"] if p["role"] == "drums"]
        assert e.drums == bool(drums) == rec["drums"]
        if drums:
            assert drums[0]["notes"] > 0 and drums[0]["rms"] > 1e-3
        assert e.genre == rec["genre"]
        info = sf.info(str(e.path))
        assert (info.samplerate, info.channels, info.subtype) == (44100, 2, "PCM_16")
        assert info.frames == 3 * 44100
        y = audio.load(e.path)  # raises for silence
        assert np.isfinite(y).all()


def test_evaluation_layouts(tiny_corpus):
    for split in ("validation", "test"):
        ds = read_testing(tiny_corpus / split)
        assert len(ds) >= 2
        for e in ds:
            assert 1 <= len(e.labels) <= 4
            info = sf.info(str(e.path))
            assert 5.0 <= info.frames / info.samplerate <= 20.0
            assert (info.samplerate, info.channels) == (44100, 2)
            assert np.max(np.abs(sf.read(str(e.path))[0])) > 0.05


def test_flute_leads_play_the_recorded_note_library(tiny_corpus):
    manifest = json.loads((tiny_corpus / "corpus.json").read_text())
    assert manifest["libraries"] == ["tonejs-flute"] and "tonejs-flute" in manifest["sources"]["flu"]
    assert manifest["sources"]["cla"] == manifest["gm_soundfonts"]  # no real recordings for clarinet here
    leads = [(r, p) for r in manifest["records"] for p in r["parts"] if p["role"] == "predominant"]
    flute = [p for _, p in leads if p["code"] == "flu"]
    assert flute and all(p.get("library") == "tonejs-flute" and p["rms"] > 1e-3 for p in flute)
    assert all("library" not in p for _, p in leads if p["code"] != "flu")
    # every song went through a room (or the synthetic reverb) and its recording chain is recorded
    assert all(("room" in r) != ("reverb" in r) and "recording" in r for r, _ in leads)


def test_same_seed_same_bytes(tiny_corpus, tiny_samples, tmp_path):
    from tests.conftest import TINY_CORPUS

    again = tmp_path / "again"
    synth.render_corpus(again, samples=tiny_samples, **TINY_CORPUS)
    files = sorted(p.relative_to(tiny_corpus) for p in tiny_corpus.rglob("*.wav"))
    assert files == sorted(p.relative_to(again) for p in again.rglob("*.wav"))
    for rel in files:
        assert (tiny_corpus / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_more_validation_songs_extend_the_corpus_ones(tiny_corpus, tiny_samples, tmp_path):
    """One split at a larger scale: the corpus's own validation files, byte for byte, and new ones after
    them (threshold tuning on more songs, none of them a test song); a full render cannot reuse the folder."""
    from tests.conftest import TINY_CORPUS

    more = tmp_path / "more-validation"
    bigger = {**TINY_CORPUS, "scale": 0.01}  # 3 validation songs where the tiny corpus has 2
    synth.render_corpus(more, samples=tiny_samples, splits=("validation",), **bigger)
    rendered = sorted(p.relative_to(more) for p in more.rglob("*.wav"))
    assert [p.parts[0] for p in rendered] == ["validation"] * 3
    ours = sorted(p.relative_to(tiny_corpus) for p in (tiny_corpus / "validation").glob("*.wav"))
    assert len(ours) == 2 and set(ours) < set(rendered)
    for rel in ours:
        assert (more / rel).read_bytes() == (tiny_corpus / rel).read_bytes(), rel
    (new,) = set(rendered) - set(ours)
    assert (more / new).with_suffix(".txt").read_text().split()  # labelled like the others
    assert json.loads((more / "corpus.json").read_text())["splits"] == ["validation"]
    with pytest.raises(ValueError, match=r"splits: this render adds \['train', 'test'\]"):
        synth.render_corpus(more, samples=tiny_samples, **bigger)
    # a corpus rendered before splits were recorded holds all three: one split alone is refused there too
    older = tmp_path / "older"
    older.mkdir()
    manifest = json.loads((tiny_corpus / "corpus.json").read_text())
    del manifest["splits"]
    (older / "corpus.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"splits: this render adds none and drops \['train', 'test'\]"):
        synth.render_corpus(older, samples=tiny_samples, splits=("validation",), **TINY_CORPUS)
    with pytest.raises(ValueError, match="splits must be some of train, validation, test, got tests"):
        synth.render_corpus(tmp_path / "unused", samples=tiny_samples, splits=("tests",), **bigger)


def test_resume_keeps_finished_songs(tiny_corpus, tiny_samples):
    from tests.conftest import TINY_CORPUS

    some = sorted((tiny_corpus / "train").rglob("*.wav"))[0]
    stamp = some.stat().st_mtime_ns
    synth.render_corpus(tiny_corpus, samples=tiny_samples, **TINY_CORPUS)
    assert some.stat().st_mtime_ns == stamp


def test_another_seed_or_scale_is_refused(tiny_corpus, tiny_samples, tmp_path):
    """Finished songs are kept by key, so a second corpus rendered into the same folder would add its
    songs to the first one's: refused before anything is rendered, finished render or not."""
    from tests.conftest import TINY_CORPUS, make_library

    files = sorted(p.relative_to(tiny_corpus) for p in tiny_corpus.rglob("*.wav"))
    with pytest.raises(ValueError, match=r"another corpus \(seed 0, not 1\): rendering there would mix the two"):
        synth.render_corpus(tiny_corpus, samples=tiny_samples, **{**TINY_CORPUS, "seed": 1})
    with pytest.raises(ValueError, match="scale"):
        synth.render_corpus(tiny_corpus, samples=tiny_samples, **{**TINY_CORPUS, "scale": TINY_CORPUS["scale"] * 2})
    # another set of sources: the kept songs would not be what the new manifest says they are
    more = make_library(tmp_path / "more", range(60, 97, 6), "tonejs-flute")
    make_library(more, range(48, 85, 6), "freepats-cello")
    with pytest.raises(ValueError, match=r"libraries: this render adds \['freepats-cello'\] and drops none"):
        synth.render_corpus(tiny_corpus, samples=more, **TINY_CORPUS)
    with pytest.raises(ValueError, match=r"adds none and drops \['tonejs-flute'\]"):
        synth.render_corpus(tiny_corpus, samples=more, without_libraries=("tonejs-*", "freepats-*"), **TINY_CORPUS)
    assert sorted(p.relative_to(tiny_corpus) for p in tiny_corpus.rglob("*.wav")) == files
    # leaving the new library out gives the same sources: the finished corpus is taken as it is
    synth.render_corpus(tiny_corpus, samples=more, without_libraries=("freepats-*",), **TINY_CORPUS)
    assert json.loads((tiny_corpus / "corpus.json").read_text())["libraries"] == ["tonejs-flute"]
    assert sorted(p.relative_to(tiny_corpus) for p in tiny_corpus.rglob("*.wav")) == files
    # an unfinished render has records but no manifest yet: the settings it wrote before its first song tell
    unfinished = tmp_path / "unfinished"
    shutil.copytree(tiny_corpus, unfinished)
    (unfinished / "corpus.json").unlink()
    assert json.loads((unfinished / "render.json").read_text())["guitar_rig"] == "tanh"
    with pytest.raises(ValueError, match=r"holds an unfinished render of another corpus \(seed 0, not 1\)"):
        synth.render_corpus(unfinished, samples=tiny_samples, **{**TINY_CORPUS, "seed": 1})
    with pytest.raises(ValueError, match="unfinished render of another corpus .guitar_rig tanh, not amps"):
        synth.render_corpus(unfinished, samples=tiny_samples, guitar_rig="amps", **TINY_CORPUS)
    with pytest.raises(ValueError, match=r"libraries: this render adds \['freepats-cello'\]"):
        synth.render_corpus(unfinished, samples=more, **TINY_CORPUS)
    # one begun before render.json was written: the records' seeds tell
    (unfinished / "render.json").unlink()
    with pytest.raises(ValueError, match="was rendered with seed 0, not 1"):
        synth.render_corpus(unfinished, samples=tiny_samples, **{**TINY_CORPUS, "seed": 1})
    assert sorted(p.relative_to(unfinished) for p in unfinished.rglob("*.wav")) == files


def test_plan_counts_follow_irmas(tmp_path):
    jobs = synth.plan(seed=0, scale=1.0)
    per_class = {c: sum(len(j.files) for j in jobs if j.split == "train" and j.labels == (c,)) for c in CODES}
    assert per_class == synth.TRAIN_COUNTS
    songs = [j for j in jobs if j.split == "train"]
    assert len(songs) < sum(synth.TRAIN_COUNTS.values())  # several excerpts per song
    test = [j for j in jobs if j.split == "test"]
    shares = np.bincount([len(j.labels) for j in test], minlength=5)[1:] / len(test)
    assert shares[0] > shares[1] > shares[2] > shares[3] > 0  # most excerpts have one or two
    solo = np.mean([j.solo for j in songs])
    assert 0.11 < solo < 0.19  # 15 % of training songs are solo by default
    all_solo = synth.plan(seed=0, scale=1.0, solo_share=1.0)
    # the share changes which songs are solo (and so have no drums) and nothing else about the plan
    assert all(j.solo for j in all_solo if j.split == "train")
    strip = lambda j: (j.key, j.labels, len(j.files), j.genre, j.duration, j.seed)
    assert [strip(j) for j in all_solo] == [strip(j) for j in jobs]
    assert not any(j.drums for j in all_solo if j.split == "train")
    with pytest.raises(ValueError, match="solo_share"):
        synth.render_corpus(tmp_path / "unused", solo_share=1.5, progress=False)
    assert not (tmp_path / "unused").exists()


def test_extra_soundfont_mapping(tmp_path):
    (tmp_path / "karoryfer-weresax-alto-forte.sf3").write_bytes(b"")
    (tmp_path / "unrelated.sf2").write_bytes(b"")
    extras = synth.extra_soundfonts([tmp_path])
    assert list(extras) == ["sax"] and extras["sax"][0]["velocity"] == [64, 127]
    with pytest.raises(synth.SynthError, match="not found"):
        synth.extra_soundfonts([tmp_path / "missing"])
    with pytest.raises(synth.SynthError, match="unknown code 'xyz'"):
        synth.extra_soundfonts([tmp_path], {"*.sf3": {"code": "xyz"}})


def test_chosen_general_midi_soundfonts(tmp_path):
    fluid = synth.gm_soundfonts()[0]
    assert synth.gm_soundfonts([fluid]) == [fluid]
    with pytest.raises(synth.SynthError, match="not found: .*missing.sf2"):
        synth.gm_soundfonts([fluid, tmp_path / "missing.sf2"])


def test_subset_links_excerpts_by_lead_soundfont(tiny_corpus, tmp_path):
    from corpus.subset import link_subset

    # in the tiny corpus flute leads come from a recorded-note library, the others from GM soundfonts
    counts = link_subset(tiny_corpus, tmp_path / "gm", "gm")
    linked = read_training(tmp_path / "gm")
    everything = read_training(tiny_corpus / "train")
    assert sum(counts.values()) == len(linked) == len(everything) - everything.counts()["flu"]
    assert all(e.path.is_symlink() and e.path.resolve().is_file() for e in linked)
    real = link_subset(tiny_corpus, tmp_path / "extra", "extra")
    assert dict(real) == {"flu": everything.counts()["flu"]}
    with pytest.raises(FileNotFoundError, match="corpus.json"):
        link_subset(tmp_path / "gm", tmp_path / "again", "gm")
    # a manifest written before it named the General MIDI soundfonts is refused, not guessed at
    old = json.loads((tiny_corpus / "corpus.json").read_text())
    assert old["gm_soundfonts"] == [p.name for p in synth.gm_soundfonts()]
    del old["gm_soundfonts"]
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "corpus.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match="run corpus.synth .* again"):
        link_subset(tmp_path / "old", tmp_path / "again", "gm")


def test_electric_guitars_through_amplifiers_and_cabinets(tiny_corpus, tiny_samples, tmp_path):
    """With ``guitar_rig="amps"`` most clean electric-guitar leads go through an amplifier and a cabinet
    (the record says which), the same seed gives the same bytes, and a corpus rendered with the other
    rig (or before rigs were recorded: ``tanh``) is not mixed with it."""
    from corpus import music
    from tests.conftest import TINY_CORPUS, TINY_MATERIAL

    catalogue = synth.Catalogue(synth.gm_soundfonts(), {}, 0.0)  # General MIDI only: clean and distorted
    renderer = synth.Renderer(catalogue.soundfonts)
    material = music.load_material(tiny_corpus / "material.json", n_chorales=TINY_MATERIAL, n_tunes=TINY_MATERIAL)
    plays = []
    for seed in range(8):
        renderer.renew()  # a fresh synthesizer for each song, as the corpus's workers do
        mix, record = synth.render_mix(renderer, catalogue, np.random.default_rng(seed), material, ["gel"], 2.0,
                                       "pop_roc", drums=False, solo=True, chain=False, guitar_rig="amps")
        renderer.renew()
        again, _ = synth.render_mix(renderer, catalogue, np.random.default_rng(seed), material, ["gel"], 2.0,
                                    "pop_roc", drums=False, solo=True, chain=False, guitar_rig="amps")
        assert np.array_equal(mix, again) and np.isfinite(mix).all()
        plays.append((record["parts"][0]["program"], record["parts"][0]["plays"]))
    amplified = [(program, what) for program, what in plays if "cabinet" in what]
    assert len(amplified) >= 4, plays
    # a clean program goes through a voiced amplifier, a distorted one through the cabinet alone
    assert all(("amp none" in what) == (program in synth.DISTORTED_PROGRAMS) for program, what in amplified), plays
    with pytest.raises(ValueError, match="guitar_rig tanh, not amps"):
        synth.render_corpus(tiny_corpus, samples=tiny_samples, guitar_rig="amps", **TINY_CORPUS)
    older = tmp_path / "older"  # a manifest written before the rig was recorded: the tanh rig
    older.mkdir()
    manifest = json.loads((tiny_corpus / "corpus.json").read_text())
    del manifest["guitar_rig"]
    (older / "corpus.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="guitar_rig tanh, not amps"):
        synth.render_corpus(older, samples=tiny_samples, guitar_rig="amps", **TINY_CORPUS)
    with pytest.raises(ValueError, match="guitar_rig must be one of tanh, amps"):
        synth.render_corpus(tmp_path / "unused", samples=tiny_samples, guitar_rig="marshall", **TINY_CORPUS)


def test_clipped_recordings_on_request(tiny_corpus, tiny_samples, tmp_path):
    """``clipping``: that share of songs is clipped in its recording chain (the record says how), the same
    seed gives the same bytes, and a corpus rendered without clipping (or before it was recorded) is not
    mixed with one rendered with it."""
    from corpus import music
    from tests.conftest import TINY_CORPUS, TINY_MATERIAL

    catalogue = synth.Catalogue(synth.gm_soundfonts(), {}, 0.0)
    renderer = synth.Renderer(catalogue.soundfonts)
    material = music.load_material(tiny_corpus / "material.json", n_chorales=TINY_MATERIAL, n_tunes=TINY_MATERIAL)
    for seed in range(3):
        renderer.renew()
        mix, record = synth.render_mix(renderer, catalogue, np.random.default_rng(seed), material, ["cla"], 2.0,
                                       "classical", drums=False, solo=True, clipping=1.0)
        renderer.renew()
        again, _ = synth.render_mix(renderer, catalogue, np.random.default_rng(seed), material, ["cla"], 2.0,
                                    "classical", drums=False, solo=True, clipping=1.0)
        assert np.array_equal(mix, again) and np.isfinite(mix).all()
        assert record["recording"]["clip"]["kind"] in ("hard", "soft"), record["recording"]
    with pytest.raises(ValueError, match="clipping 0.0, not 0.3"):
        synth.render_corpus(tiny_corpus, samples=tiny_samples, clipping=0.3, **TINY_CORPUS)
    older = tmp_path / "older"  # a manifest written before clipping was recorded: none
    older.mkdir()
    manifest = json.loads((tiny_corpus / "corpus.json").read_text())
    del manifest["clipping"]
    (older / "corpus.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="clipping 0.0, not 0.3"):
        synth.render_corpus(older, samples=tiny_samples, clipping=0.3, **TINY_CORPUS)
    with pytest.raises(ValueError, match="clipping must be within 0..1"):
        synth.render_corpus(tmp_path / "unused", samples=tiny_samples, clipping=1.5, **TINY_CORPUS)
