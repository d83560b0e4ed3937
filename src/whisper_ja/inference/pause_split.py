"""Batched-mode segments cut at the sentence pauses Whisper wrote through, and put on speech.

An untouched Whisper often writes two sentences as one segment when the pause between them is
short (whisper-base on ``benchmarks/longform.py``: 20 segments for 23 sentences, "元気出しなよ、
この本は200円でした。" over a 0.3 s pause). Decoding each VAD stretch alone cuts there but loses
the context that keeps CER low, so windows stay merged and their segments are cut afterwards:

1. A second Silero pass (:func:`pause_stretches`: short pauses count, little padding) finds
   the pauses inside each segment (:func:`plan_cuts`).
2. The window's text tokens are timed (cross-attention DTW over the alignment heads: the
   transformers backend's own, CTranslate2's ``align`` on the ct2 backend) and the cut goes
   before the first word that starts after the pause's middle; a cut needs words on both
   sides (:func:`find_cuts`).
3. A pause alone does not tell a sentence end from a comma: Open JTalk's pauses at 、 (Silero
   silence 0.38-0.45 s) are as long as the sentence pauses it missed (0.19-0.38 s), and
   Whisper writes 、 at both. Its probability of 。 there does: a cut is kept when
   P(。 | the window's text before the cut, trailing punctuation dropped), teacher-forced
   after ``<|startoftranscript|><|ja|><|transcribe|>`` without timestamps (CTranslate2's
   ``align`` context, so both backends read the same number), reaches
   ``end_probability`` (:func:`apply_cuts`). Measured there (CTranslate2, float32): 0.14-0.43
   at the sentence ends it missed, at most 0.005 at its commas; the margin is one order of
   magnitude, found on two small synthetic sets (see ``PauseSettings``).

Segment starts (and ends) lying in silence then move onto the nearest speech onset (offset) of
the finer pass when it is close (:func:`snap_segments`); a cut's two sides start and end at
its pause. The times a cut or a snap sets come from VAD, never from word times, so the two
backends give the same segments as long as they put the words on the same side of a pause.

Cost: one more Silero pass per file (~0.3 s for 1.5 min of audio on 2 CPU threads) and, only
for a window with a pause inside a segment, one decoder pass over its text (transformers), or
one ``align`` row for it and one per cut its probabilities leave open (CTranslate2,
:func:`known_end_probability`). A model that writes no 。 (trained on
unpunctuated labels) is never cut; its starts are still snapped.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from whisper_ja.inference.backend import Backend, Encoded
from whisper_ja.inference.options import PauseSettings
from whisper_ja.inference.timestamps import Segment, SpeechSpan, word_spans
from whisper_ja.text.sentences import (
    CLAUSE_MARKS,
    SENTENCE_ENDS,
    continues_sentence,
    ends_sentence,
    is_punctuation,
)

__all__ = ["Cut", "PauseSettings", "apply_cuts", "cut_at_pauses", "end_context",
           "find_cuts", "known_end_probability", "plan_cuts", "snap_segments"]

@dataclass(frozen=True)
class Cut:
    """A cut of one of a window's segments, waiting for Whisper's verdict.

    Attributes:
        segment: Index of the segment among the window's segments.
        at: Tokens of the segment left of the cut (a word boundary).
        context: Tokens of the window's text read before the cut (trailing punctuation
            dropped): P(。) is asked after them.
        pause: The pause (file seconds).
        written_end: Whisper wrote a comma or a space there after a conclusive form (見える、,
            確認されました␣): a sentence end by grammar
            (:func:`~whisper_ja.text.sentences.ends_sentence`), whatever P(。).
    """

    segment: int
    at: int
    context: int
    pause: SpeechSpan
    written_end: bool = False


def _pauses_inside(stretches: Sequence[SpeechSpan], start: float,
                   end: float) -> list[SpeechSpan]:
    """Gaps between consecutive stretches whose middle lies inside ``(start, end)``."""
    # Bisection keeps a long file's thousands of stretches out of every segment's search.
    first = max(0, bisect.bisect_left(stretches, start, key=_end) - 1)
    last = bisect.bisect_right(stretches, end, key=_start) + 1
    near = stretches[first:last]
    gaps = (SpeechSpan(a.end, b.start) for a, b in zip(near, near[1:], strict=False))
    return [g for g in gaps if start < (g.start + g.end) / 2 < end]


def _start(span: SpeechSpan) -> float:
    return span.start


def _end(span: SpeechSpan) -> float:
    return span.end


def plan_cuts(segments: Sequence[Segment],
              stretches: Sequence[SpeechSpan]) -> list[tuple[int, SpeechSpan]]:
    """``(segment index, pause)`` of every pause inside one of a window's segments."""
    return [(index, pause) for index, segment in enumerate(segments)
            for pause in _pauses_inside(stretches, segment.start, segment.end)]


