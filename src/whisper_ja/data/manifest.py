"""The one manifest record every corpus produces, stored as JSONL.

A manifest is a JSONL file with one :class:`Utterance` per line. Every corpus reader, the
synthesizer, the splitter, training and evaluation speak only this format, so mixing corpora is
concatenating files.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whisper_ja.data.timestamps import TimedText
from whisper_ja.errors import ManifestError
from whisper_ja.jsonl import iter_json_objects

__all__ = ["ManifestError", "Utterance", "is_synthetic_corpus", "iter_manifest", "parse_utterance",
           "read_manifest", "write_manifest"]

SPLITS = ("train", "validation", "test", "")
"""Allowed values of :attr:`Utterance.split`; empty means not yet split."""


def is_synthetic_corpus(corpus: str) -> bool:
    """Whether a corpus name marks synthesized speech (``synthetic``, ``synthetic-espeak``)."""
    return corpus.startswith("synthetic")


@dataclass(frozen=True)
class Utterance:
    """One utterance of speech and its transcript.

    Attributes:
        id: Unique within a manifest (corpus prefix recommended, e.g. ``jsut/BASIC5000_0001``).
        audio: Path to the audio file. Relative paths are resolved against the manifest's folder
            by :func:`read_manifest`.
        text: The reference transcript, unnormalized (as the corpus gives it).
        duration: Length of the audio in seconds.
        corpus: Corpus name, e.g. ``jsut``, ``common-voice``, ``fleurs``, ``synthetic``.
        speaker: Speaker (or synthetic voice) id, empty if unknown.
        split: ``train``, ``validation``, ``test``, or empty if not yet split.
        extra: Corpus-specific fields kept verbatim (e.g. Tatoeba sentence id, licence).
        segments: Timed parts of the transcript (seconds from the clip's start, in order, not
            overlapping), e.g. the sentences of a multi-sentence clip; empty when unknown.
            Training labels then carry Whisper's timestamp tokens. Written only when present.
    """

    id: str
    audio: str
    text: str
    duration: float
    corpus: str
    speaker: str = ""
    split: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    segments: tuple[TimedText, ...] = ()

    @property
    def is_synthetic(self) -> bool:
        """Synthesized speech: a ``synthetic*`` corpus or ``extra["synthetic"]``."""
        return is_synthetic_corpus(self.corpus) or bool(self.extra.get("synthetic"))

    def language(self, default: str = "ja") -> str:
        """Whisper language code of the transcript: ``extra["language"]``, else ``default``.

        Japanese for the corpora this toolkit trains on; non-Japanese clips (mixed in against
        forgetting, or the retention set) carry their language in ``extra``.
        """
        return str(self.extra.get("language", default))

    def to_json(self) -> str:
        """One JSONL line (UTF-8 text kept readable; ``segments`` only when there are any)."""
        record = dataclasses.asdict(self)
        if not self.segments:
            del record["segments"]
        return json.dumps(record, ensure_ascii=False)


_FIELDS = {f.name for f in dataclasses.fields(Utterance)}
_REQUIRED = {f.name for f in dataclasses.fields(Utterance)
             if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}


def _parse_segments(raw: Any, where: str, duration: float) -> tuple[TimedText, ...]:
    """``segments``: a list of ``{"start", "end", "text"}`` in order, inside the clip."""
    if not isinstance(raw, list):
        raise ManifestError(f"{where}: segments must be a list of {{start, end, text}}")
    segments: list[TimedText] = []
    for number, item in enumerate(raw):
        if (not isinstance(item, dict) or set(item) != {"start", "end", "text"}
                or not isinstance(item["text"], str)
                or not all(isinstance(item[k], int | float) for k in ("start", "end"))):
            raise ManifestError(f"{where}: segment {number} must be {{start, end, text}}")
        start, end = float(item["start"]), float(item["end"])
        previous = segments[-1].end if segments else 0.0
        if not previous <= start <= end <= duration + 0.02:
            raise ManifestError(f"{where}: segment {number} ({start}..{end} s) must lie in "
                                f"{previous}..{duration} s after the one before")
        segments.append(TimedText(start, end, item["text"]))
    return tuple(segments)


def parse_utterance(obj: dict[str, Any], where: str, base: Path) -> Utterance:
    """One manifest record as an :class:`Utterance` (relative audio resolved against ``base``).

    Raises:
        ManifestError: naming ``where`` (file and line, or shard and member).
    """
    missing = sorted(_REQUIRED - set(obj))
    if missing:
        raise ManifestError(f"{where}: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(obj) - _FIELDS)
    if unknown:
        raise ManifestError(f"{where}: unknown field(s) {', '.join(unknown)}")
    for name in ("id", "audio", "text", "corpus", "speaker", "split"):
        if name in obj and not isinstance(obj[name], str):
            raise ManifestError(f"{where}: field {name} must be a string")
    if not isinstance(obj["duration"], int | float) or obj["duration"] < 0:
        raise ManifestError(f"{where}: duration must be a non-negative number")
    if obj.get("split", "") not in SPLITS:
        raise ManifestError(f"{where}: split must be one of {SPLITS[:3]} or empty")
    if not obj["id"]:
        raise ManifestError(f"{where}: empty id")
    obj["segments"] = _parse_segments(obj.get("segments", []), where, float(obj["duration"]))
    audio = Path(obj["audio"])
    if not audio.is_absolute():
        obj["audio"] = str(base / audio)
    obj["duration"] = float(obj["duration"])
    return Utterance(**obj)


def iter_manifest(path: str | Path) -> Iterator[Utterance]:
    """Yield the utterances of a JSONL manifest, validating each line.

    Raises:
        ManifestError: on a malformed line or a duplicate id (message names file and line).
    """
    path = Path(path)
    seen: dict[str, int] = {}
    for number, obj in iter_json_objects(path, ManifestError):
        utt = parse_utterance(obj, f"{path}:{number}", path.parent)
        if utt.id in seen:
            raise ManifestError(
                f"{path}:{number}: duplicate id {utt.id!r} (first on line {seen[utt.id]})")
        seen[utt.id] = number
        yield utt


def read_manifest(*paths: str | Path) -> list[Utterance]:
    """Read and concatenate manifests; ids must be unique across all of them."""
    result: list[Utterance] = []
    origin: dict[str, Path] = {}
    for path in paths:
        for utt in iter_manifest(path):
            if utt.id in origin:
                raise ManifestError(f"{path}: id {utt.id!r} also in {origin[utt.id]}")
            origin[utt.id] = Path(path)
            result.append(utt)
    return result


def write_manifest(path: str | Path, utterances: Iterable[Utterance]) -> int:
    """Write utterances as JSONL atomically (temp file then rename); returns the count.

    Audio paths in memory are as the process sees them (relative ones against the working
    directory, as :func:`read_manifest` returns them absolute). On disk they are made relative
    to the manifest's folder when they lie under it, so a corpus folder can be moved as a
    whole, and absolute otherwise.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    base = path.parent.resolve()
    with tmp.open("w", encoding="utf-8") as handle:
        for utt in utterances:
            audio = Path(utt.audio).resolve()
            stored = audio.relative_to(base) if audio.is_relative_to(base) else audio
            utt = dataclasses.replace(utt, audio=str(stored))
            handle.write(utt.to_json() + "\n")
            count += 1
    tmp.replace(path)
    return count
