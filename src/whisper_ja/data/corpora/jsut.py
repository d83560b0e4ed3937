"""JSUT 1.1 (Japanese speech corpus of Saruwatari-lab., University of Tokyo), as unpacked.

Layout: ``jsut_ver1.1/SUBSET/transcript_utf8.txt`` (lines ``BASIC5000_0001:text``) and
``jsut_ver1.1/SUBSET/wav/BASIC5000_0001.wav`` for the subsets basic5000, countersuffix26,
loanword128, onomatopee300, precedent130, repeat500, travel1000, utparaphrase512 and
voiceactress100. One female speaker (``jsut``); JSUT has no official split.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from whisper_ja.data.corpora.base import Candidate, CorpusError, ReaderContext, read_lines

__all__ = ["SUBSETS", "read"]

SUBSETS = ("basic5000", "countersuffix26", "loanword128", "onomatopee300", "precedent130",
           "repeat500", "travel1000", "utparaphrase512", "voiceactress100")
_TRANSCRIPT = "transcript_utf8.txt"


def _root(source: Path) -> Path:
    if not source.is_dir():
        raise CorpusError(f"{source}: not a folder (expected the unpacked jsut_ver1.1)")
    for root in (source, source / "jsut_ver1.1"):
        if any((root / s / _TRANSCRIPT).is_file() for s in SUBSETS):
            return root
    raise CorpusError(f"{source}: no SUBSET/{_TRANSCRIPT} found (subsets: {', '.join(SUBSETS)})")


def read(context: ReaderContext) -> Iterator[Candidate]:
    """Yield one candidate per transcript line of each chosen subset.

    Raises:
        CorpusError: the folder is not JSUT, or a requested subset is absent.
    """
    root = _root(Path(context.config.source))
    found = tuple(s for s in SUBSETS if (root / s / _TRANSCRIPT).is_file())
    wanted = context.config.subsets or found
    for subset in wanted:
        transcript = root / subset / _TRANSCRIPT
        if not transcript.is_file():
            raise CorpusError(f"{transcript}: subset {subset!r} not found under {root}")
        for number, line, ok in read_lines(transcript):
            if not line.strip():
                continue
            utt_id, sep, text = line.partition(":")
            where = f"{transcript}:{number}"
            if not sep or not utt_id.strip():
                raise CorpusError(f"{where}: expected 'ID:text', got {line!r}")
            utt_id = utt_id.strip()
            yield Candidate(id=f"jsut/{utt_id}", audio=root / subset / "wav" / f"{utt_id}.wav",
                            text=text, where=where, speaker="jsut",
                            extra={"subset": subset}, text_decoded=ok)
