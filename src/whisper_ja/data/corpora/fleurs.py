"""Google FLEURS, Japanese (``ja_jp``): through ``datasets`` or a local copy.

- ``datasets``: SRC is ``hub`` (``google/fleurs``), another hub id, or a ``save_to_disk``
  folder; splits ``train``, ``validation``, ``test``; text ``raw_transcription``.
- Local copy: ``{train,dev,test}.tsv`` (no header; columns id, file name, raw transcription,
  normalized transcription, phonemes, num samples, gender) and ``audio/{split}/FILE.wav``; SRC
  may also be a folder holding ``ja_jp/`` or ``data/ja_jp/``.

FLEURS ids are sentence ids (several recordings share one), so the manifest id is the audio file
name and the sentence id is kept as ``extra["sentence_id"]``. Speakers are not given.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from whisper_ja.data.corpora.base import (
    Candidate,
    CorpusError,
    ReaderContext,
    read_lines,
    resolve_root,
)
from whisper_ja.data.corpora.hub import audio_file, is_saved_dataset, load_splits

__all__ = ["HUB_ID", "read"]

HUB_ID = "google/fleurs"
_LOCAL_SPLITS = {"train": "train", "dev": "validation", "validation": "validation",
                 "test": "test"}
_FILE_OF = {"train": "train", "validation": "dev", "test": "test"}


def _local(context: ReaderContext, root: Path) -> Iterator[Candidate]:
    for split in context.config.splits or ("train", "dev", "test"):
        if split not in _LOCAL_SPLITS:
            raise CorpusError(f"splits: {split!r} is not a FLEURS split (train, dev, test)")
        official = _LOCAL_SPLITS[split]
        table = root / f"{_FILE_OF[official]}.tsv"
        if not table.is_file():
            raise CorpusError(f"{table}: not found (FLEURS split {split!r})")
        for number, line, ok in read_lines(table):
            if not line.strip():
                continue
            cols = line.split("\t")
            where = f"{table}:{number}"
            if len(cols) < 3:
                raise CorpusError(f"{where}: expected FLEURS columns (id, file name, raw "
                                  f"transcription, ...), got {len(cols)} column(s)")
            extra = {"sentence_id": cols[0], "official_split": official}
            if len(cols) > 6 and cols[6]:
                extra["gender"] = cols[6]
            yield Candidate(id=f"fleurs/{Path(cols[1]).stem}",
                            audio=root / "audio" / _FILE_OF[official] / cols[1], text=cols[2],
                            where=where, extra=extra, text_decoded=ok)


def _datasets(context: ReaderContext) -> Iterator[Candidate]:
    config = context.config
    splits = [_LOCAL_SPLITS.get(s, s) for s in config.splits or ("train", "validation", "test")]
    name = config.subsets[0] if config.subsets else "ja_jp"
    for split, rows in load_splits(config.source, HUB_ID, name, splits, config.streaming):
        for index, row in enumerate(rows):
            file_name = Path(str(row.get("path") or (row.get("audio") or {}).get("path") or ""))
            stem = file_name.stem or f"{split}-{index:06d}"
            text = row.get("raw_transcription", row.get("transcription"))
            extra = {"sentence_id": str(row.get("id", "")), "official_split": split}
            if row.get("gender") is not None:
                extra["gender"] = str(row["gender"])
            yield Candidate(id=f"fleurs/{stem}",
                            audio=audio_file(row.get("audio"), context.audio_dir / split, stem),
                            text=None if text is None else str(text),
                            where=f"{config.source} [{split} row {index}]", extra=extra)


def read(context: ReaderContext) -> Iterator[Candidate]:
    """Yield one candidate per FLEURS recording of the chosen splits.

    Raises:
        CorpusError: a local folder without FLEURS tsv files, or a missing split.
    """
    source = Path(context.config.source)
    if source.exists() and not is_saved_dataset(source):
        yield from _local(context, resolve_root(source, "train.tsv", "ja_jp", "data/ja_jp"))
    else:
        yield from _datasets(context)
