"""Batch tagging on a real local Ray (2 CPUs): rows equal `instrec predict --json`, failures are rows,
long files are streamed by the actors, and a second run resumes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import tone, write

from instrec import batch
from instrec.labels import CODES

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "instrec" / "examples"


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("collection")
    rng = np.random.default_rng(0)
    for f in sorted(EXAMPLES.glob("*.flac"))[:3]:
        shutil.copy(f, folder / f.name)
    (folder / "sub").mkdir()
    shutil.copy(sorted((ROOT / "tests" / "data" / "real").glob("*.flac"))[0], folder / "sub" / "real.flac")
    (folder / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(40))
    write(folder / "silent.wav", np.zeros(22050, np.float32))
    write(folder / "blip.wav", tone(440, 0.1))  # too short: refused from its header by the reading task
    blip_in_noise = 1e-3 * rng.standard_normal(3 * 22050).astype(np.float32)
    blip_in_noise[22050:23152] += tone(440, 0.05)
    write(folder / "blip-in-noise.wav", blip_in_noise)  # 3 s, 0.05 s of sound: refused by the actor
    long = np.concatenate([tone(220 * 2 ** (k / 12), 1.0, sr=44100) for k in rng.integers(0, 24, 14)])
    write(folder / "long.wav", long, sr=44100)  # 14 s at 44.1 kHz: over whole_file_s below, so streamed
    return folder


@pytest.fixture(scope="module")
def ray_local():
    import ray

    batch.start_ray(None, num_cpus=2)
    yield ray
    ray.shutdown()


def cli_answers(paths: list[str]) -> dict[str, dict]:
    proc = subprocess.run([sys.executable, "-m", "instrec", "predict", *paths, "--json"], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 1, proc.stderr  # the corrupt, silent and too short files fail
    out = {}
    for answer in json.loads(proc.stdout):
        answer.pop("fusion", None)
        out[answer["file"]] = answer  # the path for errors, the file's name for answers
    return out


def test_batch_equals_cli_and_resumes(collection, ray_local, tmp_path):
    out = tmp_path / "tags.parquet"
    summary = batch.run([str(collection)], out, whole_file_s=5.0, progress=False)
    files = batch.list_inputs([str(collection)])
    assert summary["files"] == len(files) == 9 and summary["answered"] == 9 and summary["errors"] == 4

    table = batch.read(out)
    rows = {r["path"]: r for r in table.to_pylist()}
    assert set(rows) == set(files)
    expected = cli_answers(files)
    for path, row in rows.items():
        got = batch.from_row(row)
        want = expected[path] if "error" in got else expected[Path(path).name]
        assert got == want, path
    assert rows[str(collection / "corrupt.wav")]["error_kind"] == "not_audio"
    assert rows[str(collection / "silent.wav")]["error_kind"] == "unusable"
    assert rows[str(collection / "blip.wav")]["error_kind"] == rows[str(collection / "blip-in-noise.wav")]["error_kind"] == "too_short"
    long = rows[str(collection / "long.wav")]
    assert long["duration_s"] == pytest.approx(14.0) and len(long["timeline_start_s"]) == 14
    assert all(row["models_sha256"] == batch.models_fingerprint(batch.default_models_dir()) for row in rows.values())
    assert set(table.column_names) >= {f"score_{c}" for c in CODES} | {"scores_mel", "scores_modgd", "scores_cqt"}

    # the same run again: everything already answered
    again = batch.run([str(collection)], out, whole_file_s=5.0, progress=False)
    assert again["skipped"] == 9 and again["answered"] == 0
    # a new file and a changed one are answered, through a list file with a file:// URI and a plain path
    new = collection / "sub" / "new.flac"
    shutil.copy(EXAMPLES / "violin.flac", new)
    os.utime(collection / "piano.flac", ns=(1, 1))
    listing = tmp_path / "more.txt"
    listing.write_text(f"# more\n{new.as_uri()}\n{collection / 'piano.flac'}\n")
    more = batch.run([str(collection), str(listing)], out, progress=False)
    assert more["answered"] == 3 and more["skipped"] == 8  # new.flac by path and by URI, piano.flac once
    rows = batch.read(out).to_pylist()
    by_uri = batch.from_row(next(r for r in rows if r["path"] == new.as_uri()))
    by_path = batch.from_row(next(r for r in rows if r["path"] == str(new)))
    assert by_uri == by_path and by_uri["file"] == "new.flac"  # the URI's copy gives the same answer
    # a row written before the ranking was kept is ranked by its rounded scores
    older = {**next(r for r in rows if r["path"] == str(new)), "ranking": None}
    assert batch.from_row(older)["ranking"] == sorted(CODES, key=lambda c: -by_path["scores"][c])
    assert len(rows) == 12 and sum(r["path"] == str(collection / "piano.flac") for r in rows) == 2

    # asked again from scratch with the minimum lifted: every row replaced, none added, and the too-short
    # files answered, by the reading task and the actor alike
    fresh = batch.run([str(collection)], out, overwrite=True, min_duration_s=None, progress=False)
    assert fresh["answered"] == 10 and fresh["errors"] == 2
    rows = {r["path"]: r for r in batch.read(out).to_pylist()}
    assert len(rows) == 10 and set(rows) == set(batch.list_inputs([str(collection)]))
    for name in ("blip.wav", "blip-in-noise.wav"):
        assert rows[str(collection / name)]["error_kind"] is None
        assert set(CODES) <= set(batch.from_row(rows[str(collection / name)])["scores"])


def test_inputs_and_bad_out(tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("a.wav\n\n# comment\nfile:///x/b.flac\n")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "c.mp3").write_bytes(b"")
    (tmp_path / "d" / "notes.pdf").write_bytes(b"")
    assert batch.list_inputs([str(listing), str(tmp_path / "d")]) == ["a.wav", "file:///x/b.flac",
                                                                     str(tmp_path / "d" / "c.mp3")]
    assert batch.stat(str(tmp_path / "missing.wav")) == (-1, -1)
    taken = tmp_path / "taken.parquet"
    taken.write_text("not a folder")
    with pytest.raises(SystemExit, match="not a folder"):
        batch.run([str(listing)], taken, progress=False)
