"""Sentence ends carried from one reading of a window to another.

A batched window gets no previous text, and whisper-base writes some windows with no
punctuation at all; its segments there end at clauses as often as at sentences. Decoded again
after punctuated text it punctuates, but that second reading often keeps only its first
timestamp (one segment over the whole window). :func:`carry_sentence_ends` keeps the first
reading's text and times and puts a 。 at the end of each of its segments that the second
reading ends with a sentence end, so that clause ends can be merged and sentence ends kept
(:func:`whisper_ja.inference.clauses.merge_clauses`). Punctuation is not scored by the
default normalizer, so the text's CER does not move.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from difflib import SequenceMatcher

from whisper_ja.inference.timestamps import WindowParse
from whisper_ja.text.sentences import CLAUSE_MARKS, SENTENCE_ENDS, ends_sentence, is_punctuation

__all__ = ["carry_sentence_ends"]

MIN_SHARED = 0.8
"""Share of the first reading's characters the second must also hold for its punctuation to
be carried over: a second reading that stopped early or heard other words says nothing about
the first one's boundaries."""


def _spoken(text: str) -> tuple[str, list[str], list[int]]:
    """``text``'s spoken characters, the marks after each, and where in ``text`` those end."""
    chars: list[str] = []
    after: list[str] = []
    ends: list[int] = []
    for offset, c in enumerate(text, 1):
        if is_punctuation(c):
            if after:
                after[-1] += c
                ends[-1] = offset
        else:
            chars.append(c)
            after.append("")
            ends.append(offset)
    return "".join(chars), after, ends


def _sentence_end_after(first: str, second: str, ends: Sequence[int]) -> list[bool] | None:
    """For each character offset in ``ends`` of ``first``: does ``second`` end a sentence there?

    The texts are matched character by character (spoken characters only); an end counts when
    the second reading writes a sentence end (or a comma that ends one, see
    :func:`~whisper_ja.text.sentences.ends_sentence`) between the characters matched to the
    last one before it and the first one after it. None when the readings share too little.
    """
    spoken = _spoken(first)[0]
    other, marks, mark_ends = _spoken(second)
    matcher = SequenceMatcher(None, spoken, other, autojunk=False)
    blocks = matcher.get_matching_blocks()
    if not spoken or sum(b.size for b in blocks) < MIN_SHARED * len(spoken):
        return None
    where = {a + k: b + k for a, b, size in blocks for k in range(size)}
    found = []
    for end in ends:
        before = [where[i] for i in range(end - 1, -1, -1) if i in where][:1]
        after = [where[i] for i in range(end, len(spoken)) if i in where][:1]
        if not before:
            found.append(False)
            continue
        stop = after[0] if after else len(other)
        found.append(any(_ends_there(second, marks[j], mark_ends[j])
                         for j in range(before[0], stop)))
    return found


def _ends_there(text: str, marks: str, offset: int) -> bool:
    """Whether ``marks``, written in ``text`` just before ``offset``, end a sentence."""
    if any(c in SENTENCE_ENDS for c in marks):
        return True
    return any(c in CLAUSE_MARKS for c in marks) and ends_sentence(text[:offset])


def carry_sentence_ends(first: WindowParse, second: WindowParse,
                        decode: Callable[[Sequence[int]], str],
                        end_id: int) -> WindowParse | None:
    """``first`` with a 。 (``end_id``) after each segment that ``second`` ends a sentence at.

    Args:
        first: The reading whose text and times are kept (written without punctuation).
        second: A punctuated reading of the same window.
        decode: Text of token ids.
        end_id: The id of 。.

    Returns:
        The marked reading; None when the readings share too little text, or when
        ``second`` ends no segment of ``first`` with a sentence.
    """
    texts = [decode(ids) for _, _, ids in first.segments]
    offsets, total = [], 0
    for text in texts:
        total += len(_spoken(text)[0])
        offsets.append(total)
    second_text = "".join(decode(ids) for _, _, ids in second.segments)
    found = _sentence_end_after("".join(texts), second_text, offsets)
    if not found or not any(found):
        return None
    segments = tuple((start, end, (*ids, end_id) if found[index] else ids)
                     for index, (start, end, ids) in enumerate(first.segments))
    return WindowParse(segments=segments, seek=first.seek, well_formed=first.well_formed)
