"""Training data read lazily, piece by piece: byte ranges of JSONL manifests and tar shards.

Nothing here reads a whole corpus before training starts. A JSONL manifest is cut into byte
ranges by its size alone (a range owns every line that *starts* inside it), so 25 million rows
cost no up-front pass; a shard folder is a list of tar files. Each piece (:class:`Source`) is
read start to end by one DataLoader worker of one process, which is how an epoch sees every
clip exactly once (:mod:`whisper_ja.training.stream`).

Shard format: WebDataset's tar layout (``KEY.json`` with the manifest record, ``KEY.flac`` or
whatever the audio was, members of one clip adjacent). Chosen over Lhotse Shar because it is one
plain POSIX tar per shard that ``tar``, Python's :mod:`tarfile`, ``webdataset``/``wids``,
Hugging Face ``datasets`` (its ``webdataset`` builder) and NeMo's tarred datasets all read, so
shards written here are not tied to this project; it is read sequentially, which suits object
stores. Shar splits one clip over several tar files (one per field) and needs lhotse's cut model
and its dependency tree to read; a WebDataset tar needs nothing beyond the standard library, so
it is read here with :mod:`tarfile` (the ``webdataset`` package's pipeline has no mid-epoch
position to resume from, which training needs).
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf

from whisper_ja.audio.io import resample
from whisper_ja.data.manifest import Utterance, parse_utterance
from whisper_ja.errors import AudioError, ManifestError

__all__ = [
    "SHARD_INDEX",
    "Source",
    "StreamItem",
    "decode_audio_bytes",
    "estimated_clips",
    "fingerprint",
    "is_streamable",
    "iter_source",
    "plan_sources",
]

SHARD_INDEX = "index.json"
"""The file ``whisper-ja shard`` writes beside its shards: their names, clips and seconds."""

AUDIO_SUFFIXES = (".flac", ".wav", ".mp3", ".ogg", ".opus")


@dataclass(frozen=True)
class Source:
    """One piece of training data read by one worker: a tar shard or a JSONL byte range.

    Attributes:
        path: The manifest or shard file.
        kind: ``jsonl`` or ``tar``.
        start: First byte of the range (JSONL; 0 for a shard).
        end: Byte after the range (JSONL; -1 for a whole shard).
    """

    path: Path
    kind: Literal["jsonl", "tar"]
    start: int = 0
    end: int = -1

    @property
    def name(self) -> str:
        """How reports name the piece."""
        if self.kind == "tar":
            return str(self.path)
        return f"{self.path} bytes {self.start}-{self.end}"


@dataclass(frozen=True)
class StreamItem:
    """One record read from a source: a clip, or the reason none could be read.

    Attributes:
        utterance: The clip (``None`` when ``problem`` is set).
        audio: The clip's encoded audio bytes (tar shards); ``None``: read ``utterance.audio``.
        problem: Why the record is unusable (skip reason to count); empty when usable.
        where: What to name in the report (file and line or byte, shard and member).
    """

    utterance: Utterance | None
    audio: bytes | None = None
    problem: str = ""
    where: str = ""


def _shard_files(folder: Path) -> list[Path]:
    index = folder / SHARD_INDEX
    if index.is_file():
        try:
            names = [entry["name"] for entry in json.loads(index.read_text("utf-8"))["shards"]]
        except (ValueError, KeyError, TypeError) as err:
            raise ManifestError(f"{index}: not a shard index ({err})") from err
        return [folder / name for name in names]
    return sorted(folder.glob("*.tar"))


def plan_sources(paths: Sequence[Path], slots: int, chunk_bytes: int) -> list[Source]:
    """The pieces of ``paths`` (manifests, shard files or shard folders), in a fixed order.

    A JSONL manifest becomes at least ``4 * slots`` byte ranges (and one per ``chunk_bytes``), so
    every reader gets work and the shuffled piece order mixes the corpus; only file sizes are
    read. A folder stands for the shards its ``index.json`` lists (else its ``*.tar`` files).
    """
    sources: list[Source] = []
    for path in map(Path, paths):
        if path.is_dir():
            sources += [Source(p, "tar") for p in _shard_files(path)]
        elif path.suffix == ".tar":
            sources.append(Source(path, "tar"))
        else:
            size = path.stat().st_size
            pieces = max(1, min(size, max(4 * slots, -(-size // chunk_bytes))))
            bounds = [size * i // pieces for i in range(pieces + 1)]
            sources += [Source(path, "jsonl", a, b) for a, b in zip(bounds, bounds[1:],
                                                                    strict=False)]
    return sources


def is_streamable(path: Path) -> bool:
    """Whether ``path`` is shards (a folder or a ``.tar``): those are always read streamed."""
    return path.is_dir() or path.suffix == ".tar"


def estimated_clips(paths: Sequence[Path]) -> int:
    """Clips in ``paths`` without parsing them; 0 when a shard folder has no index.

    A JSONL manifest up to :data:`COUNT_EXACTLY_BYTES` has its lines counted; a larger one is
    estimated from its size and the lines in :data:`SAMPLES` blocks of 1 MiB spread over it
    (constant time: 10 million rows would take 2 s to count). Shard clips are read from
    ``index.json``. Only the schedule's length depends on it (``optim.max_steps`` skips it).
    """
    total = 0
    for path in map(Path, paths):
        if is_streamable(path):
            index = (path if path.is_dir() else path.parent) / SHARD_INDEX
            if not index.is_file():
                return 0
            shards = json.loads(index.read_text("utf-8"))["shards"]
            total += sum(s["clips"] for s in shards if path.is_dir() or s["name"] == path.name)
        else:
            total += _jsonl_lines(path)
    return total


COUNT_EXACTLY_BYTES = 64 << 20
"""Manifests up to this size have their lines counted (about 0.1 s); larger ones estimated."""

SAMPLES = 16
"""Blocks read to estimate the lines of a large manifest."""

SAMPLE_BYTES = 1 << 20
"""Size of each of those blocks."""


def _jsonl_lines(path: Path) -> int:
    size = path.stat().st_size
    with path.open("rb") as handle:
        if size <= COUNT_EXACTLY_BYTES:
            return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
        lines = read = 0
        sample = min(SAMPLE_BYTES, size)
        for number in range(SAMPLES):
            handle.seek((size - sample) * number // (SAMPLES - 1))
            block = handle.read(sample)
            lines, read = lines + block.count(b"\n"), read + len(block)
    return round(size * lines / max(read, 1))


def fingerprint(paths: Sequence[Path]) -> dict[str, list[int]]:
    """Size and modification time (ns) of every file the training data is read from."""
    files: list[Path] = []
    for path in map(Path, paths):
        files += ([path / SHARD_INDEX, *_shard_files(path)] if path.is_dir() else [path])
    return {str(f.resolve()): [f.stat().st_size, f.stat().st_mtime_ns] for f in files
            if f.exists()}


def iter_source(source: Source) -> Iterator[StreamItem]:
    """The records of one piece, in file order; unusable ones come as items with a problem."""
    if source.kind == "tar":
        yield from _iter_tar(source.path)
    else:
        yield from _iter_jsonl_range(source)


def _iter_jsonl_range(source: Source) -> Iterator[StreamItem]:
    """Records on lines starting in ``[start, end)``; the line at ``start - 1`` is earlier's."""
    with source.path.open("rb") as handle:
        position = source.start
        if position > 0:
            handle.seek(position - 1)
            position += len(handle.readline()) - 1
        while position < source.end:
            line = handle.readline()
            if not line:
                return
            where = f"{source.path} byte {position}"
            position += len(line)
            if not line.strip():
                continue
            yield _parse_line(line, where, source.path.parent)


