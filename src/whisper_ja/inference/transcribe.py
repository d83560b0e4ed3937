"""The ``transcribe`` command: Japanese transcripts of audio files.

``whisper-ja transcribe AUDIO... [--model M] [--adapter DIR] [--output-format text|json|srt]
[--backend transformers|ct2]``

Any sample rate, channel count and format libsndfile reads (mp3 included); long audio is cut at
quiet moments into windows of at most 30 s. A file that cannot be read is reported in one line
naming it, the others are still transcribed, and the exit code is 1 when any file failed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

from whisper_ja.audio.constants import SAMPLE_RATE
from whisper_ja.audio.io import AudioError, is_silent, load_audio, split_long_audio
from whisper_ja.config import ConfigError, field
from whisper_ja.inference.decoding import DecodeOptions, decode_audio
from whisper_ja.inference.faster import transcribe_ct2
from whisper_ja.model import load_model
from whisper_ja.model.loading import DEFAULT_MODEL

__all__ = ["Segment", "Transcript", "TranscribeConfig", "format_transcript",
           "transcribe_files"]

log = logging.getLogger(__name__)

OutputFormat = Literal["text", "json", "srt"]
OUTPUT_EXTENSIONS = {"text": "txt", "json": "json", "srt": "srt"}


@dataclass(frozen=True)
class TranscribeConfig:
    """Settings of ``whisper-ja transcribe``."""

    audio: tuple[str, ...] = field(help="audio files to transcribe", positional=True)
    model: str = field(DEFAULT_MODEL, help="hub id, transformers folder or CTranslate2 folder")
    adapter: str | None = field(None, help="PEFT (LoRA) adapter folder applied to the model")
    output_format: OutputFormat = field("text", help="text, json (one object per file) or srt")
    output_dir: str | None = field(
        None, help="write one file per input (NAME.txt/.json/.srt) here instead of stdout")
    backend: Literal["transformers", "ct2"] = field(
        "transformers", help="transformers, or ct2 (CTranslate2 via faster-whisper; model = a "
                             "CTranslate2 folder)")
    beams: int = field(1, help="beam width (1 = greedy)")
    max_new_tokens: int = field(224, help="token limit per 30 s window")
    batch_size: int = field(8, help="windows decoded together")

    def __post_init__(self) -> None:
        if not self.audio:
            raise ConfigError("audio: give at least one audio file")
        if self.beams < 1:
            raise ConfigError(f"beams: must be at least 1, got {self.beams}")
        if not 1 <= self.max_new_tokens <= 440:
            raise ConfigError(f"max_new_tokens: must be in 1..440, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size: must be at least 1, got {self.batch_size}")
        if self.backend == "ct2" and self.adapter:
            raise ConfigError("adapter: not supported with backend ct2 (export a merged model "
                              "with 'whisper-ja export' first)")


@dataclass(frozen=True)
class Segment:
    """A stretch of audio (seconds) and its text."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Transcript:
    """The transcript of one file (``looped``: some window looked like a hallucination)."""

    path: Path
    segments: tuple[Segment, ...]
    looped: bool = False

    @property
    def text(self) -> str:
        """The whole transcript."""
        return "".join(s.text for s in self.segments)


def _load_all(paths: list[Path], progress: bool) -> tuple[dict[Path, np.ndarray], list[str]]:
    audios: dict[Path, np.ndarray] = {}
    errors: list[str] = []
    for path in tqdm(paths, desc="reading", unit="file", disable=not progress):
        try:
            audios[path] = load_audio(path)
        except AudioError as err:
            errors.append(str(err))
    return audios, errors


def _transcribe_transformers(audios: dict[Path, np.ndarray], config: TranscribeConfig,
                             progress: bool) -> list[Transcript]:

    loaded = load_model(config.model, adapter=config.adapter)
    windows: list[tuple[Path, float, float, np.ndarray]] = []
    for path, audio in audios.items():
        offset = 0
        for chunk in split_long_audio(audio):
            windows.append((path, offset / SAMPLE_RATE, (offset + chunk.size) / SAMPLE_RATE,
                            chunk))
            offset += chunk.size
    options = DecodeOptions(num_beams=config.beams, max_new_tokens=config.max_new_tokens,
                            batch_size=config.batch_size)
    results = decode_audio(loaded.model, loaded.processor, [w[3] for w in windows], options,
                           progress=progress)
    segments: dict[Path, list[Segment]] = {path: [] for path in audios}
    looped: set[Path] = set()
    for (path, start, end, _), result in zip(windows, results, strict=True):
        if result.text:
            segments[path].append(Segment(start, end, result.text))
        if result.looped:
            looped.add(path)
    return [Transcript(path, tuple(segments[path]), path in looped) for path in audios]


def _transcribe_ct2(audios: dict[Path, np.ndarray], config: TranscribeConfig) -> list[Transcript]:

    # Same energy gate as the transformers backend: silence stays an empty transcript.
    paths = [path for path, audio in audios.items() if not is_silent(audio)]
    texts = dict(zip(paths, transcribe_ct2(paths, config.model, beam_size=config.beams,
                                           language="ja"), strict=True)) if paths else {}
    return [Transcript(path, (Segment(0.0, audio.size / SAMPLE_RATE, texts[path]),)
                       if texts.get(path) else ())
            for path, audio in audios.items()]


def transcribe_files(config: TranscribeConfig, progress: bool = True,
                     ) -> tuple[list[Transcript], list[str]]:
    """Transcribe the configured files.

    Returns:
        Transcripts of the files that could be read (input order) and one error line per file
        that could not.
    """
    paths = [Path(p) for p in config.audio]
    audios, errors = _load_all(paths, progress and len(paths) > 1)
    if not audios:
        return [], errors
    if config.backend == "ct2":
        return _transcribe_ct2(audios, config), errors
    return _transcribe_transformers(audios, config, progress), errors


def _srt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def _srt(transcript: Transcript) -> str:
    cues = [f"{i}\n{_srt_time(s.start)} --> {_srt_time(s.end)}\n{s.text}\n"
            for i, s in enumerate(transcript.segments, start=1)]
    return "\n".join(cues)


def format_transcript(transcript: Transcript, output_format: OutputFormat) -> str:
    """One transcript as text, a JSON object, or SRT subtitles (newline-terminated)."""
    if output_format == "json":
        record = {"audio": str(transcript.path), "text": transcript.text,
                  "looped": transcript.looped,
                  "segments": [{"start": s.start, "end": s.end, "text": s.text}
                               for s in transcript.segments]}
        return json.dumps(record, ensure_ascii=False) + "\n"
    if output_format == "srt":
        return _srt(transcript)
    return transcript.text + "\n"
