"""The kinds of failure instrec reports, and what each entry point makes of them.

Every error a user can cause is an :class:`AudioError` subclass with a ``kind``; the REST route maps
the kind to an HTTP status, the page to a message, the command line to its exit code, the batch
table to its ``error_kind`` column. Anything else that goes wrong is ``internal``: logged with its
traceback, answered with a short message, and never the end of a batch.

========== ============================================= ====== ===========
kind       meaning                                        HTTP   CLI exit
========== ============================================= ====== ===========
no_input   no file was sent                               400    2 (usage)
missing    the path does not exist (or is a folder)       404    1
empty      the file has 0 bytes                           415    1
not_audio  not a format libsndfile decodes, or damaged    415    1
unusable   decodes, but silent, NaN, no samples, odd rate 422    1
too_long   longer than the limit                          422    1
too_short  shorter than the minimum (too little to hear)  422    1
too_large  upload over the size limit                     413    1
busy       the server's queue is full                     503    (n/a)
internal   a fault in instrec or its libraries            500    3
========== ============================================= ====== ===========
"""

from __future__ import annotations

HTTP_STATUS = {"no_input": 400, "missing": 404, "empty": 415, "not_audio": 415, "unusable": 422, "too_long": 422,
               "too_short": 422, "too_large": 413, "busy": 503, "internal": 500}
#: Exit code of ``instrec predict`` when some file failed this way (the worst code wins).
EXIT_CODE = {"internal": 3}
EXIT_INPUT = 1


class InstrecError(ValueError):
    """A failure with a ``kind`` from the table above and a message a person can act on."""

    kind = "internal"

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.kind]


class AudioError(InstrecError):
    """Audio that cannot be analysed: decodes, but is unusable (silent, NaN, no samples, odd rate)."""

    kind = "unusable"


class Silent(AudioError):
    """Digital silence, or a peak under -90 dBFS: no instrument to name."""


class MissingFile(AudioError):
    kind = "missing"


class EmptyFile(AudioError):
    kind = "empty"


class NotAudio(AudioError):
    """Not a format libsndfile reads, or damaged or truncated data."""

    kind = "not_audio"


class TooLong(AudioError):
    kind = "too_long"


class TooShort(AudioError):
    """Shorter than :data:`instrec.audio.MIN_DURATION_S`, or holding less sound than that: too little of a
    note to tell instruments apart."""

    kind = "too_short"


class TooLarge(AudioError):
    kind = "too_large"


class NoInput(InstrecError):
    kind = "no_input"


def kind_of(exc: BaseException) -> str:
    """The error kind of any exception: its own for ours, ``internal`` for everything else."""
    return exc.kind if isinstance(exc, InstrecError) else "internal"


def exit_code(kinds: list[str]) -> int:
    """``instrec predict``'s exit code for the failures of a run: 0 none, 1 input errors, 3 internal."""
    if not kinds:
        return 0
    return max(EXIT_CODE.get(k, EXIT_INPUT) for k in kinds)


def error_dict(exc: BaseException, file: str | None, *, detail: bool = True) -> dict:
    """The JSON error object ``{"error", "kind", "file"}``. An internal fault's own text is shown only
    with ``detail`` (the command line); a server says to look in its log instead."""
    kind = kind_of(exc)
    if kind != "internal":
        message = str(exc)
    elif detail:
        message = f"internal error: {type(exc).__name__}: {exc}"
    else:
        message = f"internal error ({type(exc).__name__}); the server log has the details"
    return {"error": message, "kind": kind, "file": file}
