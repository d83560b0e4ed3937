"""Write training shards: WebDataset tar files of audio and labels, and their index.

Why this format: see :mod:`whisper_ja.data.stream_sources`, which reads it. Each clip is two
adjacent members, ``KEY.json`` (its manifest record, ``audio`` naming the member beside it) and
``KEY.<ext>`` (the audio bytes exactly as they were: no re-encoding, so a shard costs what the
audio costs). ``KEY`` is the clip's running number (utterance ids may hold dots or slashes,
which WebDataset keys cannot). ``index.json`` lists the shards with their clips and seconds, so
training can size its schedule without opening them.

Every shard is written under a temporary name and renamed once complete; ``index.json`` is
written last. A clip whose audio is missing or unreadable is skipped, counted and named.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from whisper_ja.data.manifest import Utterance
from whisper_ja.data.skips import note_skip
from whisper_ja.data.stream_sources import SHARD_INDEX

__all__ = ["ShardReport", "write_clip_shards", "write_shards"]


@dataclass
class ShardReport:
    """What :func:`write_shards` wrote and skipped."""

    shards: list[dict[str, object]] = field(default_factory=list)
    clips: int = 0
    seconds: float = 0.0
    skipped: Counter[str] = field(default_factory=Counter)
    named: list[str] = field(default_factory=list)


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # reproducible shards: the same input gives the same bytes
    archive.addfile(info, io.BytesIO(data))


def write_shards(utterances: Iterable[Utterance], out: Path, clips_per_shard: int) -> ShardReport:
    """Write ``utterances`` as shards ``out/shard-000000.tar``... and ``out/index.json``.

    Args:
        utterances: The clips, read lazily (a manifest iterator: memory stays flat).
        out: The shard folder (created).
        clips_per_shard: Clips per shard (the last one may hold fewer).

    Returns:
        The shards written, clips, seconds, and the skipped clips counted and named.
    """
    report = ShardReport()
    return write_clip_shards(_with_bytes(utterances, report), out, clips_per_shard, report)


def _with_bytes(utterances: Iterable[Utterance], report: ShardReport
                ) -> Iterator[tuple[Utterance, bytes]]:
    for utt in utterances:
        try:
            yield utt, Path(utt.audio).read_bytes()
        except OSError as err:
            note_skip(report.skipped, report.named, "missing audio",
                      f"{utt.id}: {utt.audio}: {err.strerror}")


def write_clip_shards(clips: Iterable[tuple[Utterance, bytes]], out: Path, clips_per_shard: int,
                      report: ShardReport | None = None) -> ShardReport:
    """Write clips given with their encoded audio (a hub corpus streamed: no file between)."""
    out.mkdir(parents=True, exist_ok=True)
    report = report or ShardReport()
    archive: tarfile.TarFile | None = None
    entry: dict[str, object] = {}
    for utt, data in clips:
        if archive is None:
            entry = {"name": f"shard-{len(report.shards):06d}.tar", "clips": 0, "seconds": 0.0}
            archive = tarfile.open(out / f".{entry['name']}.partial", "w")  # noqa: SIM115
        key = f"{report.clips:09d}"
        member = f"{key}{Path(utt.audio).suffix.lower() or '.wav'}"
        record = json.loads(utt.to_json())
        record["audio"] = member
        _add(archive, f"{key}.json", json.dumps(record, ensure_ascii=False).encode())
        _add(archive, member, data)
        report.clips += 1
        report.seconds += utt.duration
        entry["clips"] = int(str(entry["clips"])) + 1
        entry["seconds"] = round(float(str(entry["seconds"])) + utt.duration, 3)
        if entry["clips"] == clips_per_shard:
            _close(archive, out, entry, report)
            archive = None
    if archive is not None:
        _close(archive, out, entry, report)
    index = {"format": "webdataset-tar", "clips": report.clips,
             "seconds": round(report.seconds, 3), "shards": report.shards}
    tmp = out / f".{SHARD_INDEX}.partial"
    tmp.write_text(json.dumps(index, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, out / SHARD_INDEX)
    return report


def _close(archive: tarfile.TarFile, out: Path, entry: dict[str, object],
           report: ShardReport) -> None:
    archive.close()
    name = str(entry["name"])
    os.replace(out / f".{name}.partial", out / name)
    report.shards.append(dict(entry))
