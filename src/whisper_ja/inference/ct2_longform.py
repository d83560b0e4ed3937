"""whisper-ja's batched long-form algorithm on CTranslate2 (``--backend ct2``, batched mode).

The windows are those of the transformers backend's batched mode
(:func:`whisper_ja.inference.vad.batch_windows`: Silero VAD stretches joined into windows
of at most 30 s, silent ones dropped), decoded ``batch_size`` at a time by CTranslate2's
``Whisper.generate`` (the ``ctranslate2.models.Whisper`` inside faster-whisper's model) with
timestamps on: the prompt ``<|startoftranscript|><|ja|><|transcribe|>`` lacks
``<|notimestamps|>``, so CTranslate2 applies Whisper's timestamp rules itself, as for
faster-whisper's own ``generate_segments``. Greedy or beam, no previous text. Each window's ids
are parsed by whisper-ja's :func:`~whisper_ja.inference.timestamps.parse_window` (open text
kept: a window is never decoded again) into segments at file times; a window Whisper judges
silent gives none (OpenAI's rule, :meth:`~whisper_ja.inference.longform.WindowResult.silent`),
and one that repeats itself or hits the token limit is flagged ``looped``.

Encoder input: 30 s (3000 frames) for a stock export; an export whose ``whisper_ja.json``
records a dynamic-context policy gets each batch's features cut to it
(:func:`~whisper_ja.audio.features.batch_context_frames`: the batch's longest window rounded
up to the bucket, floor honoured), and its windows are decoded shortest first so a batch holds
similar lengths. Segments are yielded in time order all
the same, each window's as soon as every earlier window is decoded (stock: after each batch).

Word timestamps (``longform.word_timestamps``) come from CTranslate2's ``Whisper.align``
(cross-attention DTW over the export's alignment heads, what faster-whisper uses), run on the
very encoder output generation used and only over the window's audio frames; tokens are grouped
into words as the transformers backend groups them
(:func:`~whisper_ja.inference.alignment.group_words`), without faster-whisper's punctuation
merging and word-duration heuristics.

Segments are cut at sentence pauses and snapped onto speech as on the transformers backend
(:mod:`whisper_ja.inference.pause_split`): ``align`` times the text of a window only when a
pause lies inside one of its segments, and scores 。 after each cut its token probabilities
leave open (:func:`~whisper_ja.inference.pause_split.known_end_probability`). In int8 on the
CPU the encoder and ``align`` run one window at a time (faster there than one batch), and
``generate`` the whole batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from whisper_ja.audio.constants import HOP_LENGTH, TOKENS_PER_SECOND
from whisper_ja.audio.features import ContextPolicy, batch_context_frames, log_mel, pad_features
from whisper_ja.data.timestamps import TimestampVocab
from whisper_ja.errors import Ct2Error
from whisper_ja.inference.alignment import group_words
from whisper_ja.inference.decoding import WINDOW_MAX_TOKENS, DecodeOptions, is_looping
from whisper_ja.inference.faster import (
    ct2_avg_logprob,
    export_feature_extractor,
    generate_ct2,
    load_faster_whisper,
    resolve_context,
    task_prompt,
)
from whisper_ja.inference.longform import (
    LongformOptions,
    WindowResult,
    window_segments,
)
from whisper_ja.inference.pause_split import (
    PauseSettings,
    apply_cuts,
    find_cuts,
    known_end_probability,
    plan_cuts,
    sentence_end_id,
    snap_segments,
)
from whisper_ja.inference.timestamps import Segment, WindowParse, Word, parse_window
from whisper_ja.inference.vad import SpeechSpan, VadSettings, batch_windows, pause_stretches

__all__ = ["ct2_batched_segments", "decode_order"]


class _TokenLookup:
    """faster-whisper's ``tokenizers.Tokenizer`` under the two names ``from_tokenizer`` reads.

    :meth:`TimestampVocab.from_tokenizer` asks transformers' ``convert_tokens_to_ids`` and
    ``unk_token_id``; the raw tokenizer has ``token_to_id`` (None for a missing token).
    Adapting it keeps the checks (``<|0.00|>`` present, 1501 consecutive ids) in one place.
    """

    unk_token_id = None

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    def convert_tokens_to_ids(self, token: str) -> int | None:
        return self._tokenizer.token_to_id(token)


@dataclass(frozen=True)
class _Specials:
    """The prompt, end token and timestamp ids, looked up in the export's tokenizer."""

    prompt: tuple[int, ...]
    eot: int
    vocab: TimestampVocab
    end: int | None

    @classmethod
    def of(cls, tokenizer: Any, language: str, folder: str) -> _Specials:
        try:
            vocab = TimestampVocab.from_tokenizer(_TokenLookup(tokenizer))
        except ValueError as err:
            raise Ct2Error(f"{folder}: {err}") from err
        eot = tokenizer.token_to_id("<|endoftext|>")
        if eot is None:
            raise Ct2Error(f"{folder}: tokenizer.json has no <|endoftext|> token")
        return cls(tuple(task_prompt(tokenizer, language, timestamps=True)), int(eot), vocab,
                   sentence_end_id(tokenizer))


