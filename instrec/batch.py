"""Tag whole collections on Ray Data: ``instrec batch INPUT... --out results.parquet``.

    instrec batch music/ more.txt --out tags.parquet               # a local Ray, this machine's cores
    instrec batch music/ --out tags.parquet --address auto          # join the cluster started by `ray start`
    instrec batch music/ --out tags.parquet --address ray://head:10001

The pipeline: the list of files -> read and decode in Ray tasks -> features and the three ONNX models
in a pool of actors (one :class:`~instrec.recognizer.Recognizer` each, loaded once) -> one Parquet
row per file, written by this process as answers arrive (a part file every ``--rows-per-part`` rows).
A file that fails is a row with its ``error`` and ``error_kind`` (see :mod:`instrec.errors`), never
the end of the run. Files longer than :data:`~instrec.recognizer.WHOLE_FILE_S` are not decoded in
the read task: the actor streams them (see :func:`~instrec.recognizer.open_audio`), so a 2-hour
file holds only a chunk of audio at a time.

``--out`` is a folder of Parquet part files, read back by ``pyarrow.parquet.read_table(out)`` or
``pandas.read_parquet(out)``. Re-running with the same ``--out`` skips the files already answered
(same path, size, modification time and models; rows of internal errors are retried) and appends
the rest; ``--overwrite`` starts over.

Inputs: audio files, folders (walked for audio files), and text files (``.txt``, ``.lst``,
``.list``) with one path or URI a line (``file://``, or any scheme ``pyarrow.fs`` reads, e.g.
``s3://``; a remote file is copied to a temporary file while it is analysed).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from . import errors, runtime
from .audio import AUDIO_EXTENSIONS, MIN_DURATION_S, min_seconds_arg
from .labels import CODES
from .params import REPRESENTATIONS
from .recognizer import DEFAULT_MAX_DURATION_S, HEAD, WHOLE_FILE_S, Recognizer, default_models_dir, open_audio

LIST_SUFFIXES = (".txt", ".lst", ".list")
#: every model a fusion may have, each with its column of scores (empty where the models lack it)
MODELS = (*REPRESENTATIONS, HEAD)
log = logging.getLogger("instrec.batch")


# ---- what to tag ------------------------------------------------------------------------------


def is_uri(item: str) -> bool:
    return "://" in item


def list_inputs(inputs: list[str]) -> list[str]:
    """Audio files, folders (walked, sorted) and list files -> the paths and URIs to tag, in order, each once."""
    out: list[str] = []
    for item in inputs:
        if is_uri(item):
            out.append(item)
            continue
        path = Path(item)
        if path.is_dir():
            out += [str(f) for f in sorted(path.rglob("*")) if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS]
        elif path.suffix.lower() in LIST_SUFFIXES and path.is_file():
            lines = (line.strip() for line in path.read_text().splitlines())
            out += [line for line in lines if line and not line.startswith("#")]
        else:
            out.append(str(path))  # a file, or a missing path that becomes an error row
    return list(dict.fromkeys(out))  # each once, in the order first given


def stat(item: str) -> tuple[int, int]:
    """(size in bytes, modification time in ns) of a path or URI; (-1, -1) when it cannot be read."""
    try:
        if is_uri(item):
            from pyarrow import fs

            filesystem, path = fs.FileSystem.from_uri(item)
            info = filesystem.get_file_info(path)
            if info.type != fs.FileType.File:
                return -1, -1
            return int(info.size), int(info.mtime_ns or 0)
        st = os.stat(item)
        return int(st.st_size), int(st.st_mtime_ns)
    except (OSError, ValueError):
        return -1, -1


@contextmanager
def local_copy(item: str) -> Iterator[str]:
    """A local path for a path or URI: remote files are copied to a temporary file for the block."""
    if not is_uri(item):
        yield item
        return
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(item)
    with tempfile.TemporaryDirectory(prefix="instrec-batch-") as tmp:
        local = Path(tmp) / ("remote" + Path(path).suffix.lower())
        try:
            with filesystem.open_input_stream(path) as src, open(local, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (OSError, FileNotFoundError) as exc:
            raise errors.MissingFile(f"{Path(path).name}: cannot be read ({exc})") from None
        yield str(local)


def models_fingerprint(models_dir: Path) -> str:
    """sha256 of the models' manifest (which holds each model's sha256, the thresholds and the fusion)."""
    return hashlib.sha256((Path(models_dir) / "manifest.json").read_bytes()).hexdigest()


# ---- the table ---------------------------------------------------------------------------------


def schema():
    import pyarrow as pa

    floats = pa.list_(pa.float64())
    fields = [("path", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64()), ("models_sha256", pa.string()),
              ("duration_s", pa.float64()), ("instruments", pa.list_(pa.string()))]
    fields += [(f"score_{c}", pa.float64()) for c in CODES]
    fields += [("ranking", pa.list_(pa.string()))]
    fields += [(f"scores_{rep}", floats) for rep in MODELS]
    fields += [("timeline_start_s", floats), ("timeline_end_s", floats),
               ("timeline_instruments", pa.list_(pa.list_(pa.string()))), ("timeline_scores", pa.list_(floats)),
               ("timeline_quiet", pa.list_(pa.bool_())), ("provider", pa.string()), ("error", pa.string()), ("error_kind", pa.string())]
    return pa.schema(fields)


def to_row(answer: dict, path: str, size: int, mtime_ns: int, fingerprint: str) -> dict:
    """A JSON answer (or error object) of the recognizer -> one row of :func:`schema`."""
    row = {name: None for name in schema().names}
    row.update(path=path, size=size, mtime_ns=mtime_ns, models_sha256=fingerprint)
    if "error" in answer:
        row.update(error=answer["error"], error_kind=answer["kind"])
        return row
    row.update(duration_s=answer["duration_s"], instruments=answer["instruments"], provider=answer["provider"])
    row.update({f"score_{c}": answer["scores"][c] for c in CODES}, ranking=answer["ranking"])
    row.update({f"scores_{rep}": [scores[c] for c in CODES] for rep, scores in answer["models"].items()})
    timeline = answer["timeline"]
    row.update(timeline_start_s=[w["start_s"] for w in timeline], timeline_end_s=[w["end_s"] for w in timeline],
               timeline_instruments=[w["instruments"] for w in timeline],
               timeline_scores=[[w["scores"][c] for c in CODES] for w in timeline],
               timeline_quiet=[w["quiet"] for w in timeline])
    return row


def from_row(row: dict) -> dict:
    """One row -> the JSON answer ``instrec predict --json`` gives for that file (without ``fusion``),
    or its error object. Rows written before quiet windows were marked have none marked, as then; rows
    written before the ranking was kept are ranked by their rounded scores."""
    if row["error"] is not None:
        return {"error": row["error"], "kind": row["error_kind"], "file": row["path"]}
    timeline = [{"start_s": a, "end_s": b, "instruments": list(inst), "scores": dict(zip(CODES, sc)), "quiet": q}
                for a, b, inst, sc, q in zip(row["timeline_start_s"], row["timeline_end_s"], row["timeline_instruments"],
                                             row["timeline_scores"],
                                             row.get("timeline_quiet") or [False] * len(row["timeline_start_s"]))]
    models = {rep: dict(zip(CODES, row[f"scores_{rep}"])) for rep in MODELS if row.get(f"scores_{rep}") is not None}
    scores = {c: row[f"score_{c}"] for c in CODES}
    ranking = row.get("ranking") or sorted(CODES, key=lambda c: -scores[c])
    return {"file": Path(row["path"]).name, "duration_s": row["duration_s"], "instruments": list(row["instruments"]),
            "scores": scores, "ranking": list(ranking), "models": models, "timeline": timeline,
            "provider": row["provider"]}


def answered(out: Path, fingerprint: str) -> set[tuple[str, int, int]]:
    """(path, size, mtime_ns) of the files ``out`` already answers with these models (internal errors
    excepted: they are tried again)."""
    import pyarrow.parquet as pq

    parts = sorted(out.glob("*.parquet")) if out.is_dir() else []
    done = set()
    for part in parts:
        table = pq.read_table(part, columns=["path", "size", "mtime_ns", "models_sha256", "error_kind"])
        for path, size, mtime, sha, kind in zip(*(table.column(i).to_pylist() for i in range(5))):
            if sha == fingerprint and kind != "internal":
                done.add((path, size, mtime))
    return done


# ---- the Ray Data stages -------------------------------------------------------------------------


def read_task(row: dict, *, params: dict, max_duration_s: float | None, whole_file_s: float,
              min_duration_s: float | None = MIN_DURATION_S) -> dict:
    """Ray task: decode a file of up to ``whole_file_s`` seconds into prepared samples; longer files
    are left for the actor to stream. Failures travel on as the row's error."""
    from .params import FeatureParams

    row = dict(row, audio=np.zeros(0, np.float32), duration_s=0.0, error=None, error_kind=None)
    name = Path(row["path"]).name
    try:
        with local_copy(row["path"]) as local:
            blocks, duration = open_audio(local, params=FeatureParams.from_dict(params),
                                          max_duration_s=max_duration_s, whole_file_s=whole_file_s, what=name,
                                          min_duration_s=min_duration_s)
            row["duration_s"] = duration
            if duration <= whole_file_s:
                row["audio"] = next(blocks)
    except Exception as exc:  # any failure is this file's row
        if errors.kind_of(exc) == "internal":
            log.exception("internal error reading %s", row["path"])
        answer = errors.error_dict(exc, row["path"])
        row.update(error=answer["error"], error_kind=answer["kind"])
    return row


