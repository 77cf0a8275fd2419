"""Command line: ``instrec predict PATH... [--json]``, ``instrec info`` and ``instrec serve``
(``python -m instrec`` is the same). ``-`` as a PATH reads a file from standard input
(``curl -s URL | instrec predict -``).

Exit codes of ``predict``: 0 when every file succeeded, 1 when some file could not be analysed
(missing, empty, not audio, unusable, too long), 3 when an internal error happened, 2 for bad usage.
Each failure is reported (a JSON error object with ``--json``, see :mod:`instrec.errors`) and the
run goes on with the next file. A reader that stops reading early (``instrec info | head``) ends the
command quietly with exit code 141, as a program ended by SIGPIPE.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from . import errors
from .audio import AUDIO_EXTENSIONS, MIN_DURATION_S, min_seconds_arg
from .recognizer import ModelError, Recognizer, default_models_dir

#: the PATH that stands for standard input
STDIN = Path("-")


def expand(paths: list[Path]) -> list[Path]:
    """Files as given; folders -> every audio file inside (recursively, sorted)."""
    out = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)
        else:
            out.append(p)
    return out


def table(results: list[dict]) -> str:
    lines = [f"{'file':<40} {'seconds':>8}  instruments (score)"]
    for r in results:
        name = str(r.get("file"))[-40:]
        if "error" in r:
            lines.append(f"{name:<40} {'':>8}  error: {r['error']}")
            continue
        present = ", ".join(f"{c} ({r['scores'][c]:.2f})" for c in r["instruments"]) or "none over threshold"
        best = r["ranking"][0]
        lines.append(f"{name:<40} {r['duration_s']:>8.1f}  {present}   [top: {best} {r['scores'][best]:.2f}]")
    return "\n".join(lines)


@contextlib.contextmanager
def reading_stdin(files: list[Path]) -> Iterator[tuple[list[Path], Path | None]]:
    """``files`` with :data:`STDIN` replaced by a temporary copy of standard input, and that copy (None when
    no file is ``-``); the copy is named ``-``, so that answers and errors name it as the user did."""
    if STDIN not in files:
        yield files, None
        return
    with tempfile.TemporaryDirectory(prefix="instrec-stdin-") as tmp:
        piped = Path(tmp) / "-"
        with open(piped, "wb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out)
        yield [piped if f == STDIN else f for f in files], piped


#: the exit code of a command whose output pipe was closed by its reader (128 + SIGPIPE)
EXIT_PIPE_CLOSED = 141


def main(argv: list[str] | None = None) -> int:
    try:
        code = run(argv)
        sys.stdout.flush()  # a closed pipe shows here rather than at the interpreter's exit
        return code
    except BrokenPipeError:
        # Python would report the pipe again when it flushes stdout at exit: point stdout at nothing first
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE_CLOSED


def run(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="instrec", description="Which IRMAS instruments play in a recording.")
    ap.add_argument("--models", type=Path, help="folder with the ONNX models and manifest.json "
                    "(default: INSTREC_MODELS, else the models shipped in the package)")
    ap.add_argument("--precision", choices=("fp32", "int8"), help="which shipped models: fp32 (default) or int8 "
                    "(faster, see the README for how they compare); ignored with --models")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="recognise instruments in files or folders")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="audio files or folders; - reads a file "
                   "from standard input")
    p.add_argument("--json", action="store_true", help="print a JSON array of answers")
    p.add_argument("--min-seconds", type=min_seconds_arg, default=MIN_DURATION_S, metavar="S",
                   help="shortest audio, and least sound in it, that is answered (default %(default)s s; shorter "
                        "gets the error too_short; 0 answers any length, however little it can tell)")
    sub.add_parser("info", help="the models, their training data and metrics, the execution provider")
    s = sub.add_parser("serve", help="the web app and HTTP API (needs the app extra: pip install 'instrec[app]')")
    s.add_argument("--host", help="default GRADIO_SERVER_NAME, else 127.0.0.1")
    s.add_argument("--port", type=int, help="default GRADIO_SERVER_PORT, else 7860")
    b = sub.add_parser("batch", help="tag a collection on Ray Data into Parquet (needs the batch extra: "
                       "pip install 'instrec[batch]')")
    from .batch import add_arguments

    add_arguments(b)
    args = ap.parse_args(argv)
    if args.precision and not args.models:
        args.models = default_models_dir(args.precision)
    if args.command == "batch":
        try:
            import pyarrow  # noqa: F401
            import ray.data  # noqa: F401
        except ImportError as exc:
            print(f"error: batch tagging needs Ray Data ({exc}): pip install 'instrec[batch]'", file=sys.stderr)
            return 2
        from .batch import main as batch_main

        return batch_main(args)
    if args.command == "serve":
        try:
            from .app import serve
        except ImportError as exc:
            print(f"error: the app needs gradio ({exc}): pip install 'instrec[app]'", file=sys.stderr)
            return 2
        serve(args.host, args.port, args.models)
        return 0
    try:
        rec = Recognizer(args.models, min_duration_s=getattr(args, "min_seconds", MIN_DURATION_S))
    except (ModelError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "info":
        print(json.dumps(rec.info(), indent=1))
        return 0
    files = expand(args.paths)
    if not files:
        print("error: no audio files found in " + ", ".join(map(str, args.paths)), file=sys.stderr)
        return 2
    if STDIN in files and sys.stdin.isatty():
        print("error: - reads an audio file from standard input: pipe one in (instrec predict - < song.flac)",
              file=sys.stderr)
        return 2
    results, failed = [], []
    with reading_stdin(files) as (files, piped):
        for f, answer in rec.predict_many(files):  # the next file is decoded while this one is analysed
            shown = str(STDIN) if f == piped else str(f)
            if isinstance(answer, Exception):  # one file's failure, of any kind, never ends the run
                if errors.kind_of(answer) == "internal":
                    logging.getLogger("instrec").error("internal error on %s", shown, exc_info=answer)
                failed.append(errors.kind_of(answer))
                results.append(errors.error_dict(answer, shown))
            else:
                results.append(answer.to_dict())
    print(json.dumps(results, indent=1) if args.json else table(results))
    return errors.exit_code(failed)