def decode_order(windows: Sequence[SpeechSpan], policy: ContextPolicy) -> list[int]:
    """Indices of ``windows`` in the order they are decoded.

    Shortest first under a dynamic policy, so each batch's features are cut short; time order
    otherwise (every batch runs on 30 s, and the first segments come out after one batch).
    """
    if not policy.dynamic:
        return list(range(len(windows)))
    return sorted(range(len(windows)), key=lambda i: windows[i].duration)


def _result(raw: Any, specials: _Specials, options: DecodeOptions) -> WindowResult:
    """One ``WhisperGenerationResult`` as a :class:`WindowResult` (timestamps kept)."""
    generated = raw.sequences_ids[0]
    ids = tuple(int(t) for t in generated if t < specials.eot or specials.vocab.is_timestamp(t))
    avg_logprob = ct2_avg_logprob(raw, len(generated))
    text = [t for t in ids if t < specials.eot]
    looped = len(ids) >= options.max_new_tokens or is_looping(text)
    return WindowResult(ids, avg_logprob, float(raw.no_speech_prob), looped)


def _token_times(found: Any) -> np.ndarray:
    """Start of each aligned token and of the end token (seconds from the window's start)."""
    pairs = np.asarray(found.alignments, dtype=np.int64).reshape(-1, 2)
    # The DTW path enters each token's row (the end token's last) once: where it enters is the
    # token's start, and the next token's start is its end.
    enters = np.concatenate([[True], np.diff(pairs[:, 0]) > 0])
    return pairs[enters, 1] / TOKENS_PER_SECOND


def _segment_words(model: Any, encoded: Any, specials: _Specials,
                   parses: Sequence[WindowParse | None], windows: Sequence[SpeechSpan],
                   frames: Sequence[int]) -> list[list[list[Word]] | None]:
    """Words (file seconds) of each parsed segment, by CTranslate2's alignment heads.

    The window's text tokens are aligned together; each segment takes its own run of them
    (segments hold the window's text tokens in order), so no word is lost at a segment border
    when the alignment puts it slightly outside the segment's timestamps.
    """
    texts = [[t for _, _, ids in parse.segments for t in ids] if parse else []
             for parse in parses]
    if not any(texts):
        return [None for _ in parses]
    aligned = model.model.align(encoded, list(specials.prompt), texts, list(frames))
    out: list[list[list[Word]] | None] = []
    for found, parse, window in zip(aligned, parses, windows, strict=True):
        if parse is None or not parse.segments:
            out.append(None)
            continue
        times, probs, first = _token_times(found), list(found.text_token_probs), 0
        words = []
        for _, _, ids in parse.segments:
            last = first + len(ids)
            words.append(group_words(ids, times[first:last], times[first + 1:last + 1],
                                     model.hf_tokenizer, window.start, probs[first:last]))
            first = last
        out.append(words)
    return out


def _one_row_at_a_time(whisper: Any) -> bool:
    """Whether encoder and ``align`` calls go one row at a time: int8 on the CPU.

    Measured on 2 CPU threads (AVX-512 VNNI, whisper-base, 30 s windows): in int8 the encoder
    took 4 rows in ~20% less time one at a time than as one batch, and ``align`` 4 rows of
    83 tokens ~20% less; in float32 the batch was as fast or faster. On a GPU a batch fills
    the device.
    """
    return (str(getattr(whisper, "device", "cpu")) == "cpu"
            and str(getattr(whisper, "compute_type", "int8")).startswith("int8"))


