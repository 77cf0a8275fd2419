"""Sing a part: a singer for the corpus's voice parts, beside FluidSynth and the sampler.

The corpus's other voices are held vowels ("oohs" and "aahs" of General MIDI soundfonts and FreePats)
and one amateur male singer; none sings words. :class:`Singer` sings a part's notes with words through
Sinsy (HMM-based singing synthesis, Nagoya Institute of Technology; ``pysinsy`` on PyPI, MIT), whose
voice model ``nitech_jp_song070_f001`` was trained on a real female singer's recordings of Japanese
songs (NIT SONG070 F001, CC BY 3.0). It sings what the model learnt of her: her timbre, vibrato,
onsets and the consonants between syllables.

The part becomes a MusicXML score at 60 beats a minute, :data:`DIVISIONS` divisions a beat (10 ms):
the notes of :func:`sung_notes` (a singer sings one note at a time: the highest of notes that begin
together, each cut where the next begins, none under :data:`MIN_NOTE_S`), rests between them, notes
across a bar line tied. Every note gets a syllable of :data:`SYLLABLES`, drawn by a generator seeded
from the notes, so the same part gives the same samples. Velocities, controllers and bends are not sung: Sinsy sings dynamic marks alike, and the
voice model has its own vibrato.

The model sings held notes off the asked pitch by up to about three and a half semitones, by how much
depending on the note and the syllable (docs/corpus.md gives the figures; ``tests/test_singer.py`` checks
two notes), so the corpus lets it sing single notes and short exercises only (the notes corpus, :mod:`corpus.notes`),
where no accompaniment makes a wrong pitch heard; songs keep the other voices.

The score is written by hand rather than through music21: a part's note lengths are arbitrary times,
which notation would spell as chains of tied tuplets; Sinsy reads only the divisions.
"""

from __future__ import annotations

import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np

from corpus.music import Note, Part
from instrec.audio import resample

DIVISIONS = 100  #: MusicXML divisions per beat; at 60 beats a minute one is 10 ms
BEAT_S = 1.0
BAR = 4 * DIVISIONS
MIN_NOTE_S = 0.06  #: shorter notes are left out: too short to sing a syllable
#: Japanese morae the singer sings, one per note: the five vowels and consonant-vowel syllables
SYLLABLES = tuple("あいうえおかきくけこさしすせそたてとなにぬねのはひふへほまみむめもやゆよらりるれろわ")
_STEPS = ("C", "C", "D", "D", "E", "F", "F", "G", "G", "A", "A", "B")
_ALTER = (0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 1, 0)
FULL_SCALE = 32768.0  #: Sinsy's samples are 16-bit values as floats


class SingerError(RuntimeError):
    """The singer cannot be used or could not sing, saying why."""


def sung_notes(part: Part) -> list[Note]:
    """The notes a singer sings of ``part``: in order of onset, the highest of notes that begin together,
    each cut where the next begins, those shorter than :data:`MIN_NOTE_S` left out."""
    notes = sorted(part.notes, key=lambda n: (n.start, -n.pitch))
    notes = [n for k, n in enumerate(notes) if k == 0 or n.start > notes[k - 1].start]
    out = []
    for k, n in enumerate(notes):
        end = min(n.end, notes[k + 1].start) if k + 1 < len(notes) else n.end
        if end - n.start >= MIN_NOTE_S:
            out.append(Note(n.start, end, n.pitch, n.velocity))
    return out


