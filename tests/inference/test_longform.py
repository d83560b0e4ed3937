"""Long-form decoding: parsing windows, seeking by the last timestamp, VAD at known pauses."""

from __future__ import annotations

import numpy as np
import pytest
import soxr
import torch

from whisper_ja.audio.constants import SAMPLE_RATE
from whisper_ja.data.timestamps import TimestampVocab
from whisper_ja.inference import longform
from whisper_ja.inference.decoding import DecodeOptions
from whisper_ja.inference.longform import LongformOptions, WindowResult, transcribe_segments
from whisper_ja.inference.pause_split import PauseSettings
from whisper_ja.inference.timestamps import parse_window
from whisper_ja.inference.vad import SpeechSpan, VadSettings, merge_spans, speech_spans

EOT = 50257


@pytest.fixture(scope="module")
def vocab(tiny_whisper):
    return TimestampVocab.from_tokenizer(tiny_whisper.processor.tokenizer)


def test_window_with_complete_segments_is_consumed_whole(vocab):
    t = vocab.to_token
    parse = parse_window([t(0.0), 11, 12, t(2.0), t(2.5), 13, t(4.0)], vocab, EOT, 30.0)
    assert parse.segments == ((0.0, 2.0, (11, 12)), (2.5, 4.0, (13,)))
    assert parse.seek == 30.0 and parse.well_formed


def test_open_text_is_dropped_and_the_next_window_seeks_to_it(vocab):
    t = vocab.to_token
    parse = parse_window([t(0.0), 11, t(2.0), t(27.5), 14, 15], vocab, EOT, 30.0)
    assert parse.segments == ((0.0, 2.0, (11,)),)
    assert parse.seek == 27.5 and not parse.well_formed
    kept = parse_window([t(0.0), 11, t(2.0), t(27.5), 14, 15], vocab, EOT, 30.0, keep_open=True)
    assert kept.segments[-1] == (27.5, 30.0, (14, 15))


def test_a_dangling_opening_timestamp_is_where_the_next_window_starts(vocab):
    t = vocab.to_token
    parse = parse_window([t(0.0), 11, t(2.0), t(26.0)], vocab, EOT, 30.0)
    assert parse.seek == 26.0 and parse.segments == ((0.0, 2.0, (11,)),)


def test_times_past_a_short_window_are_held_to_its_end(vocab):
    t = vocab.to_token
    parse = parse_window([t(0.0), 11, t(4.0), t(21.0), 12, t(22.0)], vocab, EOT, 8.0)
    assert parse.segments == ((0.0, 4.0, (11,)), (8.0, 8.0, (12,)))


def test_text_without_timestamps_covers_the_window(vocab):
    parse = parse_window([11, 12], vocab, EOT, 12.0)
    assert parse.segments == ((0.0, 12.0, (11, 12)),) and parse.seek == 12.0
    assert not parse.well_formed


SENTENCES = [(1.0 + 4.1 * k, 1.0 + 4.1 * k + 3.0) for k in range(18)]
"""Synthetic long file (75 s): sentence k (token 2000 + k) spans these seconds."""


def _fake_decoder(audio, vocab, calls):
    """A stand-in model that 'hears' SENTENCES, stopping mid-sentence at the window's end."""
    def decode(model, processor, windows, options, prompt=(), attention=False):
        results = []
        for window in windows:
            offset = (window.__array_interface__["data"][0]
                      - audio.__array_interface__["data"][0]) // audio.itemsize / SAMPLE_RATE
            calls.append((round(offset, 2), tuple(prompt)))
            end = window.size / SAMPLE_RATE
            ids = []
            for k, (start, stop) in enumerate(SENTENCES):
                s, e = start - offset, stop - offset
                if s < -0.011 or s >= end:
                    continue
                ids.append(vocab.to_token(s))
                ids.append(2000 + k)
                if e <= end:
                    ids.append(vocab.to_token(e))
            results.append(WindowResult(tuple(ids), -0.1, 0.0, False))
        return results
    return decode