def _encode(model: Any, feats: np.ndarray) -> Any:
    """Encoder output of a batch of features (a ``StorageView``), ready for generate and align."""
    # Imported here, not at the top: CTranslate2 loads only for the ct2 backend.
    import ctranslate2

    whisper = model.model
    if not _one_row_at_a_time(whisper):
        return whisper.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats)),
                              to_cpu=False)
    rows = [np.asarray(whisper.encode(ctranslate2.StorageView.from_array(
        np.ascontiguousarray(feats[i:i + 1])), to_cpu=True)) for i in range(len(feats))]
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.concatenate(rows)))


def _decode(model: Any, extractor: Any, audio: np.ndarray, windows: Sequence[SpeechSpan],
            policy: ContextPolicy, specials: _Specials, options: DecodeOptions,
            longform: LongformOptions,
            stretches: Sequence[SpeechSpan] | None) -> list[list[Segment]]:
    """One ``generate`` over a batch of windows: each window's segments at file times.

    With ``stretches`` (the pause pass), segments are cut at pauses and snapped onto speech.
    """
    clips = [window.samples(audio) for window in windows]
    frames = batch_context_frames(clips, policy)
    feats = pad_features([log_mel(clip, extractor) for clip in clips], frames)
    encoded = _encode(model, feats.numpy())
    raw = generate_ct2(model, encoded, specials.prompt, len(clips), beam_size=options.num_beams,
                       max_new_tokens=options.max_new_tokens)
    results = [_result(item, specials, options) for item in raw]
    parses = [None if result.silent(options) else
              parse_window(result.token_ids, specials.vocab, specials.eot, window.duration,
                           keep_open=True)
              for window, result in zip(windows, results, strict=True)]
    content = [min(frames, math.ceil(clip.size / HOP_LENGTH)) for clip in clips]
    words: list[list[list[Word]] | None] = [None for _ in windows]
    if longform.word_timestamps:
        words = _segment_words(model, encoded, specials, parses, windows, content)
    found = [window_segments(parse, result, window.start, model.hf_tokenizer,
                             segment_words=timed) if parse is not None else []
             for window, result, parse, timed in zip(windows, results, parses, words,
                                                     strict=True)]
    if stretches is None:
        return found
    return _at_pauses(model, encoded, specials, found, windows, content, stretches,
                      longform.pauses)


def _at_pauses(model: Any, encoded: Any, specials: _Specials, found: list[list[Segment]],
               windows: Sequence[SpeechSpan], frames: Sequence[int],
               stretches: Sequence[SpeechSpan], settings: PauseSettings,
               ) -> list[list[Segment]]:
    """Each window's segments cut where Whisper would end a sentence at a pause, then snapped.

    The transformers backend's rule (:mod:`whisper_ja.inference.pause_split`): CTranslate2's
    ``align`` times the text of each window that has a pause inside a segment; the cuts that
    its token probabilities settle (:func:`known_end_probability`: 。 written there, or a
    token written with P > 1 - ``end_probability``) are decided at once, and only the others
    get an ``align`` row of ``context + [。]`` (its last token's probability is P(。)).
    """
    tokenizer, end, found = model.hf_tokenizer, specials.end, list(found)
    planned = {i: plan_cuts(segments, stretches) for i, segments in enumerate(found)
               if settings.split}
    needed = [i for i, candidates in planned.items() if candidates]
    if needed and end is not None:
        texts = {i: [t for s in found[i] for t in s.token_ids] for i in needed}
        timed = dict(zip(needed, _align(model, encoded, specials, needed,
                                        [texts[i] for i in needed], frames), strict=True))
        cuts = {i: find_cuts(found[i], planned[i],
                             _token_times(timed[i])[:len(texts[i])] + windows[i].start,
                             tokenizer) for i in needed}
        settled = {(i, j): known_end_probability(texts[i], cut, timed[i].text_token_probs,
                                                 end, settings.end_probability)
                   for i in needed for j, cut in enumerate(cuts[i])}
        asked = [key for key, probability in settled.items() if probability is None]
        scored = _align(model, encoded, specials, [i for i, _ in asked],
                        [[*texts[i][:cuts[i][j].context], end] for i, j in asked], frames)
        known = {key: p for key, p in settled.items() if p is not None}
        known.update((key, float(answer.text_token_probs[-1]))
                     for key, answer in zip(asked, scored, strict=True))
        for i in needed:
            found[i] = apply_cuts(found[i], cuts[i], [known[i, j] for j in range(len(cuts[i]))],
                                  settings, tokenizer)
    return [snap_segments(segments, stretches, settings) for segments in found]


