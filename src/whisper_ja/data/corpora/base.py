"""What every corpus reader shares: the candidate record, text-line decoding, audio lookup.

A corpus reader turns a corpus as it lies on disk (or comes from ``datasets``) into
:class:`Candidate` records. It does not judge them: :mod:`whisper_ja.data.prepare` checks each
candidate (audio present and readable, text non-empty and decodable, not longer than Whisper's
window, id unique) and skips or rejects it by the user's policy, so that every reader treats
bad input the same way and nothing disappears silently.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whisper_ja.data.corpora.settings import PrepareConfig
from whisper_ja.errors import CorpusError

__all__ = [
    "AUDIO_SUFFIXES",
    "Candidate",
    "CorpusError",
    "ReaderContext",
    "read_lines",
    "read_table_rows",
    "resolve_root",
]

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus")
"""Audio files that libsndfile (through soundfile) reads."""


@dataclass
class Candidate:
    """One utterance as a reader found it, before checks.

    Attributes:
        id: Manifest id (corpus prefix included).
        audio: Path of the audio file (may be missing: the check decides).
        text: Transcript; None when the transcript is missing altogether.
        where: File and line (or file) the record came from, for messages.
        speaker: Speaker id, empty if unknown.
        extra: Corpus fields kept verbatim (``official_split`` among them).
        text_decoded: False when the transcript bytes were not valid UTF-8.
    """

    id: str
    audio: Path
    text: str | None
    where: str
    speaker: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    text_decoded: bool = True


@dataclass
class ReaderContext:
    """What a reader gets: the settings, a folder for audio it must extract, a notes counter."""

    config: PrepareConfig
    audio_dir: Path
    notes: Counter[str] = field(default_factory=Counter)


def read_lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """Yield ``(line number, text, decoded_ok)`` for each line of a text file.

    Each line is decoded on its own, so one bad line (non-UTF-8 bytes) is reported with its
    line number instead of failing the whole file; its text is the lenient decoding.
    """
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 byte-order mark is not part of the text
            raw = raw.rstrip(b"\r\n")
            try:
                yield number, raw.decode("utf-8"), True
            except UnicodeDecodeError:
                yield number, raw.decode("utf-8", errors="replace"), False


def read_table_rows(path: Path, delimiter: str, unquoted: bool = False
                    ) -> Iterator[tuple[int, dict[str, str], bool]]:
    """Yield ``(line number, row by header name, decoded_ok)`` for a CSV/TSV with a header.

    With ``unquoted``, quote characters are plain text (Common Voice writes tsv that way).

    Raises:
        CorpusError: if the file is empty.
    """
    lines = read_lines(path)
    try:
        _, header_line, _ = next(lines)
    except StopIteration:
        raise CorpusError(f"{path}: empty file (a header line is expected)") from None

    def fields(line: str) -> list[str]:
        if unquoted:
            return next(csv.reader([line], delimiter=delimiter, quoting=csv.QUOTE_NONE), [])
        return next(csv.reader([line], delimiter=delimiter), [])

    header = fields(header_line)
    for number, line, ok in lines:
        if not line.strip():
            continue
        values = fields(line)
        row = dict(zip(header, values, strict=False))
        for name in header[len(values):]:
            row[name] = ""
        yield number, row, ok


def resolve_root(source: Path, marker: str, *candidates: str) -> Path:
    """The folder under ``source`` (itself or one of ``candidates``) that contains ``marker``.

    Lets users point at either the corpus folder or the folder they unpacked it into.

    Raises:
        CorpusError: naming ``source`` and what was looked for.
    """
    if not source.exists():
        raise CorpusError(f"{source}: no such file or folder")
    for sub in ("", *candidates):
        root = source / sub if sub else source
        if (root / marker).exists():
            return root
    looked = ", ".join(str(source / c / marker) for c in ("", *candidates))
    raise CorpusError(f"{source}: not the expected layout (looked for {looked})")
