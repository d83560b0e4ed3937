"""ReazonSpeech (Japanese TV speech): a subset through ``datasets`` or a local copy.

- ``datasets``: SRC is ``hub`` (``reazon-research/reazonspeech``), another hub id, or a
  ``save_to_disk`` folder; the configuration is the subset (``tiny``, ``small``, ``medium``,
  ``large``, ``all``; default ``tiny``); columns ``name``, ``audio``, ``transcription``.
- Local copy: ``SUBSET.tsv`` or ``tsv/SUBSET.tsv`` (no header; ``name<TAB>transcription``, e.g.
  ``000/0000000000000.flac``) with audio at ``data/NAME`` or ``NAME`` under SRC.

ReazonSpeech has no speakers and one official split (``train``), recorded as such.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from whisper_ja.data.corpora.base import Candidate, CorpusError, ReaderContext, read_lines
from whisper_ja.data.corpora.hub import audio_file, is_saved_dataset, load_splits

__all__ = ["HUB_ID", "SUBSETS", "read"]

HUB_ID = "reazon-research/reazonspeech"
SUBSETS = ("tiny", "small", "medium", "large", "all")


def _subset(context: ReaderContext) -> str:
    subsets = context.config.subsets or ("tiny",)
    if len(subsets) != 1 or subsets[0] not in SUBSETS:
        raise CorpusError(f"subsets: give one ReazonSpeech subset of {', '.join(SUBSETS)}, "
                          f"got {subsets}")
    return subsets[0]


def _utt_id(name: str) -> str:
    return "reazonspeech/" + str(Path(name).with_suffix("")).replace("\\", "/")


def _local(context: ReaderContext, source: Path, subset: str) -> Iterator[Candidate]:
    table = next((p for p in (source / f"{subset}.tsv", source / "tsv" / f"{subset}.tsv")
                  if p.is_file()), None)
    if table is None:
        raise CorpusError(f"{source}: no {subset}.tsv or tsv/{subset}.tsv (ReazonSpeech list)")
    audio_root = source / "data" if (source / "data").is_dir() else source
    for number, line, ok in read_lines(table):
        if not line.strip():
            continue
        name, sep, text = line.partition("\t")
        if not sep:
            raise CorpusError(f"{table}:{number}: expected 'name<TAB>transcription'")
        yield Candidate(id=_utt_id(name.strip()), audio=audio_root / name.strip(), text=text,
                        where=f"{table}:{number}",
                        extra={"subset": subset, "official_split": "train"}, text_decoded=ok)


def _datasets(context: ReaderContext, subset: str) -> Iterator[Candidate]:
    config = context.config
    splits = config.splits or ("train",)
    for split, rows in load_splits(config.source, HUB_ID, subset, splits, config.streaming):
        for index, row in enumerate(rows):
            name = str(row.get("name") or f"{split}-{index:07d}")
            stem = str(Path(name).with_suffix("")).replace("/", "_")
            text = row.get("transcription")
            yield Candidate(id=_utt_id(name),
                            audio=audio_file(row.get("audio"), context.audio_dir, stem),
                            text=None if text is None else str(text),
                            where=f"{config.source} [{split} row {index}]",
                            extra={"subset": subset, "official_split": split})


def read(context: ReaderContext) -> Iterator[Candidate]:
    """Yield one candidate per ReazonSpeech utterance of the subset.

    Raises:
        CorpusError: unknown subset, or a local folder without the subset's tsv.
    """
    subset = _subset(context)
    source = Path(context.config.source)
    if source.exists() and not is_saved_dataset(source):
        yield from _local(context, source, subset)
    else:
        yield from _datasets(context, subset)
