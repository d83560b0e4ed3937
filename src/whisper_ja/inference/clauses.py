"""A window's segments joined into sentences: each clause to the segment that continues it.

Whisper ends a segment at a comma pause as often as at a sentence's (、 or nothing written, or a
。 after a clause form, which :func:`~whisper_ja.text.sentences.ends_sentence` reads), and a
batched window ends wherever the 30 s limit reaches a pause. Segments that do not end a
sentence are joined to what continues them, inside a window (:func:`merge_clauses`) and across
windows (:func:`join_windows`), so a segment is a sentence: what subtitles and the
sentence-start score expect.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace

from whisper_ja.inference.timestamps import Segment
from whisper_ja.text.sentences import continues_sentence, ends_sentence, has_punctuation

__all__ = ["join_windows", "merge_clauses"]


def merge_clauses(segments: Sequence[Segment], max_gap: float) -> list[Segment]:
    """A window's segments with each clause joined to the segment that continues it.

    Whisper often ends a segment at a comma pause (、 or nothing written); a segment that does
    not end a sentence and is followed within ``max_gap`` seconds is merged with the next, so
    segments are sentences (what subtitles and boundary scores expect). A window written with
    no punctuation at all is left as it is: there a segment's end is the only sentence end
    Whisper gives.
    """
    if not _punctuated(segments):
        # Whisper writes some windows without punctuation (and a model fine-tuned on
        # unpunctuated labels writes all of them so). Merging there joined whole sentences:
        # dev set of benchmarks/heldout_longform.py, 3 windows of 4-7 sentences each became one
        # segment; left alone, F1 0.835 -> 0.845 (its clause ends cost less than the merges).
        return list(segments)
    merged: list[Segment] = []
    for segment in segments:
        last = merged[-1] if merged else None
        if last is not None and _continues(last, segment, max_gap):
            merged[-1] = _joined(last, segment)
        else:
            merged.append(segment)
    return merged


def _continues(clause: Segment, segment: Segment, max_gap: float) -> bool:
    """Whether ``segment`` continues ``clause``: no sentence end between, a short gap.

    ``clause`` ends no sentence by :func:`~whisper_ja.text.sentences.ends_sentence` (no 。,
    or a 。 after a continuative form or a particle), or ``segment`` starts with a particle or
    an auxiliary (:func:`~whisper_ja.text.sentences.continues_sentence`), and ``segment``
    starts within ``max_gap`` seconds of ``clause``'s end.
    """
    return segment.start - clause.end <= max_gap and (
        not ends_sentence(clause.text) or continues_sentence(segment.text))


def _punctuated(segments: Sequence[Segment]) -> bool:
    """Whether Whisper wrote any punctuation (else segment ends are its only sentence ends)."""
    return any(has_punctuation(s.text) for s in segments)


def _joined(first: Segment, second: Segment) -> Segment:
    return replace(first, end=second.end, text=first.text + second.text,
                   words=(*first.words, *second.words),
                   token_ids=(*first.token_ids, *second.token_ids),
                   looped=first.looped or second.looped)


def join_windows(windows: Iterable[Sequence[Segment]], max_gap: float) -> Iterator[Segment]:
    """Windows' segments in order, a sentence cut by a window's end joined again.

    A batched window ends at whatever pause the 30 s limit reaches, often a comma's: its last
    segment ends in 、 or nothing, and the next window's first segment starts mid-sentence
    (dev set of ``benchmarks/heldout_longform.py``: 4 of 11 extra segments). When a window
    written with punctuation ends so, that segment is joined to the next window's first one
    starting within ``max_gap`` seconds, as :func:`merge_clauses` joins them inside a window.
    """
    held: Segment | None = None
    for window in windows:
        segments = list(window)
        if held is not None and segments and _continues(held, segments[0], max_gap):
            segments[0] = _joined(held, segments[0])
        elif held is not None:
            yield held
        held = None
        if segments:
            yield from segments[:-1]
            if _punctuated(segments):
                held = segments[-1]
            else:
                yield segments[-1]
    if held is not None:
        yield held
