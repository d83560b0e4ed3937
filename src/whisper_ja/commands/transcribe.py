"""``whisper-ja transcribe``: timed Japanese transcripts of audio files of any length.

``whisper-ja transcribe AUDIO... [--model M] [--adapter DIR] [--output-format
text|json|srt|vtt] [--output-dir DIR] [--backend auto|transformers|ct2] [--set
longform.mode=batched guards.temperatures=[1.0] vad.threshold=0.4 ...]``

The engine (:mod:`whisper_ja.inference.engine`) decodes; this module reads files and writes
what comes out, so that nothing is lost:

- each file's transcript is written as soon as it is done (``--output-dir``: atomically, one
  file per input), so Ctrl-C keeps every finished file;
- output names never collide: two inputs with the same name keep their folders under
  ``--output-dir`` (``a/x.txt``, ``b/x.txt``), and ``x.wav`` beside ``x.flac`` keep their
  extensions (``x.wav.txt``, ``x.flac.txt``); the renaming is said on stderr;
- several files to stdout are framed per file: JSON lines (one object each), ``path<TAB>text``,
  or a ``==> path <==`` header before each SRT / WebVTT document;
- a file that cannot be read (missing, not audio, cut short) is named in one line and counted;
  the others are still transcribed, and the exit code is then 1.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, TextIO

from tqdm.auto import tqdm

from whisper_ja.audio.io import AudioError, load_audio
from whisper_ja.config import ConfigError, field
from whisper_ja.errors import EXIT_ITEMS_FAILED, EXIT_OK
from whisper_ja.inference.engine import Engine, load_engine
from whisper_ja.inference.options import DecodingOptions, RuntimeSettings
from whisper_ja.inference.subtitles import to_srt, to_vtt
from whisper_ja.inference.timestamps import Segment
from whisper_ja.inference.windows import LongformStats, describe
from whisper_ja.model.loading import DEFAULT_MODEL

__all__ = ["Settings", "TranscribeConfig", "format_transcript", "output_paths", "run"]

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
        "text", help="text, json (one object per file: segments, words, lost speech), srt or "
                     "vtt")
    output_dir: str | None = field(
        None, help="write one file per input here (written as each is done) instead of stdout")
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings, inline=True,
                                     help="backend, device and precision")
    decoding: DecodingOptions = field(default_factory=DecodingOptions, inline=True,
                                      help="how to decode")

    def __post_init__(self) -> None:
        if not self.audio:
            raise ConfigError("audio: give at least one audio file")


Settings = TranscribeConfig
"""The settings of ``whisper-ja transcribe`` (flags and YAML keys)."""


@dataclass(frozen=True)
class Transcript:
    """The transcript of one file."""

    path: Path
    segments: tuple[Segment, ...]
    stats: LongformStats

    @property
    def text(self) -> str:
        """The whole transcript (Japanese segments join without spaces)."""
        return "".join(s.text for s in self.segments)

    @property
    def looped(self) -> bool:
        """Some window still repeats itself after the guards (a likely hallucination)."""
        return any(s.looped for s in self.segments)


def _segment_record(segment: Segment) -> dict[str, object]:
    record: dict[str, object] = {"start": segment.start, "end": segment.end,
                                 "text": segment.text}
    if segment.words:
        record["words"] = [asdict(w) for w in segment.words]
    return record


def format_transcript(transcript: Transcript, output_format: OutputFormat) -> str:
    """One transcript as text, a JSON object (one line), SRT or WebVTT (newline-terminated)."""
    if output_format == "json":
        record = {"audio": str(transcript.path), "text": transcript.text,
                  "looped": transcript.looped, "decoding": describe(transcript.stats),
                  "segments": [_segment_record(s) for s in transcript.segments]}
        return json.dumps(record, ensure_ascii=False) + "\n"
    if output_format == "srt":
        return to_srt(transcript.segments)
    if output_format == "vtt":
        return to_vtt(transcript.segments)
    return transcript.text + "\n"


def output_paths(inputs: Sequence[str], folder: Path, extension: str) -> list[Path]:
    """One output file per input, never two the same.

    Names are the inputs' paths below their common folder (``a/x.wav`` and ``b/x.wav`` keep
    ``a/`` and ``b/``), with the audio extension replaced; inputs that still meet
    (``x.wav`` and ``x.flac``) keep their audio extension (``x.wav.txt``).
    """
    resolved = [Path(p).resolve() for p in inputs]
    common = Path(os.path.commonpath([str(p.parent) for p in resolved])) if resolved else Path()
    relative = [p.relative_to(common) for p in resolved]
    plain = [r.with_suffix(f".{extension}") for r in relative]
    clashing = {p for p in plain if plain.count(p) > 1}
    return [folder / (r.parent / f"{r.name}.{extension}" if p in clashing else p)
            for r, p in zip(relative, plain, strict=True)]


def _write_atomic(target: Path, body: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=target.parent, delete=False, encoding="utf-8",
                                     prefix=f".{target.name}.", suffix=".part") as handle:
        handle.write(body)
    os.replace(handle.name, target)  # a reader never sees half a transcript


def _frame(transcript: Transcript, config: TranscribeConfig) -> str:
    """The transcript as written to stdout, framed when there are several files."""
    body = format_transcript(transcript, config.output_format)
    if len(config.audio) < 2 or config.output_format == "json":
        return body  # JSON: one object per line is already framed
    if config.output_format == "text":
        return f"{transcript.path}\t{body}"
    return f"==> {transcript.path} <==\n{body}\n"


def _transcripts(engine: Engine, paths: Sequence[Path], progress: bool,
                 ) -> Iterator[tuple[int, Transcript | str]]:
    """``(input index, transcript or error line)`` of each file, as it is done.

    Files are read a group at a time, so short files share batches without every file sitting
    in memory at once.
    """
    group = engine.options.batch_size * 4
    with tqdm(total=len(paths), desc="transcribing", unit="file",
              disable=not progress) as bar:
        for first in range(0, len(paths), group):
            indices, audios = [], []
            for index in range(first, min(first + group, len(paths))):
                try:
                    audios.append(load_audio(paths[index]))
                    indices.append(index)
                except AudioError as err:
                    yield index, str(err)
                    bar.update()
            found = engine.transcribe_many(audios) if audios else iter(())
            for row, segments, stats in found:
                yield indices[row], Transcript(paths[indices[row]], tuple(segments), stats)
                bar.update()


def _report(transcript: Transcript) -> None:
    if transcript.looped:
        log.warning("whisper-ja transcribe: %s: output repeats itself (possible "
                    "hallucination)", transcript.path)
    if transcript.stats.lost_windows:
        print(f"whisper-ja transcribe: {transcript.path}: {transcript.stats.lost_speech_s:.1f} s "
              f"of speech VAD heard gave no text ({transcript.stats.lost_windows} window(s) "
              f"at {', '.join(f'{t:g} s' for t in transcript.stats.lost_at)})", file=sys.stderr)


def _targets(config: TranscribeConfig) -> list[Path] | None:
    if config.output_dir is None:
        return None
    folder = Path(config.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    targets = output_paths(config.audio, folder, OUTPUT_EXTENSIONS[config.output_format])
    flat = [folder / Path(a).with_suffix(f".{OUTPUT_EXTENSIONS[config.output_format]}").name
            for a in config.audio]
    if targets != flat:
        print(f"whisper-ja transcribe: inputs share a name: outputs keep their folders or "
              f"extensions under {folder} (e.g. {targets[-1].relative_to(folder)})",
              file=sys.stderr)
    return targets


def run(config: TranscribeConfig) -> int:
    """Run ``whisper-ja transcribe``.

    Returns:
        0 when every file was transcribed, 1 when any failed (each named on stderr). An
        unusable model or setting raises before any file is read.
    """
    out: TextIO = sys.stdout
    targets = _targets(config)
    engine = load_engine(config.model, config.adapter, config.runtime, config.decoding)
    paths = [Path(p) for p in config.audio]
    errors: list[str] = []
    # stdout gets the files in input order: a finished file waits for the ones before it.
    waiting: dict[int, Transcript | str] = {}
    following = 0
    for index, done in _transcripts(engine, paths, sys.stderr.isatty()):
        if isinstance(done, str):
            print(f"whisper-ja transcribe: error: {done}", file=sys.stderr)
            errors.append(done)
        else:
            _report(done)
        if targets is not None:
            if not isinstance(done, str):
                _write_atomic(targets[index], format_transcript(done, config.output_format))
            continue
        waiting[index] = done
        while following in waiting:
            ready = waiting.pop(following)
            if not isinstance(ready, str):
                out.write(_frame(ready, config))
                out.flush()
            following += 1
    if errors:
        print(f"whisper-ja transcribe: {len(errors)} of {len(paths)} file(s) failed",
              file=sys.stderr)
        return EXIT_ITEMS_FAILED
    return EXIT_OK
