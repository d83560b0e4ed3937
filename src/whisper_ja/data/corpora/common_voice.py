"""Mozilla Common Voice, Japanese, as a release unpacks (``cv-corpus-N/ja``).

Layout: ``train.tsv``, ``dev.tsv``, ``test.tsv``, ``validated.tsv``, ``other.tsv``,
``invalidated.tsv`` (tab-separated with a header; columns include ``client_id``, ``path``,
``sentence``, ``up_votes``, ``down_votes``, ``age``, ``gender``, ``accents``) and ``clips/*.mp3``.
The speaker is ``client_id``; the file a row came from is its official split (dev becomes
``validation``). ``validated.tsv`` repeats the train/dev/test rows: a clip listed in several
chosen files is taken once, from the first, and counted in the report's notes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from whisper_ja.data.corpora.base import (
    Candidate,
    CorpusError,
    ReaderContext,
    read_table_rows,
    resolve_root,
)

__all__ = ["DEFAULT_SPLITS", "read"]

DEFAULT_SPLITS = ("train", "dev", "test")
_KNOWN = ("train", "dev", "test", "validated", "other", "invalidated")
_OFFICIAL = {"train": "train", "dev": "validation", "test": "test"}
_KEPT_COLUMNS = ("up_votes", "down_votes", "age", "gender", "accents", "variant", "locale",
                 "segment")


def read(context: ReaderContext) -> Iterator[Candidate]:
    """Yield one candidate per clip of the chosen tsv files (default train, dev, test).

    Raises:
        CorpusError: the folder holds no Common Voice tsv, or a file lacks ``path``/``sentence``.
    """
    source = Path(context.config.source)
    root = resolve_root(source, "clips", "ja")
    taken: set[str] = set()
    for split in context.config.splits or DEFAULT_SPLITS:
        if split not in _KNOWN:
            raise CorpusError(f"splits: {split!r} is not a Common Voice file ({', '.join(_KNOWN)})")
        table = root / f"{split}.tsv"
        if not table.is_file():
            raise CorpusError(f"{table}: not found (Common Voice split {split!r})")
        # Common Voice writes sentences unquoted; quote characters are part of the text.
        for number, row, ok in read_table_rows(table, "\t", unquoted=True):
            if "path" not in row or "sentence" not in row:
                raise CorpusError(f"{table}: header lacks 'path' and 'sentence' columns")
            clip = row["path"].strip()
            if clip in taken:
                context.notes[f"listed_again_in_{split}"] += 1
                continue
            taken.add(clip)
            extra = {k: row[k] for k in _KEPT_COLUMNS if row.get(k)}
            extra["official_split"] = _OFFICIAL.get(split, split)
            yield Candidate(id=f"common-voice/{Path(clip).stem}", audio=root / "clips" / clip,
                            text=row["sentence"], where=f"{table}:{number}",
                            speaker=row.get("client_id", ""), extra=extra, text_decoded=ok)
