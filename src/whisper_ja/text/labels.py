"""Training labels in the base model's own orthography: width folding before tokenizing.

Whisper writes digits, Latin letters and the punctuation between them half-width (``1992年``,
``3.5%``, ``NHK``), while Japanese corpora often write them full-width (``１９９２年``). Trained
on full-width labels, an adapter learns to write ``１９９２`` and, worse, loops on it (issue 14:
``３０００００００…``). :func:`fold_label` applies NFKC to exactly those characters and never
touches kana, kanji or Japanese punctuation (``。、「」``, and ``！？`` next to kana), so kana/kanji
choices stay the corpus's own.

Rules, each a setting of :class:`LabelSettings` (``labels.*`` in ``train``):

- ``digits``: ``０``-``９`` → ``0``-``9``;
- ``latin``: ``Ａ``-``Ｚ``, ``ａ``-``ｚ`` → ``A``-``Z``, ``a``-``z``;
- ``punctuation``: a full-width ASCII symbol (``，．：％＄－＆！？…``) that touches a half-width
  digit or Latin letter (after the two rules above) → its ASCII form: ``３．５％`` → ``3.5%``.

Example:
    >>> fold_label("１９９２年に３．５％増えた。").text
    '1992年に3.5%増えた。'
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from whisper_ja.config import field

__all__ = ["RULES", "LabelFold", "LabelSettings", "count_label_changes", "fold_label"]

RULES = ("digits", "latin", "punctuation")
"""The folding rules, in the order they are applied."""

_FULL_DIGITS = range(0xFF10, 0xFF1A)
_FULL_LATIN = (range(0xFF21, 0xFF3B), range(0xFF41, 0xFF5B))
# Full-width forms of ASCII punctuation and symbols (U+FF01..FF5E minus digits and letters).
_FULL_PUNCTUATION = frozenset(
    chr(c) for c in range(0xFF01, 0xFF5F)
    if c not in _FULL_DIGITS and not any(c in r for r in _FULL_LATIN))


@dataclass(frozen=True)
class LabelSettings:
    """How training transcripts are normalized before tokenizing (``labels.*``)."""

    digits: bool = field(True, help="fold full-width digits to ASCII (１９９２ -> 1992), as "
                                    "Whisper writes them")
    latin: bool = field(True, help="fold full-width Latin letters to ASCII (ＮＨＫ -> NHK)")
    punctuation: bool = field(True, help="fold full-width ASCII punctuation that touches a "
                                         "digit or Latin letter (３．５％ -> 3.5%); Japanese "
                                         "punctuation is never touched")

    @property
    def enabled(self) -> tuple[str, ...]:
        """The rules switched on, in :data:`RULES` order."""
        return tuple(rule for rule in RULES if getattr(self, rule))


@dataclass(frozen=True)
class LabelFold:
    """A folded label and the rules that changed it.

    Attributes:
        text: The label as the model will learn it.
        changed: Names of the rules (of :data:`RULES`) that changed at least one character.
    """

    text: str
    changed: tuple[str, ...]


def _nfkc(char: str) -> str:
    return unicodedata.normalize("NFKC", char)


def _is_ascii_alnum(char: str) -> bool:
    return char.isascii() and char.isalnum()


def _fold_chars(chars: list[str], wanted: Iterable[range]) -> bool:
    changed = False
    for i, char in enumerate(chars):
        if any(ord(char) in r for r in wanted):
            chars[i] = _nfkc(char)
            changed = True
    return changed


def _fold_punctuation(chars: list[str]) -> bool:
    """Fold full-width ASCII symbols touching a half-width alphanumeric, left to right.

    A folded symbol counts as half-width for its right neighbour, so runs such as ``1，000``
    or ``A＆B`` fold whole.
    """
    changed = False
    previous_folded = False
    for i, char in enumerate(chars):
        if char not in _FULL_PUNCTUATION:
            previous_folded = False
            continue
        left = chars[i - 1] if i > 0 else ""
        right = chars[i + 1] if i + 1 < len(chars) else ""
        previous_folded = previous_folded or _is_ascii_alnum(left) or _is_ascii_alnum(right)
        if previous_folded:
            chars[i] = _nfkc(char)
            changed = True
    return changed


def fold_label(text: str, settings: LabelSettings = LabelSettings()) -> LabelFold:
    """Fold the widths of one transcript the way Whisper writes them.

    Args:
        text: A transcript as the corpus gives it.
        settings: Which rules to apply (all by default).

    Returns:
        The folded text and the rules that changed it.
    """
    chars = list(text)
    changed = []
    if settings.digits and _fold_chars(chars, (_FULL_DIGITS,)):
        changed.append("digits")
    if settings.latin and _fold_chars(chars, _FULL_LATIN):
        changed.append("latin")
    if settings.punctuation and _fold_punctuation(chars):
        changed.append("punctuation")
    return LabelFold("".join(chars), tuple(changed))


def count_label_changes(texts: Iterable[str], settings: LabelSettings = LabelSettings()
                        ) -> tuple[list[str], dict[str, int]]:
    """Fold many transcripts and count the labels each rule changed.

    Returns:
        ``(folded texts in input order, {rule: labels it changed}, every enabled rule listed)``.
    """
    counts: Counter[str] = Counter({rule: 0 for rule in settings.enabled})
    folded = []
    for text in texts:
        result = fold_label(text, settings)
        folded.append(result.text)
        counts.update(result.changed)
    return folded, dict(counts)
