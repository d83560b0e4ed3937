"""The ``transcribe`` command: timed Japanese transcripts of audio files of any length.

``whisper-ja transcribe AUDIO... [--model M] [--adapter DIR] [--output-format
text|json|srt|vtt] [--backend transformers|ct2] [longform.mode=sequential|batched]
[longform.vad=true] [longform.word_timestamps=false] [vad.threshold=0.5]``

Any sample rate, channel count and format libsndfile reads (mp3 included). Silero VAD finds the
speech; long audio is decoded in 30 s windows with timestamps, each window seeking from the last
timestamp and conditioned on the previous text (OpenAI's algorithm), or VAD windows batched
(``longform.mode=batched``). Segments carry real times, so SRT and WebVTT cues do too. A file
that cannot be read is reported in one line naming it, the others are still transcribed, and
the exit code is 1 when any file failed.

For programs (servers): :func:`load_transcriber` once, then :meth:`Transcriber.segments` per
recording yields :class:`Segment` objects lazily, whatever the backend.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

from whisper_ja.audio.io import AudioError, load_audio
from whisper_ja.config import ConfigError, field
from whisper_ja.inference.decoding import WINDOW_MAX_TOKENS, DecodeOptions
from whisper_ja.inference.faster_longform import ct2_segments
from whisper_ja.inference.guards import GuardSettings
from whisper_ja.inference.longform import LongformOptions, transcribe_segments
from whisper_ja.inference.subtitles import to_srt, to_vtt
from whisper_ja.inference.timestamps import Segment, Word
from whisper_ja.inference.vad import VadSettings
from whisper_ja.model import load_model
from whisper_ja.model.device import (
    CT2_COMPUTE_TYPES,
    DEVICE_HELP,
    DTYPE_HELP,
    DtypeName,
    check_device,
    resolve_device,
    resolve_dtype,
)
from whisper_ja.model.loading import DEFAULT_MODEL

__all__ = ["Segment", "Transcriber", "Transcript", "TranscribeConfig", "Word",
           "format_transcript", "load_transcriber", "transcribe_files"]

log = logging.getLogger(__name__)

OutputFormat = Literal["text", "json", "srt", "vtt"]
OUTPUT_EXTENSIONS = {"text": "txt", "json": "json", "srt": "srt", "vtt": "vtt"}


@dataclass(frozen=True)
class TranscribeConfig:
    """Settings of ``whisper-ja transcribe``."""

    audio: tuple[str, ...] = field(help="audio files to transcribe", positional=True)
    model: str = field(DEFAULT_MODEL, help="hub id, transformers folder or CTranslate2 folder")
    adapter: str | None = field(None, help="PEFT (LoRA) adapter folder applied to the model")
    output_format: OutputFormat = field(
        "text", help="text, json (one object per file, segments and words), srt or vtt")
    output_dir: str | None = field(
        None, help="write one file per input (NAME.txt/.json/.srt/.vtt) here instead of stdout")
    backend: Literal["transformers", "ct2"] = field(
        "transformers", help="transformers, or ct2 (CTranslate2 via faster-whisper; model = a "
                             "CTranslate2 folder)")
    beams: int = field(1, help="beam width (1 = greedy)")
    max_new_tokens: int = field(WINDOW_MAX_TOKENS, help="token limit per 30 s window")
    guards: GuardSettings = field(default_factory=GuardSettings,
                                  help="repetition guard and temperature fallback")
    batch_size: int = field(8, help="windows decoded together (batched mode)")
    longform: LongformOptions = field(
        default_factory=LongformOptions, help="long audio: mode, VAD, previous text, words")
    vad: VadSettings = field(default_factory=VadSettings, help="Silero VAD settings")
    device: str = field("auto", help=DEVICE_HELP)
    dtype: DtypeName = field("auto", help=DTYPE_HELP + " (transformers backend)")
    compute_type: str = field("int8", help="ct2 backend: CTranslate2 compute type (int8 is "
                              "fastest on CPU, int8_float16 on a GPU; auto = CTranslate2's "
                              "fastest for the device)")

    def __post_init__(self) -> None:
        check_device(self.device)
        if self.compute_type not in CT2_COMPUTE_TYPES:
            raise ConfigError(f"compute_type: must be one of {', '.join(CT2_COMPUTE_TYPES)}, "
                              f"got {self.compute_type!r}")
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


@dataclass(frozen=True)
class Transcriber:
    """A loaded model and its settings: ``segments(audio)`` per recording (servers keep one).

    Attributes:
        config: The settings (backend, decoding, long-form, VAD).
        segments: ``audio (samples,) float32 at 16 kHz -> Iterator[Segment]``, lazily decoded,
            file times in seconds.
    """

    config: TranscribeConfig
    segments: Callable[[np.ndarray], Iterator[Segment]]


def _decode_options(config: TranscribeConfig) -> DecodeOptions:
    return DecodeOptions(num_beams=config.beams, max_new_tokens=config.max_new_tokens,
                         batch_size=config.batch_size, guards=config.guards)


def load_transcriber(config: TranscribeConfig) -> Transcriber:
    """Load the configured model once (transformers or CTranslate2).

    Raises:
        ModelError: the model cannot be loaded.
        Ct2Error: the CTranslate2 folder is incomplete.
    """
    options = _decode_options(config)
    if config.backend == "ct2":
        def ct2(audio: np.ndarray) -> Iterator[Segment]:
            return ct2_segments(audio, config.model, config.longform, options, config.vad,
                                compute_type=config.compute_type, device=config.device)

        return Transcriber(config, ct2)
    device = resolve_device(config.device)
    loaded = load_model(config.model, adapter=config.adapter, device=device,
                        dtype=resolve_dtype(config.dtype, device))

    def transformers(audio: np.ndarray) -> Iterator[Segment]:
        return transcribe_segments(audio, loaded.model, loaded.processor, config.longform,
                                   options, config.vad)

    return Transcriber(config, transformers)


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
    transcriber = load_transcriber(config)
    transcripts = []
    for path, audio in tqdm(audios.items(), desc="transcribing", unit="file",
                            disable=not progress or len(audios) < 2):
        segments = tuple(transcriber.segments(audio))
        transcripts.append(Transcript(path, segments, any(s.looped for s in segments)))
    return transcripts, errors


def _segment_record(segment: Segment) -> dict[str, object]:
    record: dict[str, object] = {"start": segment.start, "end": segment.end,
                                 "text": segment.text}
    if segment.words:
        record["words"] = [asdict(w) for w in segment.words]
    return record


def format_transcript(transcript: Transcript, output_format: OutputFormat) -> str:
    """One transcript as text, a JSON object, SRT or WebVTT subtitles (newline-terminated)."""
    if output_format == "json":
        record = {"audio": str(transcript.path), "text": transcript.text,
                  "looped": transcript.looped,
                  "segments": [_segment_record(s) for s in transcript.segments]}
        return json.dumps(record, ensure_ascii=False) + "\n"
    if output_format == "srt":
        return to_srt(transcript.segments)
    if output_format == "vtt":
        return to_vtt(transcript.segments)
    return transcript.text + "\n"
