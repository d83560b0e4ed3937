"""Multi-sentence and long recordings with exact sentence boundaries, made from clips.

``whisper-ja make-longform`` joins the clips of a manifest (e.g. held-out synthetic test
utterances) into longer recordings: each clip trimmed to its speech, pauses of random length
between them, and optionally stretches of faint noise with no speech at all. The record's
``segments`` hold every sentence's exact start and end, and ``extra["noise"]`` the noise-only
stretches, so such a set both trains timestamps (recordings of at most 30 s) and tests long-form
transcription (minutes; ``evaluate --suite longform``).

Clips are used in manifest order, each once; ``extra["previous_text"]`` is the text of the clip
before the recording's first one (the previous-text prompt of training). A clip whose audio is
missing, unreadable or cut short (:class:`~whisper_ja.errors.TruncatedAudioError`) is left out,
so a recording's audio and its text never disagree; the caller collects those clips to count and
name them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from whisper_ja.audio.constants import SAMPLE_RATE
from whisper_ja.audio.io import load_audio
from whisper_ja.config import ConfigError, field
from whisper_ja.data.manifest import Utterance
from whisper_ja.data.timestamps import TimedText
from whisper_ja.errors import AudioError

__all__ = ["LongformSettings", "make_longform", "pack_by_voice", "speech_bounds"]

FRAME = SAMPLE_RATE // 100
"""10 ms frames for trimming."""


@dataclass(frozen=True)
class LongformSettings:
    """How recordings are assembled."""

    max_seconds: float = field(30.0, help="longest recording (s); 30 = trainable clips")
    min_pause: float = field(0.2, help="shortest pause between sentences (s)")
    max_pause: float = field(1.5, help="longest pause between sentences (s)")
    noise_stretches: int = field(0, help="noise-only stretches per recording")
    noise_seconds: float = field(3.0, help="length of each noise-only stretch (s)")
    noise_dbfs: float = field(-50.0, help="level of the background and noise stretches (dBFS)")
    seed: int = field(0, help="random seed (pauses, noise)")

    def __post_init__(self) -> None:
        if self.max_seconds <= 0:
            raise ConfigError(f"max_seconds: must be > 0, got {self.max_seconds}")
        if not 0 <= self.min_pause <= self.max_pause:
            raise ConfigError(f"min_pause/max_pause: need 0 <= min <= max, got "
                              f"{self.min_pause}, {self.max_pause}")
        if self.noise_stretches < 0 or self.noise_seconds < 0:
            raise ConfigError("noise_stretches and noise_seconds must be >= 0")


def speech_bounds(audio: np.ndarray, floor_db: float = 40.0) -> tuple[int, int]:
    """First and last sample of speech: 10 ms frames within ``floor_db`` of the loudest one.

    Clean synthetic clips need no VAD model; this keeps their boundaries exact to 10 ms.
    """
    usable = audio.size // FRAME * FRAME
    if usable == 0:
        return 0, audio.size
    rms = np.sqrt(np.mean(np.square(audio[:usable].reshape(-1, FRAME), dtype=np.float64), 1))
    level = 20 * np.log10(np.maximum(rms, 1e-10))
    loud = np.flatnonzero(level > level.max() - floor_db)
    return int(loud[0]) * FRAME, min(audio.size, (int(loud[-1]) + 1) * FRAME)


def _noise(rng: np.random.Generator, samples: int, dbfs: float) -> np.ndarray:
    return (10 ** (dbfs / 20) * rng.standard_normal(samples)).astype(np.float32)


@dataclass
class _Builder:
    """One recording being assembled."""

    rng: np.random.Generator
    settings: LongformSettings
    parts: list[np.ndarray]
    segments: list[TimedText]
    noise: list[tuple[float, float]]
    sources: list[str]
    samples: int = 0

    def add(self, piece: np.ndarray) -> float:
        start = self.samples / SAMPLE_RATE
        self.parts.append(piece.astype(np.float32))
        self.samples += piece.size
        return start

    def pause(self) -> None:
        seconds = self.rng.uniform(self.settings.min_pause, self.settings.max_pause)
        self.add(_noise(self.rng, round(seconds * SAMPLE_RATE), self.settings.noise_dbfs))


def _fits(builder: _Builder, speech: np.ndarray, settings: LongformSettings) -> bool:
    room = settings.max_seconds * SAMPLE_RATE - builder.samples
    return speech.size + settings.max_pause * SAMPLE_RATE <= room


def _next_clip(queue: list[Utterance], skipped: list[AudioError] | None) -> np.ndarray | None:
    """The first queued clip's audio; a bad clip is dropped from the queue into ``skipped``.

    Raises:
        AudioError: the clip's audio is bad and ``skipped`` is None.
    """
    while queue:
        try:
            return load_audio(queue[0].audio)
        except AudioError as err:
            if skipped is None:
                raise
            skipped.append(err)
            queue.pop(0)
    return None


def make_longform(utterances: Sequence[Utterance], out_dir: Path,
                  settings: LongformSettings = LongformSettings(),
                  prefix: str = "longform",
                  skipped: list[AudioError] | None = None) -> list[Utterance]:
    """Join clips into recordings with exact sentence boundaries and write them as WAV.

    Args:
        utterances: Source clips, used in order, each at most once.
        out_dir: Folder for the WAV files (created).
        settings: Lengths, pauses and noise.
        prefix: Id prefix of the recordings.
        skipped: Where the errors of clips whose audio is missing, unreadable or truncated go
            (each names its file); those clips are left out and the run goes on. ``None``: the
            first such clip raises. A list the caller passes, because the return value stays
            the records every caller writes.

    Returns:
        The recordings' records (corpus ``synthetic-longform`` when any source is synthetic);
        not yet written to a manifest.

    Raises:
        AudioError: a clip's audio is bad and ``skipped`` is None.
    """
    # A recording keeps its clips' language (English clips joined for training stay English),
    # so the clips must share one; checked before any audio is written.
    languages = {u.language() for u in utterances}
    if len(languages) > 1:
        raise ConfigError(f"clips of several languages ({sorted(languages)}): join each "
                          "language's clips apart")
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(settings.seed)
    records: list[Utterance] = []
    queue = list(utterances)
    previous_text = ""
    while queue:
        builder = _Builder(rng, settings, [], [], [], [])
        builder.pause()
        while (audio := _next_clip(queue, skipped)) is not None:
            start, end = speech_bounds(audio)
            if builder.segments and not _fits(builder, audio[start:end], settings):
                break
            utt = queue.pop(0)
            at = builder.add(audio[start:end])
            builder.segments.append(TimedText(round(at, 3), round(at + (end - start)
                                                                  / SAMPLE_RATE, 3), utt.text))
            builder.sources.append(utt.id)
            builder.pause()
            if len(builder.noise) < settings.noise_stretches and rng.random() < 0.3:
                noise = _noise(rng, round(settings.noise_seconds * SAMPLE_RATE),
                               settings.noise_dbfs + 10)
                if builder.samples + noise.size <= settings.max_seconds * SAMPLE_RATE:
                    at = builder.add(noise)
                    builder.noise.append((round(at, 3), round(at + settings.noise_seconds, 3)))
                    builder.pause()
        if not builder.segments:  # every clip left was bad
            break
        records.append(_write(builder, utterances, out_dir, f"{prefix}-{len(records):04d}",
                              previous_text))
        previous_text = builder.segments[-1].text
    return records


def pack_by_voice(utterances: Sequence[Utterance], out_dir: Path, settings: LongformSettings,
                  prefix: str) -> list[Utterance]:
    """Join training clips of one voice at a time into recordings of up to ``max_seconds``.

    Each voice's clips are joined in a seeded random order (``settings.seed``), so a recording
    never mixes voices and its sentences are not in corpus order. Most clips are 2-4 s while
    the encoder runs on at least 8 s, so a recording of two or three sentences costs one
    encoder pass where its clips cost two or three, and its ``segments`` give timestamped
    labels several segments, as long audio has.

    Returns:
        The recordings' records (see :func:`make_longform`).
    """
    rng = random.Random(settings.seed)
    by_voice: dict[str, list[Utterance]] = {}
    for utt in utterances:
        by_voice.setdefault(utt.speaker, []).append(utt)
    ordered: list[Utterance] = []
    for voice in sorted(by_voice):
        rng.shuffle(by_voice[voice])
        ordered += by_voice[voice]
    return make_longform(ordered, out_dir, settings, prefix=prefix)


def _write(builder: _Builder, sources: Sequence[Utterance], out_dir: Path, name: str,
           previous_text: str) -> Utterance:
    audio = np.concatenate(builder.parts)
    path = out_dir / f"{name}.wav"
    sf.write(path, audio, SAMPLE_RATE, subtype="FLOAT")
    joined = set(builder.sources)
    used = {u.id: u for u in sources if u.id in joined}
    synthetic = any(u.is_synthetic for u in used.values())
    language = next(iter({u.language() for u in used.values()}))
    extra_language = {} if language == "ja" else {"language": language}
    return Utterance(
        id=name, audio=str(path), text="".join(s.text for s in builder.segments),
        duration=round(audio.size / SAMPLE_RATE, 3),
        corpus="synthetic-longform" if synthetic else "longform",
        speaker=",".join(sorted({u.speaker for u in used.values() if u.speaker})),
        split=next(iter({u.split for u in used.values()})) if len(
            {u.split for u in used.values()}) == 1 else "",
        extra={"sources": builder.sources, "noise": [list(n) for n in builder.noise],
               "previous_text": previous_text, "synthetic": synthetic, **extra_language},
        segments=tuple(builder.segments))