def end_context(text: Sequence[int], stop: int, tokenizer: Any) -> int:
    """``stop`` less the punctuation tokens just before it (a 、 Whisper wrote instead of 。)."""
    while stop > 0 and is_punctuation(tokenizer.decode([text[stop - 1]])):
        stop -= 1
    return stop


def find_cuts(segments: Sequence[Segment], candidates: Sequence[tuple[int, SpeechSpan]],
              starts: Sequence[float] | np.ndarray, tokenizer: Any) -> list[Cut]:
    """Where each candidate pause cuts its segment, by word times.

    Args:
        segments: The window's segments; their ``token_ids`` in order are the window's text.
        candidates: From :func:`plan_cuts`.
        starts: Start (file seconds) of each token of the window's text.
        tokenizer: Anything with ``decode(ids)``.

    Returns:
        Cuts with a spoken word on both sides, in the order of ``candidates``; none before a
        particle or an auxiliary (:func:`~whisper_ja.text.sentences.continues_sentence`).
    """
    offsets = np.cumsum([0, *(len(s.token_ids) for s in segments)])
    text = [t for s in segments for t in s.token_ids]
    cuts = []
    for index, pause in candidates:
        ids, first = segments[index].token_ids, int(offsets[index])
        middle = (pause.start + pause.end) / 2
        bounds = [a for a, _ in word_spans(ids, tokenizer)]
        at = next((a for a in bounds if starts[first + a] >= middle), 0)
        at = _after_written_end(ids, bounds, at, tokenizer)
        left = tokenizer.decode(list(ids[:at]))
        right = tokenizer.decode(list(ids[at:]))
        if (at and not is_punctuation(left) and not is_punctuation(right)
                and not continues_sentence(right)):
            cuts.append(Cut(index, at, end_context(text, first + at, tokenizer), pause,
                            _separated(left, right) and ends_sentence(left)))
    return cuts


def _separated(left: str, right: str) -> bool:
    """Whisper wrote a comma or a space between ``left`` and ``right``.

    Where Whisper writes a stretch without punctuation it separates Japanese sentences with
    spaces ("…確認されました 織川市の…", short-dev set of ``benchmarks/heldout_longform.py``);
    P(。) there is low (0.02-0.07 at four sentence ends, under ``end_probability``), so the
    space, like a comma, is read by grammar instead.
    """
    return (left.rstrip().endswith(CLAUSE_MARKS) or left[-1:].isspace()
            or right[:1].isspace())


STRETCHED_MIN_S = 1.5
"""Speech after a segment's last word that counts as a sentence Whisper left unwritten."""


def trim_stretched_ends(segments: list[Segment], candidates: Sequence[tuple[int, SpeechSpan]],
                        starts: Sequence[float] | np.ndarray, tokenizer: Any) -> list[Segment]:
    """The segments, each ended at the first pause after all its words when speech goes on.

    Whisper sometimes leaves a window's last sentence unwritten and stretches the timestamp
    before it over that speech. Every token of the segment starts before a pause inside it,
    with at least :data:`STRETCHED_MIN_S` of speech after the pause: the segment is ended at
    the pause, so the retry of skipped speech (:func:`~whisper_ja.inference.windows.uncovered`)
    sees the rest.
    """
    offsets = np.cumsum([0, *(len(s.token_ids) for s in segments)])
    out = list(segments)
    last_spoken: dict[int, int | None] = {}
    for index, pause in candidates:
        segment = out[index]
        if index not in last_spoken:
            last_spoken[index] = next(
                (k for k in range(len(segment.token_ids) - 1, -1, -1)
                 if not is_punctuation(tokenizer.decode([segment.token_ids[k]]))), None)
        last = last_spoken[index]
        if last is None or segment.end - pause.end < STRETCHED_MIN_S:
            continue
        if starts[int(offsets[index]) + last] < pause.start:
            out[index] = replace(segment, end=round(pause.start, 3))
    return out


