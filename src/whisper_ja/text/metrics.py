"""CER, WER and reading CER, per utterance and over a whole test set.

Every metric here is corpus-level: total edits over total reference length, summed over the
utterances (not the mean of per-utterance rates, which over-weights short utterances). Edit
operations come from ``jiwer`` (``process_characters`` / ``process_words``).

Units:
    * CER: characters of the normalized text (for ``default``, no spaces exist to be counted).
    * WER: morphological words of the normalized text, split by fugashi + unidic-lite (for the
      ``paper`` preset, its own MeCab spaces).
    * reading CER: katakana of the pronunciation (see :mod:`.reading`), so spelling variants
      (東京 / とうきょう / トウキョウ) are not errors.

Empty texts (see :attr:`ErrorCounts.rate`): an empty reference has length 0; an empty
hypothesis against it is perfect (rate 0.0); any hypothesis text against it gives rate 1.0 (not
infinity, which would poison means and is not valid JSON). An empty hypothesis against a
non-empty reference is all deletions (rate 1.0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import jiwer

from whisper_ja.text.normalize import NormalizerLike, get_normalizer, tagger
from whisper_ja.text.reading import to_reading

__all__ = [
    "METRICS",
    "ErrorCounts",
    "Metric",
    "cer",
    "char_counts",
    "mean_rate",
    "tokens",
    "utterance_counts",
    "utterance_scores",
    "wer",
    "word_counts",
    "reading_cer",
    "term_recall",
]

Metric = Literal["cer", "wer", "reading_cer"]
METRICS: tuple[str, ...] = ("cer", "wer", "reading_cer")
_PRESPLIT = jiwer.Compose([])


@dataclass(frozen=True)
class ErrorCounts:
    """Edit operations of a hypothesis against a reference (one utterance or many, summed).

    Attributes:
        substitutions: Units replaced.
        deletions: Reference units missing from the hypothesis.
        insertions: Hypothesis units not in the reference.
        hits: Units that match.
        reference_length: Units in the reference (= hits + substitutions + deletions).
    """

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    hits: int = 0
    reference_length: int = 0

    def __post_init__(self) -> None:
        if self.reference_length != self.hits + self.substitutions + self.deletions:
            raise ValueError(
                f"reference_length {self.reference_length} != hits + substitutions + deletions "
                f"({self.hits} + {self.substitutions} + {self.deletions})")

    @property
    def errors(self) -> int:
        """Substitutions + deletions + insertions."""
        return self.substitutions + self.deletions + self.insertions

    @property
    def hypothesis_length(self) -> int:
        """Units in the hypothesis (hits + substitutions + insertions)."""
        return self.hits + self.substitutions + self.insertions

    @property
    def rate(self) -> float:
        """Error rate, errors / reference_length.

        With an empty reference: 0.0 when the hypothesis is empty too, 1.0 when it has any
        text (every unit of it is an insertion; capped so the value stays finite).
        """
        if self.reference_length == 0:
            return 0.0 if self.errors == 0 else 1.0
        return self.errors / self.reference_length

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        if not isinstance(other, ErrorCounts):
            return NotImplemented
        return ErrorCounts(
            self.substitutions + other.substitutions, self.deletions + other.deletions,
            self.insertions + other.insertions, self.hits + other.hits,
            self.reference_length + other.reference_length,
        )

    def __radd__(self, other: object) -> ErrorCounts:
        # Lets sum() start from its default 0.
        if other == 0:
            return self
        if isinstance(other, ErrorCounts):
            return other + self
        return NotImplemented

    def to_dict(self) -> dict[str, float | int]:
        """Counts and rate as a JSON-ready dict."""
        return {**asdict(self), "errors": self.errors, "rate": self.rate}


def _from_jiwer(out: jiwer.CharacterOutput | jiwer.WordOutput) -> ErrorCounts:
    return ErrorCounts(
        substitutions=out.substitutions, deletions=out.deletions, insertions=out.insertions,
        hits=out.hits, reference_length=out.hits + out.substitutions + out.deletions,
    )


def _unit_counts(ref_units: list[str], hyp_units: list[str]) -> ErrorCounts:
    """Edits between two unit sequences (via jiwer); empty sequences handled here."""
    if not ref_units:
        return ErrorCounts(insertions=len(hyp_units))
    if not hyp_units:
        return ErrorCounts(deletions=len(ref_units), reference_length=len(ref_units))
    # The units are already split (characters or words): an empty Compose passes them through.
    # jiwer's stubs only declare strings, but with a pass-through transform it takes the
    # pre-split lists that keep characters (spaces included) and words exactly as given.
    out = jiwer.process_words([ref_units], [hyp_units],  # type: ignore[list-item]
                              reference_transform=_PRESPLIT, hypothesis_transform=_PRESPLIT)
    return _from_jiwer(out)


def char_counts(ref: str, hyp: str) -> ErrorCounts:
    """Character edits between two already-normalized strings (every character counts).

    Example:
        >>> char_counts("とうきょう", "ときょう").deletions
        1
    """
    return _unit_counts(list(ref), list(hyp))


def tokens(text: str, normalizer: NormalizerLike = "default") -> list[str]:
    """Morphological words of already-normalized ``text`` (fugashi + unidic-lite).

    For a word-splitting preset (``paper``) the preset's own spaces are the word boundaries.
    """
    if get_normalizer(normalizer).word_split:
        return text.split()
    return [word.surface for word in tagger()(text) if word.surface.strip()]


def word_counts(ref: str, hyp: str, normalizer: NormalizerLike = "default") -> ErrorCounts:
    """Word edits between two already-normalized strings."""
    return _unit_counts(tokens(ref, normalizer), tokens(hyp, normalizer))


def _check_pairs(refs: Sequence[str], hyps: Sequence[str]) -> None:
    if isinstance(refs, str) or isinstance(hyps, str):
        raise TypeError("refs and hyps must be sequences of strings, not a single string")
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")


def utterance_counts(refs: Sequence[str], hyps: Sequence[str], metric: Metric = "cer",
                     normalizer: NormalizerLike = "default") -> list[ErrorCounts]:
    """Per-utterance edit counts of raw (unnormalized) texts under one metric.

    Args:
        refs: Reference transcripts.
        hyps: Hypotheses, same order and length.
        metric: ``cer``, ``wer`` or ``reading_cer``.
        normalizer: Preset name or function applied to both sides.

    Returns:
        One :class:`ErrorCounts` per utterance; their sum is the corpus-level count.
    """
    _check_pairs(refs, hyps)
    norm = get_normalizer(normalizer)
    pair: Callable[[str, str], ErrorCounts]
    if metric == "cer":
        def pair(r: str, h: str) -> ErrorCounts:
            return char_counts(norm(r), norm(h))
    elif metric == "wer":
        def pair(r: str, h: str) -> ErrorCounts:
            return word_counts(norm(r), norm(h), norm)
    elif metric == "reading_cer":
        def pair(r: str, h: str) -> ErrorCounts:
            return char_counts(to_reading(r, norm), to_reading(h, norm))
    else:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    return [pair(r, h) for r, h in zip(refs, hyps, strict=True)]


def cer(refs: Sequence[str], hyps: Sequence[str],
        normalizer: NormalizerLike = "default") -> ErrorCounts:
    """Corpus-level character error counts (``.rate`` is the CER).

    Example:
        >>> cer(["今日は晴れです。"], ["今日 は 晴れ です"]).rate
        0.0
    """
    return sum(utterance_counts(refs, hyps, "cer", normalizer), ErrorCounts())


def wer(refs: Sequence[str], hyps: Sequence[str],
        normalizer: NormalizerLike = "default") -> ErrorCounts:
    """Corpus-level word error counts on morphological words (fugashi + unidic-lite)."""
    return sum(utterance_counts(refs, hyps, "wer", normalizer), ErrorCounts())


def reading_cer(refs: Sequence[str], hyps: Sequence[str],
                normalizer: NormalizerLike = "default") -> ErrorCounts:
    """Corpus-level error counts on katakana readings (東京 vs とうきょう is no error)."""
    return sum(utterance_counts(refs, hyps, "reading_cer", normalizer), ErrorCounts())


def mean_rate(counts: Sequence[ErrorCounts]) -> float:
    """Mean of per-utterance rates (ReazonSpeech's way of averaging); 0.0 when empty."""
    return sum(c.rate for c in counts) / len(counts) if counts else 0.0


def utterance_scores(ref: str, hyp: str, normalizer: NormalizerLike = "default",
                     reading: bool = True) -> dict[str, object]:
    """All scores of one utterance, JSON-ready.

    Args:
        ref: Raw reference.
        hyp: Raw hypothesis.
        normalizer: Preset name or function.
        reading: Also compute the reading CER (needs pyopenjtalk).

    Returns:
        ``ref_normalized``, ``hyp_normalized``, ``cer``, ``wer`` (and ``reading_cer``) rates,
        plus ``cer_counts``, ``wer_counts`` (and ``reading_cer_counts``) as dicts of
        substitutions, deletions, insertions, hits, reference_length, errors, rate.
    """
    norm = get_normalizer(normalizer)
    ref_n, hyp_n = norm(ref), norm(hyp)
    counts = {"cer": char_counts(ref_n, hyp_n), "wer": word_counts(ref_n, hyp_n, norm)}
    if reading:
        counts["reading_cer"] = utterance_counts([ref], [hyp], "reading_cer", norm)[0]
    scores: dict[str, object] = {"ref_normalized": ref_n, "hyp_normalized": hyp_n}
    for name, c in counts.items():
        scores[name] = c.rate
        scores[f"{name}_counts"] = c.to_dict()
    return scores


# Re-exported here as the contract names it; it lives in .terms (which does not import this).
from whisper_ja.text.terms import term_recall  # noqa: E402
