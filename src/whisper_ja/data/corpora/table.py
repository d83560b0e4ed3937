"""A CSV, TSV or JSONL table of audio paths and transcripts (one row per utterance).

The format follows the suffix (``.csv``, ``.tsv``, ``.jsonl``/``.json``). Columns are found by
name: ``--audio-column`` (default the first of audio, path, file, file_name, filename, wav),
``--text-column`` (text, sentence, transcription, transcript, raw_transcription),
``--speaker-column`` (speaker, client_id, speaker_id; optional) and ``--id-column`` (id; else
the audio file name). Relative audio paths are resolved against the table's folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from whisper_ja.data.corpora.base import (
    Candidate,
    CorpusError,
    ReaderContext,
    read_lines,
    read_table_rows,
)
from whisper_ja.jsonl import parse_json_object

__all__ = ["read"]

_AUDIO = ("audio", "path", "file", "file_name", "filename", "wav")
_TEXT = ("text", "sentence", "transcription", "transcript", "raw_transcription")
_SPEAKER = ("speaker", "client_id", "speaker_id")


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any], bool]]:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        yield from read_table_rows(path, "," if suffix == ".csv" else "\t")
        return
    if suffix not in (".jsonl", ".json"):
        raise CorpusError(f"{path}: unknown table format (use .csv, .tsv or .jsonl)")
    # read_lines, not iter_json_objects: a line that is not valid UTF-8 is counted, not fatal.
    for number, line, ok in read_lines(path):
        if line.strip():
            yield number, parse_json_object(line, f"{path}:{number}", CorpusError), ok


def _column(row: dict[str, Any], chosen: str, defaults: tuple[str, ...]) -> str | None:
    return next((n for n in ((chosen,) if chosen else defaults) if n in row), None)


def _required(row: dict[str, Any], chosen: str, defaults: tuple[str, ...], what: str,
              where: str) -> str:
    found = _column(row, chosen, defaults)
    if found is None:
        names = (chosen,) if chosen else defaults
        raise CorpusError(f"{where}: no {what} column (looked for {', '.join(names)}; "
                          f"columns: {', '.join(row)})")
    return found


def read(context: ReaderContext) -> Iterator[Candidate]:
    """Yield one candidate per table row.

    Raises:
        CorpusError: unknown format, malformed JSON line, or a missing audio/text column.
    """
    config = context.config
    path = Path(config.source)
    if not path.is_file():
        raise CorpusError(f"{path}: table file not found")
    for number, row, ok in _rows(path):
        where = f"{path}:{number}"
        audio_col = _required(row, config.audio_column, _AUDIO, "audio", where)
        text_col = _required(row, config.text_column, _TEXT, "text", where)
        speaker_col = (_required(row, config.speaker_column, (), "speaker", where)
                       if config.speaker_column else _column(row, "", _SPEAKER))
        audio = Path(str(row[audio_col]))
        audio = audio if audio.is_absolute() else path.parent / audio
        raw_id = str(row.get(config.id_column or "id") or "") or audio.stem
        text = row[text_col]
        yield Candidate(id=f"{config.name}/{raw_id}", audio=audio,
                        text=None if text is None else str(text), where=where,
                        speaker=str(row[speaker_col]) if speaker_col else "",
                        text_decoded=ok)