def _after_written_end(ids: Sequence[int], bounds: Sequence[int], at: int, tokenizer: Any,
                       ) -> int:
    """``at`` moved to just after the nearest 。 (！？...) Whisper wrote within a few words.

    The cross-attention times can put a cut a character or two off the pause (…ました。沖|縄);
    when Whisper itself wrote a sentence end that close, the cut belongs right after it.
    """
    if at not in bounds:
        return at
    k = bounds.index(at)
    near = [b for b in bounds[max(0, k - END_SNAP_WORDS):k + END_SNAP_WORDS + 1] if b > 0]
    ends = [b for b in near if tokenizer.decode([ids[b - 1]]).strip() in SENTENCE_ENDS]
    return min(ends, key=lambda b: abs(b - at)) if ends else at


END_SNAP_WORDS = 3
"""Words (Japanese: characters) either side of a cut searched for a written sentence end."""


def known_end_probability(text: Sequence[int], cut: Cut, token_probs: Sequence[float],
                          end: int, threshold: float) -> float | None:
    """P(。) after a cut's context when the timing pass already settles the cut, else None.

    The timing pass teacher-forces the window's text after the same prompt as the scoring
    pass, so ``token_probs[k]``, the probability of ``text[k]`` after ``text[:k]``, comes from
    the very distribution P(。) is read from at ``k = cut.context``. When Whisper wrote 。
    there, that is P(。) itself. Otherwise P(。) <= 1 - P(the token it wrote): when that bound
    is under ``threshold`` (a 、 or a word Whisper was sure of) the cut is refused whatever
    the scoring pass would say, and the bound is returned. Only the other cuts need scoring.
    A comma or space grammar reads as a sentence end (``cut.written_end``) settles the cut
    as 1.0.

    Args:
        text: The window's text tokens.
        cut: From :func:`find_cuts` (its ``context`` is inside ``text``).
        token_probs: Probability of each token of ``text`` after the ones before it.
        end: The id of 。.
        threshold: ``PauseSettings.end_probability``.
    """
    if cut.written_end:
        return 1.0
    written, probability = text[cut.context], float(token_probs[cut.context])
    if written == end:
        return probability
    return 1.0 - probability if 1.0 - probability < threshold else None


def _piece(segment: Segment, first: int, stop: int, span: tuple[float, float],
           words_from: float, words_to: float, tokenizer: Any) -> Segment:
    """Tokens ``first:stop`` of ``segment`` over ``span``, with the words starting in between."""
    ids = segment.token_ids[first:stop]
    text = tokenizer.decode(list(ids), skip_special_tokens=True).strip()
    words = tuple(w for w in segment.words if words_from - 1e-6 <= w.start < words_to)
    return replace(segment, start=round(span[0], 3), end=round(span[1], 3), text=text,
                   words=words, token_ids=ids)


def _cut_segment(segment: Segment, cuts: Sequence[Cut], tokenizer: Any) -> list[Segment]:
    """One segment in pieces at ``cuts`` (its own, accepted, sorted by ``at``).

    Each side of a cut ends (starts) at its pause; words go left when they start before the
    pause's middle, as the cut was placed.
    """
    pieces, first, start, words_from = [], 0, segment.start, -np.inf
    for cut in cuts:
        if cut.at <= first:
            continue
        middle = (cut.pause.start + cut.pause.end) / 2
        pieces.append(_piece(segment, first, cut.at, (start, max(start, cut.pause.start)),
                             words_from, middle, tokenizer))
        first, start, words_from = cut.at, min(cut.pause.end, segment.end), middle
    pieces.append(_piece(segment, first, len(segment.token_ids), (start, segment.end),
                         words_from, np.inf, tokenizer))
    return pieces


def apply_cuts(segments: Sequence[Segment], cuts: Sequence[Cut],
               probabilities: Sequence[float], settings: PauseSettings,
               tokenizer: Any) -> list[Segment]:
    """The window's segments with the cuts Whisper agrees with made.

    Args:
        segments: The window's segments.
        cuts: From :func:`find_cuts`.
        probabilities: P(。) after each cut's ``context``.
        settings: ``end_probability`` decides.
        tokenizer: Anything with ``decode(ids, skip_special_tokens=True)``.
    """
    kept: dict[int, list[Cut]] = {}
    for cut, probability in zip(cuts, probabilities, strict=True):
        if probability >= settings.end_probability:
            kept.setdefault(cut.segment, []).append(cut)
    out: list[Segment] = []
    for index, segment in enumerate(segments):
        mine = sorted(kept.get(index, []), key=lambda c: c.at)
        out.extend(_cut_segment(segment, mine, tokenizer) if mine else [segment])
    return out