def test_sequential_decoding_seeks_by_the_last_timestamp(tiny_whisper, vocab, monkeypatch):
    audio = np.full(75 * SAMPLE_RATE, 0.1, dtype=np.float32)
    calls: list = []
    monkeypatch.setattr(longform, "decode_windows", _fake_decoder(audio, vocab, calls))
    segments = list(transcribe_segments(audio, tiny_whisper.model, tiny_whisper.processor,
                                        LongformOptions(vad=False), DecodeOptions()))
    assert [s.token_ids for s in segments] == [(2000 + k,) for k in range(len(SENTENCES))]
    for segment, (start, stop) in zip(segments, SENTENCES, strict=True):
        assert segment.start == pytest.approx(start, abs=0.011)
        assert segment.end == pytest.approx(stop, abs=0.011)
    starts = [offset for offset, _ in calls]
    # window 1 ends inside sentence 7 (29.7..32.7): window 2 starts where it opened
    assert starts[:3] == [0.0, pytest.approx(29.7, abs=0.011), pytest.approx(58.4, abs=0.011)]
    # each window is prompted with the tokens decoded before it
    assert calls[1][1] == tuple(2000 + k for k in range(7))


def test_without_previous_text_no_prompt_is_given(tiny_whisper, vocab, monkeypatch):
    audio = np.full(75 * SAMPLE_RATE, 0.1, dtype=np.float32)
    calls: list = []
    monkeypatch.setattr(longform, "decode_windows", _fake_decoder(audio, vocab, calls))
    list(transcribe_segments(audio, tiny_whisper.model, tiny_whisper.processor,
                             LongformOptions(vad=False, condition_on_previous_text=False)))
    assert len(calls) == 3 and all(prompt == () for _, prompt in calls)


def test_merge_spans_joins_close_stretches_within_30_s():
    spans = [SpeechSpan(0.0, 5.0), SpeechSpan(5.5, 12.0), SpeechSpan(20.0, 29.0),
             SpeechSpan(29.5, 40.0), SpeechSpan(41.0, 110.0)]
    merged = merge_spans(spans, max_gap=1.0, max_seconds=30.0)
    assert merged[0] == SpeechSpan(0.0, 12.0)
    assert merged[1] == SpeechSpan(20.0, 40.0)
    assert all(m.duration <= 30.0 + 1e-9 for m in merged)
    assert merged[-1].end == 110.0