class Tagger:
    """Ray actor: one Recognizer, loaded once; a batch of decoded rows in, result rows out."""

    def __init__(self, models: str, threads: int, max_duration_s: float | None, whole_file_s: float,
                 fingerprint: str, min_duration_s: float | None = MIN_DURATION_S):
        self.recognizer = Recognizer(models, threads=threads, max_duration_s=max_duration_s,
                                     whole_file_s=whole_file_s, min_duration_s=min_duration_s)
        self.fingerprint = fingerprint

    def answer(self, row: dict) -> dict:
        path = row["path"]
        if row["error"] is not None:
            return {"error": row["error"], "kind": row["error_kind"], "file": path}
        name = Path(path).name
        try:
            if len(row["audio"]):
                return self.recognizer.predict_blocks([row["audio"]], row["duration_s"], name).to_dict()
            with local_copy(path) as local:  # a long file: streamed here
                return self.recognizer.predict(local, name=name).to_dict()
        except Exception as exc:
            if errors.kind_of(exc) == "internal":
                log.exception("internal error on %s", path)
            return errors.error_dict(exc, path)

    def __call__(self, batch: dict):
        import pyarrow as pa

        rows = []
        for i in range(len(batch["path"])):
            row = {k: batch[k][i] for k in ("path", "size", "mtime_ns", "audio", "duration_s")}
            # a column of None arrives as floats (NaN) in numpy batches: strings are the errors
            error, kind = batch["error"][i], batch["error_kind"][i]
            row.update(error=error if isinstance(error, str) else None, error_kind=kind if isinstance(kind, str) else None)
            rows.append(to_row(self.answer(row), str(row["path"]), int(row["size"]), int(row["mtime_ns"]),
                               self.fingerprint))
        return pa.Table.from_pylist(rows, schema=schema())


