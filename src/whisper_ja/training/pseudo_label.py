"""Pseudo-labels at scale (kotoba-whisper's recipe): a teacher decodes a corpus, piece by piece.

The corpus (JSONL manifests) is cut into the same byte-range pieces streamed training reads
(:func:`~whisper_ja.data.stream_sources.plan_sources`); process ``r`` of ``n`` (accelerate or
torchrun) decodes pieces ``r, r + n, ...``. Each piece's labels are appended to
``OUT/pieces/piece-NNNNNN.jsonl`` batch by batch, flushed and synced, and the file is renamed
``.done.jsonl`` when the piece is whole: after a crash, a rerun skips the finished pieces and the
lines already written of an unfinished one, so nothing is decoded twice. Once every piece is
done, the main process joins them into ``OUT/labels.jsonl``.

Each row is the clip's manifest record with ``text`` the teacher's transcript and
``extra.reference_text`` (the corpus's own), ``extra.pseudo_cer`` (the CER of the transcript
against the reference, the measure kotoba-whisper filters on: it drops pairs over 10% WER) and
``extra.teacher``. ``train data.max_pseudo_cer=0.1`` then skips (and counts) the rows above it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whisper_ja.data.manifest import Utterance
from whisper_ja.data.skips import note_skip
from whisper_ja.data.stream_sources import Source, iter_source, plan_sources
from whisper_ja.text.metrics import cer

__all__ = ["LabelReport", "Transcriber", "label_pieces", "pseudo_record"]

PIECE_BYTES = 1 << 20
"""Manifests are decoded in pieces of about this many bytes (~5,000 rows): the unit of work
dealt to processes and of crash recovery."""

Transcriber = Callable[[Sequence[Utterance]], tuple[list[str | None], dict[str, str]]]
"""Decodes clips: each one's transcript (None where its audio failed) and the failures named."""


@dataclass
class LabelReport:
    """What one process labelled, skipped and found already done."""

    labelled: int = 0
    resumed_pieces: int = 0
    skipped: Counter[str] = dataclasses.field(default_factory=Counter)
    named: list[str] = dataclasses.field(default_factory=list)


def pseudo_record(utt: Utterance, hypothesis: str, teacher: str) -> str:
    """The training row of ``utt`` labelled by the teacher, as one JSONL line."""
    rate = float(cer([utt.text], [hypothesis]).rate) if utt.text.strip() else 1.0
    extra = {**utt.extra, "reference_text": utt.text, "pseudo_cer": round(rate, 4),
             "teacher": teacher}
    return dataclasses.replace(utt, text=hypothesis, extra=extra).to_json()


def _finished_lines(path: Path) -> int:
    """Whole lines of a piece file; a line cut by a crash is dropped from the file."""
    if not path.is_file():
        return 0
    data = path.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    if len(whole) != len(data):
        path.write_bytes(whole)
    return whole.count(b"\n")


def _batches(items: Iterator[Utterance], size: int) -> Iterator[list[Utterance]]:
    batch: list[Utterance] = []
    for utt in items:
        batch.append(utt)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def label_pieces(manifests: Sequence[Path], out: Path, transcribe: Transcriber, teacher: str,
                 *, rank: int, world: int, batch_size: int) -> LabelReport:
    """Decode this process's pieces of ``manifests`` into ``out/pieces``, resuming any work."""
    pieces_dir = out / "pieces"
    pieces_dir.mkdir(parents=True, exist_ok=True)
    report = LabelReport()
    sources = plan_sources(list(manifests), 1, PIECE_BYTES)
    for number in range(rank, len(sources), world):
        done = pieces_dir / f"piece-{number:06d}.done.jsonl"
        if done.is_file():
            report.resumed_pieces += 1
            continue
        partial = pieces_dir / f"piece-{number:06d}.jsonl"
        _label_piece(sources[number], partial, transcribe, teacher, batch_size, report)
        os.replace(partial, done)
    return report


def _label_piece(source: Source, partial: Path, transcribe: Transcriber, teacher: str,
                 batch_size: int, report: LabelReport) -> None:
    already = _finished_lines(partial)
    report.resumed_pieces += bool(already)
    position = 0

    def todo() -> Iterator[Utterance]:
        nonlocal position
        for item in iter_source(source):
            if item.utterance is None:
                note_skip(report.skipped, report.named, item.problem, item.where)
                continue
            position += 1
            if position > already:  # written before a crash: never decoded twice
                yield item.utterance

    with partial.open("a", encoding="utf-8") as handle:
        for batch in _batches(todo(), batch_size):
            texts, failed = transcribe(batch)
            for utt, text in zip(batch, texts, strict=True):
                if text is None:
                    note_skip(report.skipped, report.named, "unreadable audio",
                              failed.get(utt.id, utt.audio))
                    handle.write(json.dumps({"skipped": utt.id}) + "\n")  # keeps the count
                    continue
                handle.write(pseudo_record(utt, text, teacher) + "\n")
                report.labelled += 1
            handle.flush()
            os.fsync(handle.fileno())


def join_pieces(out: Path) -> tuple[int, dict[str, Any]]:
    """Join the finished pieces into ``out/labels.jsonl`` (atomically); rows and CER counts."""
    target = out / "labels.jsonl"
    tmp = out / ".labels.jsonl.partial"
    rows = 0
    over: Counter[str] = Counter()
    with tmp.open("w", encoding="utf-8") as handle:
        for piece in sorted((out / "pieces").glob("piece-*.done.jsonl")):
            with piece.open(encoding="utf-8") as lines:
                for line in lines:
                    record = json.loads(line)
                    if "skipped" in record:
                        continue
                    handle.write(line)
                    rows += 1
                    rate = record["extra"]["pseudo_cer"]
                    for limit in (0.05, 0.1, 0.2):
                        over[f"pseudo_cer > {limit}"] += rate > limit
    os.replace(tmp, target)
    return rows, dict(over)
