"""Non-Japanese synthetic speech for the retention check and for forgetting-limiting data mixing.

espeak-ng reads sentences in other languages offline. Two sets come from here:

- the **retention test set** (:func:`synthesize_retention_set`): hand-written English (and
  optionally German) sentences shipped under ``whisper_ja/resources``, split ``test``;
- an **English training set** (:func:`synthesize_english_training_set`): sentences composed
  from templates, none of which is in the test set, split ``train``, to mix a small share of
  English into Japanese fine-tuning. Its records carry ``extra["language"] = "en"``: training
  must put the ``<|en|>`` language token, not ``<|ja|>``, in their labels. It is read by
  other espeak-ng voices than the test set (:data:`ESPEAK_TRAINING_VOICES`), so that mixing it
  in cannot pass for "less forgetting" merely by teaching the model the test voices.
  ``whisper-ja synth-english`` makes it from the command line.

Every record is labelled synthetic (corpus ``synthetic-espeak``, ``extra["synthetic"]``).
espeak-ng is the Debian/Ubuntu package ``espeak-ng`` (the Makefile installs it).
"""

from __future__ import annotations

import io
import itertools
import logging
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

from whisper_ja.audio.constants import SAMPLE_RATE
from whisper_ja.config import ConfigError, field
from whisper_ja.data.manifest import Utterance, write_manifest
from whisper_ja.errors import EspeakError

__all__ = [
    "ESPEAK_TRAINING_VOICES",
    "ESPEAK_VOICES",
    "RETENTION_CORPUS",
    "EspeakError",
    "SynthEnglishConfig",
    "english_training_sentences",
    "espeak",
    "retention_sentences",
    "synthesize_english_training_set",
    "synthesize_retention_set",
]

log = logging.getLogger(__name__)

RETENTION_CORPUS = "synthetic-espeak"

ESPEAK_VOICES: dict[str, tuple[str, ...]] = {
    "en": ("en-us", "en-gb", "en-us+f3", "en-gb-x-rp+m3", "en-us+f2"),
    "de": ("de", "de+f3", "de+m3"),
}
"""espeak-ng voices (language plus variant) of the retention test set, per language."""

ESPEAK_TRAINING_VOICES: dict[str, tuple[str, ...]] = {
    "en": ("en-gb-scotland", "en-029+m1", "en-us-nyc+f4", "en-gb-x-gbclan+m7", "en-us+f5"),
}
"""espeak-ng voices of the English training set: none of them reads the test set."""

_SUBJECTS = ("My sister", "The teacher", "Our neighbor", "A young man", "The old woman",
             "My friend", "The driver", "Your cousin", "The nurse", "Every student",
             "The manager", "His father", "Her daughter", "The farmer", "A tourist")
_ACTIONS = ("reads a short story", "cooks dinner", "cleans the kitchen", "waits for the bus",
            "writes a long letter", "walks the dog", "buys fresh bread", "fixes the bicycle",
            "paints the fence", "calls the office", "plants some flowers", "washes the car",
            "studies for the exam", "carries the heavy boxes", "sings a quiet song")
_WHEN = ("in the morning", "after work", "on Sunday", "at the library", "near the river",
         "before lunch", "every evening", "during the holidays", "at the station",
         "in the garden", "late at night", "next to the window", "on the way home",
         "before the meeting", "with a smile")


def retention_sentences(language: str) -> list[str]:
    """The shipped test sentences of ``language`` (``en`` or ``de``)."""
    path = resources.files("whisper_ja") / "resources" / f"retention_sentences_{language}.txt"
    if not path.is_file():
        raise ValueError(f"no retention sentences for language {language!r}; "
                         f"available: {sorted(ESPEAK_VOICES)}")
    return [s.strip() for s in path.read_text(encoding="utf-8").splitlines()
            if s.strip() and not s.startswith("#")]


def english_training_sentences(size: int, seed: int = 0) -> list[str]:
    """``size`` distinct English sentences built from templates (none is a test sentence).

    Raises:
        ValueError: more sentences asked for than the templates can make.
    """
    combos = list(itertools.product(_SUBJECTS, _ACTIONS, _WHEN))
    if size > len(combos):
        raise ValueError(f"size: at most {len(combos)} template sentences, got {size}")
    picks = np.random.default_rng(seed).choice(len(combos), size=size, replace=False)
    return [f"{s} {a} {w}." for s, a, w in (combos[int(i)] for i in picks)]