ONSET_TAIL_S = 0.35
"""A segment start this close to the end of the pause pass's speech stretch it lies in counts
as in silence: Silero's offsets trail the speech by up to ~0.3 s, so a Whisper boundary placed
right at a sentence's end reads as inside speech (dev set of ``benchmarks/heldout_longform.py``:
a start 0.58 s early, 0.32 s before the stretch's end, was never snapped)."""


def snap_segments(segments: Sequence[Segment], stretches: Sequence[SpeechSpan],
                  settings: PauseSettings) -> list[Segment]:
    """Starts in silence moved onto the next onset, ends onto the last offset, when close.

    Whisper's segment times on a stock model sit up to ~0.4 s before the speech (a window
    starts at the padded VAD stretch, and the model's first timestamp there), and a boundary
    Whisper places between two sentences up to ~0.9 s into the pause; the pause pass knows
    the onset to ~30 ms. A time inside speech (farther than :data:`ONSET_TAIL_S` from the
    stretch's end, for a start), or with no onset (offset) within ``settings.snap_s`` inside
    the segment, is kept.
    """
    if settings.snap_s <= 0 or not stretches:
        return list(segments)
    out = []
    for segment in segments:
        start, end = segment.start, segment.end
        index = bisect.bisect_right(stretches, start, key=_start)  # the next onset's
        in_speech = index > 0 and stretches[index - 1].end > start
        if in_speech and stretches[index - 1].end - start <= ONSET_TAIL_S:
            in_speech = False
        if not in_speech and index < len(stretches):
            onset = stretches[index].start
            if onset - start <= settings.snap_s and onset < end:
                start = onset
        before = bisect.bisect_left(stretches, end, key=_start) - 1  # the last one before end
        if before >= 0 and stretches[before].end < end:
            offset = stretches[before].end
            if end - offset <= settings.snap_s and offset > start:
                end = offset
        out.append(replace(segment, start=round(start, 3), end=round(end, 3)))
    return out


def cut_at_pauses(backend: Backend, encoded: Encoded, rows: Sequence[int],
                  offsets: Sequence[float], found: list[list[Segment]],
                  stretches: Sequence[SpeechSpan], settings: PauseSettings, tokenizer: Any,
                  language: str) -> list[list[Segment]]:
    """Each window's segments cut where Whisper would end a sentence at a pause, then snapped.

    Args:
        backend: The model (``align`` times the text and scores P(。)).
        encoded: The windows' encoder output; window ``i`` is row ``rows[i]``.
        rows: Row of each window.
        offsets: File time of each window's start.
        found: Each window's segments.
        stretches: The pause pass's speech (:func:`whisper_ja.inference.vad.pause_stretches`).
        settings: ``longform.pauses``.
        tokenizer: Anything with ``decode``.
        language: The forced language (the scoring pass's prefix).
    """
    end = backend.vocabulary.sentence_end
    planned = {i: plan_cuts(segs, stretches) for i, segs in enumerate(found) if settings.split}
    needed = [i for i, candidates in planned.items() if candidates]
    if needed and end is not None:
        texts = {i: [t for s in found[i] for t in s.token_ids] for i in needed}
        timed = dict(zip(needed, backend.align(encoded, [rows[i] for i in needed],
                                               [texts[i] for i in needed], language),
                         strict=True))
        cuts = {i: find_cuts(found[i], planned[i], timed[i].starts + offsets[i], tokenizer)
                for i in needed}
        for i in needed:
            found[i] = trim_stretched_ends(found[i], planned[i], timed[i].starts + offsets[i],
                                           tokenizer)
        known = {(i, j): known_end_probability(texts[i], cut, list(timed[i].probs), end,
                                               settings.end_probability)
                 for i in needed for j, cut in enumerate(cuts[i])}
        asked = [key for key, p in known.items() if p is None]
        scored = backend.align(encoded, [rows[i] for i, _ in asked],
                               [[*texts[i][:cuts[i][j].context], end] for i, j in asked],
                               language)
        for key, answer in zip(asked, scored, strict=True):
            known[key] = float(answer.probs[-1])
        for i in needed:
            found[i] = apply_cuts(found[i], cuts[i],
                                  [float(known[i, j] or 0.0) for j in range(len(cuts[i]))],
                                  settings, tokenizer)
    return [snap_segments(segs, stretches, settings) for segs in found]
