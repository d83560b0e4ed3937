"""Recall of domain terms (names, places, jargon) that a plain CER hides.

A term file has one term per line, optionally ``term<TAB>reading`` (reading in hiragana or
katakana). Blank lines and lines starting with ``#`` are skipped. A term listed twice is an
error (naming both lines), so a per-term table never silently merges entries.

Counting, per utterance: a term *occurs* when the normalized reference contains the normalized
term, and is *recalled* when the normalized hypothesis contains it too. Normalization is the
scoring preset's, with spaces removed for matching (so the ``paper`` preset's word splits cannot
hide a term). Per term and overall: ``recall = recalled / occurrences``.

Reading recall: the term also counts as *heard* when the hypothesis' kana reading contains the
term's reading (given in the file, else Open JTalk's). A term heard but not recalled was
recognized by sound but written differently (kanji choice), which prompting or biasing can fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from whisper_ja.config import read_utf8_text
from whisper_ja.errors import TermFileError
from whisper_ja.text.normalize import NormalizerLike, get_normalizer
from whisper_ja.text.reading import kana_reading, to_reading

__all__ = ["Term", "TermFileError", "TermRecall", "TermStats", "load_terms", "term_recall"]


@dataclass(frozen=True)
class Term:
    """A domain term and, optionally, its reading (katakana or hiragana)."""

    text: str
    reading: str = ""


class _RecallRates:
    """``recall`` and ``reading_recall`` from the counts a subclass holds (one term, or all)."""

    occurrences: int
    recalled: int
    heard: int

    @property
    def recall(self) -> float | None:
        """Share recalled (recalled / occurrences); None when no term occurs."""
        return self.recalled / self.occurrences if self.occurrences else None

    @property
    def reading_recall(self) -> float | None:
        """Share heard (heard / occurrences); None when no term occurs."""
        return self.heard / self.occurrences if self.occurrences else None


@dataclass(frozen=True)
class TermStats(_RecallRates):
    """Counts for one term over a test set.

    Attributes:
        term: The term as written in the term file.
        occurrences: Utterances whose reference contains the term.
        recalled: Of those, utterances whose hypothesis contains it (same spelling).
        heard: Of those, utterances whose hypothesis reading contains the term's reading.
    """

    term: str
    occurrences: int
    recalled: int
    heard: int


@dataclass(frozen=True)
class TermRecall(_RecallRates):
    """Per-term and overall recall.

    Attributes:
        terms: One entry per term, in term-file order (terms never seen included, recall None).
        occurrences: Sum of occurrences over terms.
        recalled: Sum of recalled.
        heard: Sum of heard.
        absent: Terms that occur in no reference (listed, not dropped).
    """

    terms: tuple[TermStats, ...]
    occurrences: int
    recalled: int
    heard: int
    absent: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary with one row per term."""
        return {
            "recall": self.recall, "reading_recall": self.reading_recall,
            "occurrences": self.occurrences, "recalled": self.recalled, "heard": self.heard,
            "absent": list(self.absent),
            "terms": [{"term": t.term, "occurrences": t.occurrences, "recalled": t.recalled,
                       "heard": t.heard, "recall": t.recall, "reading_recall": t.reading_recall}
                      for t in self.terms],
        }


def load_terms(path: str | Path) -> list[Term]:
    """Read a term file (``term`` or ``term<TAB>reading`` per line, UTF-8).

    Raises:
        TermFileError: a line has more than two fields, an empty term, or repeats a term;
            the message names the file and line. Also when the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise TermFileError(f"term file {path} does not exist")
    terms: list[Term] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(read_utf8_text(path, TermFileError).splitlines(), start=1):
        # Only the line end is stripped: a leading tab means an empty term, an error.
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in line.split("\t")]
        where = f"{path}:{number}"
        if len(fields) > 2:
            raise TermFileError(f"{where}: expected 'term' or 'term<TAB>reading', "
                                f"got {len(fields)} tab-separated fields")
        text, reading = fields[0], fields[1] if len(fields) == 2 else ""
        if not text:
            raise TermFileError(f"{where}: empty term")
        if text in seen:
            raise TermFileError(f"{where}: term {text!r} already listed on line {seen[text]}")
        seen[text] = number
        terms.append(Term(text, reading))
    return terms


def _as_terms(terms: Sequence[Term | str]) -> list[Term]:
    return [t if isinstance(t, Term) else Term(t) for t in terms]


def term_recall(refs: Sequence[str], hyps: Sequence[str], terms: Sequence[Term | str],
                normalizer: NormalizerLike = "default") -> TermRecall:
    """Per-term and overall recall of ``terms`` (see the module docstring for the counting).

    Args:
        refs: Raw references.
        hyps: Hypotheses, same order.
        terms: :class:`Term` objects or plain strings.
        normalizer: Preset applied to references, hypotheses and terms alike.

    Returns:
        A :class:`TermRecall`; terms absent from every reference are listed in ``absent``.

    Example:
        >>> term_recall(["東京に行く"], ["とうきょうに行く"], ["東京"]).terms[0].heard
        1
    """
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    norm = get_normalizer(normalizer)

    def flat(text: str) -> str:
        return norm(text).replace(" ", "")

    ref_n = [flat(r) for r in refs]
    hyp_n = [flat(h) for h in hyps]
    hyp_read: list[str | None] = [None] * len(hyps)  # read lazily: only where a term occurs
    stats = []
    for term in _as_terms(terms):
        key = flat(term.text)
        # A given reading goes through the same reader, so とうきょう and トウキョウ both
        # become its pronunciation form トーキョー, as in the hypothesis readings.
        reading = (kana_reading(term.reading.replace(" ", "")) if term.reading
                   else to_reading(term.text, norm))
        occurrences = recalled = heard = 0
        for i, (ref, hyp) in enumerate(zip(ref_n, hyp_n, strict=True)):
            if not key or key not in ref:
                continue
            occurrences += 1
            recalled += key in hyp
            if hyp_read[i] is None:
                hyp_read[i] = to_reading(hyps[i], norm)
            heard += bool(reading) and reading in (hyp_read[i] or "")
        stats.append(TermStats(term.text, occurrences, recalled, heard))
    return TermRecall(
        terms=tuple(stats), occurrences=sum(s.occurrences for s in stats),
        recalled=sum(s.recalled for s in stats), heard=sum(s.heard for s in stats),
        absent=tuple(s.term for s in stats if s.occurrences == 0),
    )