def espeak(text: str, voice: str, speed_wpm: int = 165) -> np.ndarray:
    """Speak ``text`` with espeak-ng; 16 kHz mono float32 audio.

    Raises:
        EspeakError: espeak-ng is not installed, or it failed on this text.
    """
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise EspeakError("espeak-ng is not installed: apt-get install espeak-ng "
                          "(needed for the retention check's non-Japanese speech)")
    proc = subprocess.run([binary, "-v", voice, "-s", str(speed_wpm), "--stdout", text],
                          capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        raise EspeakError(f"espeak-ng failed (voice {voice}) on {text!r}: "
                          f"{proc.stderr.decode(errors='replace').strip()}")
    audio, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    return soxr.resample(audio, rate, SAMPLE_RATE).astype(np.float32)


def _synthesize(out: Path, items: Sequence[tuple[str, str]], split: str, seed: int,
                progress: bool, voice_table: Mapping[str, tuple[str, ...]] = ESPEAK_VOICES
                ) -> Path:
    """Speak ``(language, sentence)`` items with seeded voices and speeds; write a manifest."""
    (out / "wav").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    utterances = []
    for i, (language, text) in enumerate(tqdm(items, desc="espeak-ng", disable=not progress)):
        voices = voice_table[language]
        voice = voices[int(rng.integers(len(voices)))]
        speed = int(rng.integers(150, 181))
        path = out / "wav" / f"{language}_{split}_{i:05d}.wav"
        audio = espeak(text, voice, speed)
        sf.write(path, audio, SAMPLE_RATE)
        utterances.append(Utterance(
            id=f"{RETENTION_CORPUS}/{language}_{split}_{i:05d}", audio=str(path.resolve()),
            text=text, duration=round(len(audio) / 16000, 3), corpus=RETENTION_CORPUS,
            speaker=f"espeak-ng:{voice}", split=split,
            extra={"language": language, "synthetic": True, "engine": "espeak-ng",
                   "speed_wpm": speed}))
    manifest = out / "manifest.jsonl"
    write_manifest(manifest, utterances)
    log.info("wrote %d synthetic (espeak-ng) utterances to %s", len(utterances), manifest)
    return manifest


def synthesize_retention_set(out_dir: str | Path, languages: Sequence[str] = ("en",), *,
                             seed: int = 0, progress: bool = True) -> Path:
    """Synthesize the retention test set (split ``test``); returns the manifest path.

    Args:
        out_dir: Output folder (``manifest.jsonl`` and ``wav/``).
        languages: Languages with shipped sentences (``en``, ``de``).
        seed: Seed of the voice and speed choices.
        progress: Show a progress bar.
    """
    items = [(lang, s) for lang in languages for s in retention_sentences(lang)]
    return _synthesize(Path(out_dir), items, "test", seed, progress)


def synthesize_english_training_set(out_dir: str | Path, size: int = 100, *, seed: int = 0,
                                    progress: bool = True) -> Path:
    """Synthesize English training data (template sentences, split ``train``) for mixing.

    Records carry ``extra["language"] = "en"``; training labels them with ``<|en|>``. The
    voices are :data:`ESPEAK_TRAINING_VOICES`, disjoint from the test set's. Returns the
    manifest path.
    """
    items = [("en", s) for s in english_training_sentences(size, seed)]
    return _synthesize(Path(out_dir), items, "train", seed, progress, ESPEAK_TRAINING_VOICES)


@dataclass(frozen=True)
class SynthEnglishConfig:
    """Settings of ``whisper-ja synth-english``."""

    out: Path = field(help="output folder (manifest.jsonl, wav/)")
    size: int = field(200, help="number of English training utterances (template sentences)")
    seed: int = field(0, help="seed of the sentence, voice and speed choices")
    progress: bool = field(True, help="show a progress bar")

    def __post_init__(self) -> None:
        most = len(_SUBJECTS) * len(_ACTIONS) * len(_WHEN)
        if not 1 <= self.size <= most:
            raise ConfigError(f"size: must be 1..{most} (distinct template sentences), "
                              f"got {self.size}")