def score(part: Part, seconds: float) -> str:
    """MusicXML of the notes :func:`sung_notes` keeps of ``part``, ``seconds`` long at least."""
    notes = sung_notes(part)
    seed = zlib.crc32(repr([(round(n.start, 4), round(n.end, 4), n.pitch) for n in notes]).encode())
    rng = np.random.default_rng(seed)
    events = []  # (divisions, pitch or None, syllable)
    t = 0
    for n in notes:
        start, end = int(round(n.start / BEAT_S * DIVISIONS)), int(round(n.end / BEAT_S * DIVISIONS))
        start = max(start, t)
        if start > t:
            events.append((start - t, None, None))
        if end > start:
            events.append((end - start, n.pitch, SYLLABLES[int(rng.integers(len(SYLLABLES)))]))
            t = end
    total = max(int(np.ceil(seconds / BEAT_S * DIVISIONS)), t)
    if total > t:
        events.append((total - t, None, None))
    bars, bar, room = [], [], BAR
    for length, pitch, syllable in events:
        first = True
        while length > 0:
            d = min(length, room)
            if pitch is None:
                bar.append(f"<note><rest/><duration>{d}</duration></note>")
            else:
                ties = ("" if first else '<tie type="stop"/>') + ('<tie type="start"/>' if d < length else "")
                alter = f"<alter>{_ALTER[pitch % 12]}</alter>" if _ALTER[pitch % 12] else ""
                lyric = f"<lyric><text>{syllable}</text></lyric>" if first else ""
                bar.append(f"<note><pitch><step>{_STEPS[pitch % 12]}</step>{alter}<octave>{pitch // 12 - 1}</octave>"
                           f"</pitch><duration>{d}</duration>{ties}{lyric}</note>")
            length -= d
            room -= d
            first = False
            if room == 0:
                bars.append(bar)
                bar, room = [], BAR
    if bar:
        bars.append([*bar, f"<note><rest/><duration>{room}</duration></note>"])
    head = (f"<attributes><divisions>{DIVISIONS}</divisions><key><fifths>0</fifths></key><time><beats>4</beats>"
            f"<beat-type>4</beat-type></time></attributes>"
            f'<direction><direction-type><metronome><beat-unit>quarter</beat-unit><per-minute>{60 / BEAT_S:g}'
            f'</per-minute></metronome></direction-type><sound tempo="{60 / BEAT_S:g}"/></direction>')
    measures = "".join(f'<measure number="{k + 1}">{head if k == 0 else ""}{"".join(b)}</measure>'
                       for k, b in enumerate(bars))
    return ('<?xml version="1.0" encoding="UTF-8"?><score-partwise version="3.1"><part-list>'
            '<score-part id="P1"><part-name>voice</part-name></score-part></part-list>'
            f'<part id="P1">{measures}</part></score-partwise>')


def _pysinsy():
    try:
        with warnings.catch_warnings():  # pysinsy finds its files with setuptools' deprecated pkg_resources
            warnings.simplefilter("ignore", UserWarning)
            import pysinsy
    except ImportError as exc:
        raise SingerError(f"the singer needs pysinsy ({exc}): pip install 'instrec[singer]'") from None
    return pysinsy


def voice_models() -> Path:
    """The folder of the voice models that the installed ``pysinsy`` ships."""
    return Path(_pysinsy().get_default_htsvoice()).parent


class Singer:
    """Sinsy with one voice model (an ``.htsvoice`` file; default the one ``pysinsy`` ships)."""

    def __init__(self, voice: str | Path | None = None, sample_rate: int = 44100):
        pysinsy = _pysinsy()
        self.voice = Path(voice or pysinsy.get_default_htsvoice())
        if not self.voice.is_file():
            raise SingerError(f"{self.voice}: voice model not found")
        self.sample_rate = sample_rate
        self._sinsy = pysinsy.Sinsy()
        if not self._sinsy.setLanguages("j", pysinsy.get_default_dic_dir()):
            raise SingerError("Sinsy could not load its Japanese dictionary")
        if not self._sinsy.loadVoices(str(self.voice)):
            raise SingerError(f"{self.voice}: Sinsy could not load this voice model")

    def render(self, part: Part, n_samples: int) -> np.ndarray:
        """Sing one part -> float32 (n_samples, 2), silence where it has no note long enough to sing."""
        out = np.zeros((n_samples, 2), np.float32)
        if not sung_notes(part):
            return out
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "part.musicxml"
            path.write_text(score(part, n_samples / self.sample_rate), encoding="utf-8")
            if not self._sinsy.loadScoreFromMusicXML(str(path)):
                raise SingerError("Sinsy could not read the part's score")
            try:
                wav, sr = self._sinsy.synthesize()
            finally:
                self._sinsy.clearScore()
        y = resample(np.asarray(wav, np.float64) / FULL_SCALE, sr, self.sample_rate)
        n = min(n_samples, len(y))
        out[:n] = y[:n, None]
        return out
