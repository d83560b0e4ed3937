"""The settings of ``whisper-ja prepare``, which every corpus reader is handed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from whisper_ja.config import field
from whisper_ja.errors import ConfigError

__all__ = ["Policy", "PrepareConfig"]

Policy = Literal["skip", "error"]
"""What to do with a candidate that has a problem: skip it (counted) or stop."""


@dataclass(frozen=True)
class PrepareConfig:
    """Settings of ``whisper-ja prepare``."""

    corpus: Literal["jsut", "common-voice", "fleurs", "reazonspeech", "folder", "table"] = field(
        positional=True, help="corpus layout")
    source: str = field(positional=True, help="corpus folder or table file; for fleurs and "
                        "reazonspeech also a save_to_disk folder or a hub id (e.g. google/fleurs)")
    out: Path | None = field(None, help="output folder (manifest.jsonl, prepare_report.json)")
    subsets: tuple[str, ...] = field((), help="jsut subsets (default: all found); "
                                     "reazonspeech subset (default tiny); fleurs config "
                                     "(default ja_jp)")
    splits: tuple[str, ...] = field((), help="official splits to read (default: common-voice "
                                    "train dev test; fleurs train dev test)")
    max_duration: float = field(30.0, help="longest utterance kept (seconds)")
    limit: int = field(0, help="stop after this many utterances (0: all)")
    streaming: bool = field(False, help="stream hub datasets instead of caching them")
    corpus_name: str = field("", help="corpus name in the manifest (default: the layout name)")
    text_column: str = field("", help="table: transcript column (default: text/sentence/...)")
    audio_column: str = field("", help="table: audio path column (default: audio/path/...)")
    speaker_column: str = field("", help="table: speaker column (default: speaker/client_id)")
    id_column: str = field("", help="table: id column (default: id, else the audio file name)")
    missing_audio: Policy = field("skip", help="audio file missing")
    unreadable_audio: Policy = field("skip", help="audio file unreadable")
    missing_text: Policy = field("skip", help="folder: no .txt beside an audio file")
    empty_text: Policy = field("skip", help="empty or whitespace-only transcript")
    too_long: Policy = field("skip", help="audio longer than max_duration")
    duplicate_id: Policy = field("error", help="an id seen before")
    bad_encoding: Policy = field("error", help="transcript not valid UTF-8")
    progress: bool = field(True, help="show a progress bar")

    def __post_init__(self) -> None:
        if not str(self.source).strip():
            raise ConfigError("source: give the corpus folder, table file or hub id")
        if self.max_duration <= 0:
            raise ConfigError(f"max_duration: must be positive, got {self.max_duration}")
        if self.limit < 0:
            raise ConfigError(f"limit: must be 0 (all) or positive, got {self.limit}")

    @property
    def name(self) -> str:
        """The corpus name written to each record."""
        return self.corpus_name or self.corpus