@pytest.fixture(scope="module")
def paused_speech():
    """Three synthetic (Open JTalk) sentences, 1 s pauses, then 3 s of faint noise."""
    import pyopenjtalk

    rng = np.random.default_rng(0)
    parts, truth, t = [np.zeros(SAMPLE_RATE // 2, np.float32)], [], 0.5
    for text in ("今日はとても良い天気です。", "駅までの道を教えてください。", "この本は面白い。"):
        wave, rate = pyopenjtalk.tts(text)
        speech = soxr.resample((wave / 32768.0).astype(np.float32), rate, SAMPLE_RATE)
        truth.append((t, t + speech.size / SAMPLE_RATE))
        parts += [speech, np.zeros(SAMPLE_RATE, np.float32)]
        t += speech.size / SAMPLE_RATE + 1.0
    parts.append((0.003 * rng.standard_normal(3 * SAMPLE_RATE)).astype(np.float32))
    return np.concatenate(parts), truth


def test_vad_splits_at_known_pauses(paused_speech):
    audio, truth = paused_speech
    spans = speech_spans(audio, VadSettings(speech_pad_ms=100))
    assert len(spans) == len(truth)
    for span, (start, end) in zip(spans, truth, strict=True):
        assert span.start == pytest.approx(start, abs=0.3)
        assert span.end == pytest.approx(end, abs=0.3)
    assert spans[-1].end < audio.size / SAMPLE_RATE - 2.5  # the noise is not speech


def _one_segment_decoder(calls: list, vocab):
    """A stand-in for ``decode_windows``: records each window's seconds, answers one segment."""
    def decode(model, processor, windows, options, prompt=(), attention=False,
               keep_encoder=False):
        calls.extend(w.size / SAMPLE_RATE for w in windows)
        return [WindowResult((vocab.to_token(0.0), 11, vocab.to_token(1.0)), -0.1, 0.0, False)
                for _ in windows]
    return decode


def test_vad_keeps_only_speech_for_the_decoder(paused_speech, tiny_whisper, vocab, monkeypatch):
    audio, truth = paused_speech
    calls: list = []

    monkeypatch.setattr(longform, "decode_windows", _one_segment_decoder(calls, vocab))
    segments = list(transcribe_segments(audio, tiny_whisper.model, tiny_whisper.processor,
                                        LongformOptions(mode="batched"),
                                        vad=VadSettings(max_gap_s=0.5)))
    assert len(calls) == 3 and all(c < 4.5 for c in calls)
    assert [round(s.start, 1) for s in segments] == pytest.approx(
        [round(s, 1) for s, _ in truth], abs=0.35)


def test_sequential_vad_decodes_close_speech_as_one_stretch(paused_speech, tiny_whisper, vocab,
                                                            monkeypatch):
    audio, truth = paused_speech
    calls: list = []

    monkeypatch.setattr(longform, "decode_windows", _one_segment_decoder(calls, vocab))
    list(transcribe_segments(audio, tiny_whisper.model, tiny_whisper.processor, LongformOptions()))
    speech = truth[-1][1] - truth[0][0]
    assert len(calls) == 1 and speech - 0.6 <= calls[0] < speech + 1.0  # pauses in, noise out


def test_a_long_previous_text_is_cut_to_fit_the_decoder(tiny_whisper, vocab, monkeypatch):
    # 224 new tokens + the prefix + <|startofprev|> leave 220 of the decoder's 448 positions;
    # transformers refuses a longer prompt, so the oldest previous tokens are dropped.
    audio = np.full(75 * SAMPLE_RATE, 0.1, dtype=np.float32)
    prompts: list = []
    words = tuple(range(3000, 3300))  # each window 'hears' 300 tokens of text

    def decode(model, processor, windows, options, prompt=(), attention=False):
        prompts.append(tuple(prompt))
        return [WindowResult((vocab.to_token(0.0), *words, vocab.to_token(20.0)), -0.1, 0.0,
                             False) for _ in windows]
    monkeypatch.setattr(longform, "decode_windows", decode)
    list(transcribe_segments(audio, tiny_whisper.model, tiny_whisper.processor,
                             LongformOptions(vad=False), DecodeOptions(max_new_tokens=224)))
    assert prompts[0] == () and len(prompts) >= 2
    assert all(p == words[-(448 - 224 - 3 - 1):] for p in prompts[1:])


def test_batched_segments_are_cut_at_a_sentence_pause(tiny_whisper, vocab, monkeypatch):
    tokenizer = tiny_whisper.processor.tokenizer
    left = tokenizer.encode("元気出しなよ、", add_special_tokens=False)
    right = tokenizer.encode("この本は安い。", add_special_tokens=False)
    text = [*left, *right]
    asked: list = []

    def decode(model, processor, windows, options, prompt=(), attention=False,
               keep_encoder=False):
        asked.append(keep_encoder)
        return [WindowResult((vocab.to_token(0.5), *text, vocab.to_token(3.0)), -0.1, 0.0,
                             False, encoder_state=torch.zeros(1)) for _ in windows]

    def timed(model, state, prefix, ids, seconds, probe):
        assert list(ids) == text and [probe] == tokenizer.encode("。", add_special_tokens=False)
        starts = np.array([0.6 + 0.05 * i if i < len(left) else 1.8 + 0.05 * i
                           for i in range(len(ids))])
        return starts, np.full(len(ids) + 1, probability)

    monkeypatch.setattr(longform, "decode_windows", decode)
    monkeypatch.setattr(longform, "timed_text", timed)
    monkeypatch.setattr(longform, "pause_stretches", lambda *args: [
        SpeechSpan(0.8, 1.5), SpeechSpan(1.8, 2.9)])
    audio = np.full(10 * SAMPLE_RATE, 0.1, dtype=np.float32)
    batched = LongformOptions(mode="batched", vad=False)
    probability = 0.3
    found = list(transcribe_segments(audio, tiny_whisper.model, tiny_whisper.processor,
                                     batched))
    # cut at the pause; the start (0.5, in silence) snapped onto the onset, the end onto the
    # offset
    assert [(s.start, s.end, s.text) for s in found] == [
        (0.8, 1.5, "元気出しなよ、"), (1.8, 2.9, "この本は安い。")]
    assert asked == [True]
    probability = 0.01  # Whisper would not end the sentence there: one segment
    (whole,) = transcribe_segments(audio, tiny_whisper.model, tiny_whisper.processor, batched)
    assert (whole.start, whole.end) == (0.8, 2.9)
    off = LongformOptions(mode="batched", vad=False, pauses=PauseSettings(split=False))
    list(transcribe_segments(audio, tiny_whisper.model, tiny_whisper.processor, off))
    assert asked[-1] is False  # no encoder output kept when nothing is cut
