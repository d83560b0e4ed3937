"""Long-form transcription with transformers: timed segments of a whole file, lazily.

Two modes, both after Silero VAD (:mod:`whisper_ja.inference.vad`) has found the speech:

- ``sequential`` (OpenAI's algorithm, ``whisper/transcribe.py``): a 30 s window is decoded with
  timestamps, conditioned on the text decoded so far (``<|startofprev|>`` prompt); the next
  window starts at the last timestamp the model wrote, so no sentence is cut at a window border.
  A window that loops is decoded again without the prompt (OpenAI resets the prompt when it
  falls back; greedy decoding is kept so results stay reproducible).
- ``batched`` (after faster-whisper's ``BatchedInferencePipeline``, but whisper-ja's own):
  speech stretches are joined into windows of at most 30 s
  (:func:`whisper_ja.inference.vad.batch_windows`) and decoded together with timestamps,
  without previous text; each window's timestamps cut it into segments
  (:func:`window_segments`), cut again at the sentence pauses Whisper wrote through and
  snapped onto speech (:mod:`whisper_ja.inference.pause_split`). Faster, and a window
  never depends on another. The CTranslate2 backend runs the same windows, parsing and cuts
  (:mod:`whisper_ja.inference.ct2_longform`).

Non-speech between VAD stretches is never decoded, so noise cannot turn into stock phrases. A
window Whisper itself judges silent (no-speech probability above the threshold and
unconfident text, OpenAI's rule) gives no segment.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from transformers.modeling_outputs import BaseModelOutput

from whisper_ja.audio.constants import SAMPLE_RATE, SAMPLES_PER_CHUNK
from whisper_ja.audio.io import is_silent
from whisper_ja.data.timestamps import MAX_PROMPT_TOKENS, TimestampVocab
from whisper_ja.inference.alignment import eager_attention, timed_text, word_timings
from whisper_ja.inference.decoding import (
    WINDOW_MAX_TOKENS,
    DecodeOptions,
    _quiet_transformers,
    is_looping,
)
from whisper_ja.inference.options import LongformOptions
from whisper_ja.inference.pause_split import (
    Timing,
    cut_window,
    sentence_end_id,
)
from whisper_ja.inference.timestamps import Segment, WindowParse, Word, parse_window
from whisper_ja.inference.vad import (
    SpeechSpan,
    VadSettings,
    batch_windows,
    merge_spans,
    pause_stretches,
    speech_spans,
)

__all__ = ["LongformOptions", "WindowResult", "decode_windows",
           "transcribe_segments", "window_segments"]

MIN_WINDOW_SECONDS = 0.3
"""A remainder shorter than this after seeking is not decoded (too short to hold a word)."""




@dataclass(frozen=True)
class _Specials:
    """The special ids decoding needs, looked up in the tokenizer (never literals)."""

    sot: int
    eot: int
    prev: int
    no_speech: int | None
    prefix: tuple[int, ...]
    vocab: TimestampVocab
    end: int | None

    @classmethod
    def of(cls, tokenizer: Any, language: str) -> _Specials:
        ids = {name: tokenizer.convert_tokens_to_ids(name) for name in (
            "<|startoftranscript|>", "<|endoftext|>", "<|startofprev|>", "<|transcribe|>",
            f"<|{language}|>", "<|nospeech|>", "<|nocaptions|>")}
        no_speech = next((ids[t] for t in ("<|nospeech|>", "<|nocaptions|>")
                          if ids[t] != tokenizer.unk_token_id), None)
        sot = ids["<|startoftranscript|>"]
        return cls(sot=sot, eot=ids["<|endoftext|>"], prev=ids["<|startofprev|>"],
                   no_speech=no_speech,
                   prefix=(sot, ids[f"<|{language}|>"], ids["<|transcribe|>"]),
                   vocab=TimestampVocab.from_tokenizer(tokenizer),
                   end=sentence_end_id(tokenizer))


@dataclass(frozen=True)
class WindowResult:
    """One decoded window.

    Attributes:
        token_ids: Generated ids after the task prefix, timestamps included.
        avg_logprob: Mean log-probability of those ids and the end token.
        no_speech_prob: Probability of the no-speech token right after the start token.
        looped: The text repeats itself or hit the token limit.
        cross_attention: ``(layers, heads, tokens, 1500)`` cross-attention of the generated
            ids (only when word timestamps were asked for).
        encoder_state: ``(1, 1500, width)`` encoder output of the window (only when asked
            for: cutting segments at pauses times the text again).
    """

    token_ids: tuple[int, ...]
    avg_logprob: float
    no_speech_prob: float
    looped: bool
    cross_attention: torch.Tensor | None = None
    encoder_state: torch.Tensor | None = None

    def silent(self, options: DecodeOptions) -> bool:
        """Whisper judges the window silent (OpenAI's rule)."""
        threshold = options.no_speech_threshold
        return (threshold is not None and self.no_speech_prob > threshold
                and self.avg_logprob < options.logprob_threshold)


def _base(model: Any) -> Any:
    """The Whisper model under a peft wrapper."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _after_last_sot(row: Sequence[int], sot: int) -> list[int]:
    row = list(row)
    start = len(row) - row[::-1].index(sot) if sot in row else 0
    return row[start:]


@torch.inference_mode()
def decode_windows(model: Any, processor: Any, windows: Sequence[np.ndarray],
                   options: DecodeOptions, prompt: Sequence[int] = (),
                   attention: bool = False, keep_encoder: bool = False) -> list[WindowResult]:
    """Decode up to 30 s windows with timestamps on, Japanese (``options.language``) forced.

    Args:
        model: ``WhisperForConditionalGeneration`` or a peft model wrapping it.
        processor: Its processor.
        windows: 16 kHz float32 clips of at most 30 s (padded to 30 s, as in training).
        options: Beams, token limit and language (``prompt_ids`` is ignored: see ``prompt``).
        prompt: Previous-text ids (without ``<|startofprev|>``), shared by every window.
        attention: Also return the generated ids' cross-attention (word timestamps).
        keep_encoder: Also return each window's encoder output.
    """
    base = _base(model)
    specials = _Specials.of(processor.tokenizer, options.language)
    features = processor.feature_extractor(list(windows), sampling_rate=SAMPLE_RATE,
                                           return_tensors="pt").input_features
    hidden = base.get_encoder()(features.to(device=base.device, dtype=base.dtype)
                                ).last_hidden_state
    kwargs: dict[str, Any] = {}
    if prompt:
        kwargs["prompt_ids"] = torch.tensor([specials.prev, *prompt], device=base.device)
    with _quiet_transformers():
        output = model.generate(
            encoder_outputs=BaseModelOutput(last_hidden_state=hidden), language=options.language,
            task="transcribe", return_timestamps=True, num_beams=options.num_beams,
            max_new_tokens=options.max_new_tokens, do_sample=False,
            # one pass per window: whisper-ja seeks itself (transformers' loop would seek again)
            force_unique_generate_call=True, **kwargs)
    sequences = output.sequences if hasattr(output, "sequences") else output
    rows = [[t for t in _after_last_sot(row, specials.sot)
             if t < specials.eot or specials.vocab.is_timestamp(t)]
            for row in sequences.tolist()]
    results = [_score(base, hidden[i:i + 1], rows[i], prompt, specials, options, attention)
               for i in range(len(rows))]
    if keep_encoder:
        results = [replace(r, encoder_state=hidden[i:i + 1]) for i, r in enumerate(results)]
    return results


def _score(base: Any, hidden: torch.Tensor, ids: list[int], prompt: Sequence[int],
           specials: _Specials, options: DecodeOptions, attention: bool) -> WindowResult:
    """One teacher-forced pass: no-speech probability, mean log-probability, cross-attention."""
    head = [specials.prev, *prompt] if prompt else []
    sot_at = len(head)
    inputs = [*head, *specials.prefix, *ids]
    targets = [*ids, specials.eot]
    with eager_attention(base, attention):
        out = base(encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
                   decoder_input_ids=torch.tensor([inputs], device=hidden.device),
                   output_attentions=attention)
    logprobs = out.logits[0].float().log_softmax(-1)
    no_speech = (float(logprobs[sot_at, specials.no_speech].exp())
                 if specials.no_speech is not None else 0.0)
    first = sot_at + len(specials.prefix) - 1
    chosen = logprobs[first:first + len(targets)].gather(
        1, torch.tensor(targets, device=hidden.device)[:, None])
    text = [t for t in ids if t < specials.eot]
    looped = len(ids) >= options.max_new_tokens or is_looping(text)
    cross = None
    if attention:
        # (layers, heads, tokens, positions) over the generated ids only
        cross = torch.stack([a[0] for a in out.cross_attentions])[:, :, first:first + len(ids)]
    return WindowResult(tuple(ids), float(chosen.mean()), no_speech, looped, cross)


def window_segments(parse: WindowParse, result: WindowResult, offset: float, tokenizer: Any,
                    words: Sequence[Word] = (),
                    segment_words: Sequence[Sequence[Word]] | None = None) -> list[Segment]:
    """One window's segments at file times; the transformers and CTranslate2 paths share it.

    Args:
        parse: The window's parse (:func:`~whisper_ja.inference.timestamps.parse_window`).
        result: The decoded window (scores and loop flag go on every segment).
        offset: The window's start in the file (seconds).
        tokenizer: Anything with ``decode(ids, skip_special_tokens=True)``: a transformers
            tokenizer or the ``tokenizers.Tokenizer`` faster-whisper holds.
        words: The window's words at file times; each segment keeps those starting inside it.
        segment_words: Instead, the words of each of ``parse.segments`` (same order).
    """
    segments = []
    for index, (start, end, ids) in enumerate(parse.segments):
        text = tokenizer.decode(list(ids), skip_special_tokens=True).strip()
        if not text:
            continue
        seg_start, seg_end = offset + start, offset + end
        inside = (tuple(segment_words[index]) if segment_words is not None else
                  tuple(w for w in words if seg_start - 1e-6 <= w.start < seg_end + 1e-6))
        segments.append(Segment(round(seg_start, 3), round(seg_end, 3), text, inside, ids,
                                result.avg_logprob, result.no_speech_prob, result.looped,
                                parse.well_formed))
    return segments


def _segments(parse: WindowParse, result: WindowResult, offset: float, tokenizer: Any,
              specials: _Specials, model: Any, with_words: bool) -> list[Segment]:
    """The window's segments at file times, words by cross-attention DTW when asked for."""
    words = (word_timings(model, tokenizer, result.token_ids, result.cross_attention,
                          specials.vocab, specials.eot, offset)
             if with_words and result.cross_attention is not None else [])
    return window_segments(parse, result, offset, tokenizer, words)


def _prompt_room(model: Any, options: DecodeOptions, specials: _Specials) -> int:
    """Previous-text tokens a window may carry: OpenAI's 223, fewer if the decoder is full.

    ``<|startofprev|>``, the prompt, the task prefix and ``max_new_tokens`` must fit the
    decoder's positions (448), or transformers refuses to generate.
    """
    positions = int(_base(model).config.max_target_positions)
    return max(0, min(MAX_PROMPT_TOKENS,
                      positions - options.max_new_tokens - len(specials.prefix) - 1))


def _spans(audio: np.ndarray, longform: LongformOptions, vad: VadSettings) -> list[SpeechSpan]:
    if longform.vad:
        return speech_spans(audio, vad)
    return [SpeechSpan(0.0, audio.size / SAMPLE_RATE)] if audio.size else []


def _sequential(model: Any, processor: Any, audio: np.ndarray, spans: Sequence[SpeechSpan],
                longform: LongformOptions, options: DecodeOptions, vad: VadSettings,
                ) -> Iterator[Segment]:
    """OpenAI's loop over each speech stretch: decode 30 s, seek by the last timestamp.

    Speech stretches closer than ``vad.max_gap_s`` are decoded as one (pauses included), so a
    window holds up to 30 s of speech and seeking, not VAD, decides where windows meet.
    """
    tokenizer = processor.tokenizer
    specials = _Specials.of(tokenizer, options.language)
    prompt = [t for t in options.prompt_ids if t != specials.prev]
    room = _prompt_room(model, options, specials) if longform.condition_on_previous_text else 0
    stretches = merge_spans(spans, vad.max_gap_s, float("inf")) if longform.vad else spans
    for span in stretches:
        clip = span.samples(audio)
        seek = 0
        while clip.size - seek >= MIN_WINDOW_SECONDS * SAMPLE_RATE:
            window = clip[seek:seek + SAMPLES_PER_CHUNK]
            seconds = window.size / SAMPLE_RATE
            if is_silent(window):
                seek += window.size
                continue
            used = prompt[len(prompt) - room:] if room else []
            result = decode_windows(model, processor, [window], options, used,
                                    longform.word_timestamps)[0]
            if result.looped and used:
                result = decode_windows(model, processor, [window], options, (),
                                        longform.word_timestamps)[0]
            if result.silent(options):
                seek += window.size
                continue
            parse = parse_window(result.token_ids, specials.vocab, specials.eot, seconds)
            found = _segments(parse, result, span.start + seek / SAMPLE_RATE, tokenizer,
                              specials, model, longform.word_timestamps)
            yield from found
            prompt = [] if result.looped else [*prompt, *(t for s in found
                                                         for t in s.token_ids)]
            seek += max(1, round(parse.seek * SAMPLE_RATE))


def _batched(model: Any, processor: Any, audio: np.ndarray, windows: Sequence[SpeechSpan],
             longform: LongformOptions, options: DecodeOptions,
             stretches: Sequence[SpeechSpan] | None) -> Iterator[Segment]:
    """The :func:`batch_windows` of a file decoded ``batch_size`` at a time.

    With ``stretches`` (the pause pass), each window's segments are cut at pauses and
    snapped onto speech (:mod:`whisper_ja.inference.pause_split`).
    """
    tokenizer = processor.tokenizer
    specials = _Specials.of(tokenizer, options.language)
    split = stretches is not None and longform.pauses.split
    for first in range(0, len(windows), options.batch_size):
        batch = windows[first:first + options.batch_size]
        results = decode_windows(model, processor, [w.samples(audio) for w in batch], options,
                                 (), longform.word_timestamps, keep_encoder=split)
        for window, result in zip(batch, results, strict=True):
            if result.silent(options):
                continue
            parse = parse_window(result.token_ids, specials.vocab, specials.eot,
                                 window.duration, keep_open=True)
            found = _segments(parse, result, window.start, tokenizer, specials, model,
                              longform.word_timestamps)
            if stretches is not None:
                found = cut_window(found, stretches, longform.pauses, tokenizer,
                                   _timing(model, result, window, specials))
            yield from found


def _timing(model: Any, result: WindowResult, window: SpeechSpan,
            specials: _Specials) -> Timing | None:
    """A window's text timed again without timestamps, with P(。) (:func:`timed_text`)."""
    state, end = result.encoder_state, specials.end
    if state is None or end is None:
        return None

    def timing(text: list[int]) -> tuple[np.ndarray, np.ndarray]:
        starts, probs = timed_text(model, state, specials.prefix, text, window.duration, end)
        return starts + window.start, probs
    return timing


def transcribe_segments(audio: np.ndarray, model: Any, processor: Any,
                        longform: LongformOptions | None = None,
                        options: DecodeOptions | None = None,
                        vad: VadSettings | None = None) -> Iterator[Segment]:
    """Timed segments of a 16 kHz mono recording of any length, yielded as they are decoded.

    The public entry point of long-form transcription (the CLI and servers use it).

    Args:
        audio: ``(samples,)`` float32 at 16 kHz (:func:`whisper_ja.audio.io.load_audio`).
        model: ``WhisperForConditionalGeneration`` or a peft model wrapping it.
        processor: Its processor.
        longform: Mode, VAD, previous-text conditioning, word timestamps (None: the
            defaults, as for ``options`` and ``vad``).
        options: Beams, token limit per window, batch size (batched mode), language,
            no-speech rule, and an initial prompt (``prompt_ids``, without
            ``<|startofprev|>``).
        vad: Silero VAD settings.

    Yields:
        Segments in time order, at file times (seconds).
    """
    longform = longform or LongformOptions()
    options = options or DecodeOptions(max_new_tokens=WINDOW_MAX_TOKENS)
    vad = vad or VadSettings()
    audio = np.asarray(audio, dtype=np.float32)
    if longform.mode == "batched":
        stretches = (pause_stretches(audio, vad, longform.pauses) if longform.pauses.active
                     else None)
        yield from _batched(model, processor, audio, batch_windows(audio, vad, longform.vad),
                            longform, options, stretches)
    else:
        yield from _sequential(model, processor, audio, _spans(audio, longform, vad), longform,
                               options, vad)