def _parse_line(line: bytes, where: str, base: Path) -> StreamItem:
    try:
        obj = json.loads(line)
        if not isinstance(obj, dict):
            raise ManifestError(f"{where}: a record must be a JSON object")
        return StreamItem(parse_utterance(obj, where, base), where=where)
    except (ValueError, ManifestError) as err:  # JSONDecodeError and UnicodeDecodeError too
        return StreamItem(None, problem="malformed row", where=f"{where}: {err}"[:300])


def _iter_tar(path: Path) -> Iterator[StreamItem]:
    """Clips of one WebDataset tar: members grouped by key (the name up to its first dot)."""
    try:
        archive = tarfile.open(path, mode="r|*")  # noqa: SIM115 (closed by the with below)
    except (OSError, tarfile.TarError) as err:
        yield StreamItem(None, problem="unreadable shard", where=f"{path}: {err}")
        return
    group: dict[str, bytes] = {}
    key = ""
    try:
        with archive:
            for member in archive:
                if not member.isfile():
                    continue
                name_key, _, suffix = member.name.partition(".")
                if name_key != key and group:
                    yield _tar_item(path, key, group)
                    group = {}
                key = name_key
                handle = archive.extractfile(member)
                group[suffix] = handle.read() if handle is not None else b""
    except (OSError, tarfile.TarError, EOFError) as err:
        yield StreamItem(None, problem="shard ends early", where=f"{path} after {key!r}: {err}")
        return
    if group:
        yield _tar_item(path, key, group)


def _tar_item(path: Path, key: str, group: dict[str, bytes]) -> StreamItem:
    where = f"{path}:{key}"
    audio_suffix = next((s for s in group if f".{s}" in AUDIO_SUFFIXES), None)
    if "json" not in group or audio_suffix is None:
        return StreamItem(None, problem="incomplete clip in shard",
                          where=f"{where}: has {sorted(group)}, needs json and audio")
    item = _parse_line(group["json"], where, path)
    if item.utterance is None:
        return item
    return StreamItem(item.utterance, group[audio_suffix], where=where)


def decode_audio_bytes(data: bytes, name: str) -> np.ndarray:
    """Encoded audio (any format libsndfile reads) as float32 mono 16 kHz.

    Raises:
        AudioError: naming ``name`` when the bytes are not readable audio or hold none.
    """
    try:
        audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioError(f"{name}: not readable audio ({err})") from err
    if audio.shape[0] == 0:
        raise AudioError(f"{name}: contains no audio samples (zero length)")
    if not np.isfinite(audio).all():
        raise AudioError(f"{name}: contains NaN or infinite samples")
    return resample(audio, int(rate))