# ---- the command -----------------------------------------------------------------------------------


def start_ray(address: str | None, num_cpus: int | None):
    import ray

    if ray.is_initialized():
        return ray
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
    else:  # embedded: a local Ray inside this command, with this machine's cores
        ray.init(num_cpus=num_cpus or runtime.cores(), include_dashboard=False, logging_level=logging.WARNING,
                 configure_logging=True)
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # its debug lines are per operator and per second
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # our own bar counts files
    ctx.print_on_execution_start = False
    return ray


def run(inputs: list[str], out: Path, *, models: Path | None = None, address: str | None = None,
        actors: int | None = None, cpus_per_actor: int = 1, gpus_per_actor: float = 0, overwrite: bool = False,
        num_cpus: int | None = None, rows_per_part: int = 256, max_duration_s: float | None = DEFAULT_MAX_DURATION_S,
        whole_file_s: float = WHOLE_FILE_S, progress: bool = True,
        min_duration_s: float | None = MIN_DURATION_S) -> dict:
    """Tag ``inputs`` into the Parquet folder ``out``; returns counts and timing."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm import tqdm

    models = Path(models) if models else default_models_dir()
    probe = Recognizer(models, threads=1)  # checks the models before any cluster work; gives the parameters
    fingerprint = models_fingerprint(models)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SystemExit(f"error: {out} exists and is not a folder of Parquet parts; choose another --out")
    if overwrite and out.is_dir():
        for part in out.glob("*.parquet"):
            part.unlink()
    out.mkdir(parents=True, exist_ok=True)

    items = list_inputs(inputs)
    done = answered(out, fingerprint)
    todo = []
    for item in items:
        size, mtime = stat(item)
        if (item, size, mtime) not in done:
            todo.append({"path": item, "size": size, "mtime_ns": mtime})
    summary = {"files": len(items), "skipped": len(items) - len(todo), "answered": 0, "errors": 0, "seconds": 0.0}
    if not todo:
        return summary

    ray = start_ray(address, num_cpus)
    cluster_cpus = int(ray.cluster_resources().get("CPU", 1))
    actors = actors or max(1, cluster_cpus // cpus_per_actor)
    ds = ray.data.from_items(todo, override_num_blocks=min(len(todo), max(1, 4 * actors)))
    ds = ds.map(read_task, fn_kwargs={"params": probe.params.to_dict(), "max_duration_s": max_duration_s,
                                      "whole_file_s": whole_file_s, "min_duration_s": min_duration_s},
                num_cpus=0, compute=ray.data.TaskPoolStrategy(size=actors + 1))  # decoding is light beside the models: no CPU reserved
    ds = ds.map_batches(Tagger, batch_size=1, compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=cpus_per_actor, num_gpus=gpus_per_actor,
                        batch_format="numpy",
                        fn_constructor_kwargs={"models": str(models), "threads": cpus_per_actor,
                                               "max_duration_s": max_duration_s, "whole_file_s": whole_file_s,
                                               "fingerprint": fingerprint, "min_duration_s": min_duration_s})
    stamp = time.strftime("%Y%m%d-%H%M%S")
    pending, part = [], 0
    start = time.perf_counter()

    def flush():
        nonlocal pending, part
        if pending:
            table = pa.concat_tables(pending)
            tmp = out / f".part-{stamp}-{part:05d}.tmp"
            pq.write_table(table, tmp)
            tmp.rename(out / f"part-{stamp}-{part:05d}.parquet")  # a part is there whole or not at all
            part, pending = part + 1, []

    bar = tqdm(total=len(todo), unit="file", disable=not progress, file=sys.stderr)
    try:
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            pending.append(batch.cast(schema()))
            n = batch.num_rows
            summary["answered"] += n
            summary["errors"] += batch.num_rows - batch.column("error").null_count
            bar.update(n)
            if sum(t.num_rows for t in pending) >= rows_per_part:
                flush()
    finally:
        flush()
        bar.close()
    summary["seconds"] = time.perf_counter() - start
    return summary


def read(out: str | os.PathLike):
    """The results folder as one pyarrow Table."""
    import pyarrow.parquet as pq

    return pq.read_table(str(out), schema=schema())


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files, folders, or text files with one path "
                    "or URI a line")
    ap.add_argument("--out", type=Path, required=True, help="results: a folder of Parquet part files")
    ap.add_argument("--address", help="Ray cluster to join ('auto', or ray://host:10001); default: a local Ray "
                    "started inside this command")
    ap.add_argument("--actors", type=int, help="recognizers working at once (default: the cluster's CPUs / "
                    "--cpus-per-actor)")
    ap.add_argument("--cpus-per-actor", type=int, default=1, help="CPUs (and threads) of each recognizer")
    ap.add_argument("--num-gpus-per-actor", type=float, default=0, help="GPUs of each recognizer (CUDA actors; "
                    "needs instrec[gpu] on the workers)")
    ap.add_argument("--num-cpus", type=int, help="CPUs of the local Ray (default: this machine's cores)")
    ap.add_argument("--overwrite", action="store_true", help="start over instead of skipping answered files")
    ap.add_argument("--rows-per-part", type=int, default=256, help="rows per Parquet part file")
    ap.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_DURATION_S, help="longest audio analysed")
    ap.add_argument("--min-seconds", type=min_seconds_arg, default=MIN_DURATION_S,
                    help="shortest audio, and least sound in it, analysed (0: any length; files refused as "
                         "too_short by an earlier run count as answered: add --overwrite to ask again)")


def main(args: argparse.Namespace) -> int:
    summary = run(args.inputs, args.out, models=args.models, address=args.address, actors=args.actors,
                  cpus_per_actor=args.cpus_per_actor, gpus_per_actor=args.num_gpus_per_actor,
                  overwrite=args.overwrite, num_cpus=args.num_cpus, rows_per_part=args.rows_per_part,
                  max_duration_s=args.max_seconds, min_duration_s=args.min_seconds)
    rate = summary["answered"] / summary["seconds"] if summary["seconds"] else 0.0
    print(f"{summary['files']} files: {summary['skipped']} already answered, {summary['answered']} answered now "
          f"({summary['errors']} errors) in {summary['seconds']:.1f} s ({rate:.2f} files/s) -> {args.out}")
    return 0