def _align(model: Any, encoded: Any, specials: _Specials, rows: Sequence[int],
           texts: Sequence[Sequence[int]], frames: Sequence[int]) -> list[Any]:
    """``align`` of ``texts[j]`` on the encoder output of window ``rows[j]``.

    Only the rows asked for are run, repeated when a window has several texts; the cost of a
    row grows with its text (the decoder and the vocabulary projection run over every token).
    On the CPU each row is its own call (:func:`_one_row_at_a_time`).
    """
    if not rows:
        return []
    # Imported here, not at the top: CTranslate2 loads only for the ct2 backend.
    import ctranslate2

    whisper, prompt = model.model, list(specials.prompt)
    if _one_row_at_a_time(whisper):
        host = np.asarray(encoded)
        return [whisper.align(ctranslate2.StorageView.from_array(
                    np.ascontiguousarray(host[row:row + 1])), prompt, [list(text)],
                    [frames[row]])[0] for row, text in zip(rows, texts, strict=True)]
    if list(rows) != list(range(encoded.shape[0])):
        host = encoded.to_device(ctranslate2.Device.cpu)
        encoded = ctranslate2.StorageView.from_array(
            np.ascontiguousarray(np.asarray(host)[list(rows)]))
    return list(whisper.align(encoded, prompt, [list(t) for t in texts],
                              [frames[i] for i in rows]))


def ct2_batched_segments(audio: np.ndarray, model_dir: str | Path,
                         longform: LongformOptions | None = None,
                         options: DecodeOptions | None = None,
                         vad: VadSettings | None = None, compute_type: str = "int8",
                         cpu_threads: int = 0, device: str = "cpu") -> Iterator[Segment]:
    """Timed segments of a recording by whisper-ja's batched algorithm on CTranslate2.

    Args:
        audio: ``(samples,)`` float32 at 16 kHz.
        model_dir: CTranslate2 folder (``whisper-ja export --to ct2``); its context record
            decides the encoder input (stock: 30 s).
        longform: VAD and word timestamps (previous text never applies to batched windows).
        options: Beams, token limit per window, batch size, language, no-speech rule.
        vad: Silero VAD settings.
        compute_type: CTranslate2 compute type.
        cpu_threads: CTranslate2 threads (0 = its default).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.

    Yields:
        Segments in time order, at file times (seconds).

    Raises:
        Ct2Error: the folder is incomplete, its context record unreadable, or its tokenizer
            lacks the prompt or timestamp tokens.
    """
    longform = longform or LongformOptions(mode="batched")
    options = options or DecodeOptions(max_new_tokens=WINDOW_MAX_TOKENS)
    vad = vad or VadSettings()
    audio = np.asarray(audio, dtype=np.float32)
    folder = str(Path(model_dir).expanduser())
    model = load_faster_whisper(folder, compute_type, cpu_threads, device)
    policy = resolve_context(folder, "auto")
    specials = _Specials.of(model.hf_tokenizer, options.language, folder)
    extractor = export_feature_extractor(folder)
    windows = batch_windows(audio, vad, longform.vad)
    stretches = (pause_stretches(audio, vad, longform.pauses) if longform.pauses.active
                 else None)
    order = decode_order(windows, policy)
    done: dict[int, list[Segment]] = {}
    ready = 0  # windows before this one have been yielded
    for first in range(0, len(order), options.batch_size):
        picked = order[first:first + options.batch_size]
        found = _decode(model, extractor, audio, [windows[i] for i in picked], policy, specials,
                        options, longform, stretches)
        done.update(zip(picked, found, strict=True))
        while ready in done:
            yield from done.pop(ready)
            ready += 1
