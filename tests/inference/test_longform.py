"""Long-form decoding's decisions (seeking, retries, lost speech, pooling) on a scripted backend.

VAD is replaced by known speech stretches, so what the engine does with a dropped window can
be checked exactly: retried without the previous text, re-cut at VAD's stretches, and what is
still lost counted.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.inference.fake_backend import FakeBackend, speech, text, ts
from whisper_ja.audio.constants import SAMPLE_RATE
from whisper_ja.inference import vad
from whisper_ja.inference.backend import Generated, GenerateRequest
from whisper_ja.inference.longform import (
    LongformStats,
    decoder,
    long_audio_segments,
    short_files_segments,
)
from whisper_ja.inference.options import DecodingOptions, LongformOptions, PauseSettings
from whisper_ja.inference.timestamps import SpeechSpan

NO_PAUSES = PauseSettings(split=False, snap_s=0.0, merge_gap_s=0.0)


@pytest.fixture
def stretches(monkeypatch):
    """Set the speech stretches 'VAD' finds: a list the test fills."""
    found: list[SpeechSpan] = []

    def fake(audio, settings=None, max_seconds=float("inf")):
        return list(found)
    monkeypatch.setattr(decoder, "speech_spans", fake)
    monkeypatch.setattr(vad, "speech_spans", fake)
    return found


def _options(mode: str = "sequential", **longform) -> DecodingOptions:
    return DecodingOptions(longform=LongformOptions(mode=mode, pauses=NO_PAUSES, **longform))


def _seconds(window: np.ndarray) -> float:
    return window.size / SAMPLE_RATE


def test_sequential_windows_seek_by_the_last_timestamp_and_carry_the_prompt(stretches):
    stretches.append(SpeechSpan(0.0, 50.0))

    def script(window: np.ndarray, request: GenerateRequest) -> Generated:
        # two segments; the second is left open at 20 s, so the next window starts there
        return Generated((ts(0.0), 1, 2, ts(10.0), ts(10.0), 3, 4, ts(20.0), ts(20.0), 5),
                         -0.1, 0.0)
    backend = FakeBackend(script)
    segments = list(long_audio_segments(backend, speech(50.0), _options()))
    assert [(s.start, s.end) for s in segments[:2]] == [(0.0, 10.0), (10.0, 20.0)]
    assert segments[2].start == 20.0
    assert backend.requests[0].prompt == ()
    assert backend.requests[1].prompt == (1, 2, 3, 4)  # the text decoded before


def test_condition_on_previous_text_off_sends_no_prompt(stretches):
    stretches.append(SpeechSpan(0.0, 50.0))
    backend = FakeBackend(lambda w, r: Generated((ts(0.0), 1, ts(25.0)), -0.1, 0.0))
    list(long_audio_segments(backend, speech(50.0),
                             _options(condition_on_previous_text=False)))
    assert all(r.prompt == () for r in backend.requests)


def test_a_dropped_window_is_retried_then_recut_and_what_stays_silent_is_counted(stretches):
    # Two VAD stretches in one window: the whole window is judged silent; alone, the first
    # stretch decodes, the second stays silent.
    stretches.extend([SpeechSpan(0.0, 6.0), SpeechSpan(7.0, 12.0)])

    def script(window: np.ndarray, request: GenerateRequest) -> Generated:
        if _seconds(window) > 10:  # the whole window
            return Generated((ts(0.0), 1, ts(5.0)), -2.0, 0.9)
        if _seconds(window) > 5.5:  # the first stretch alone
            return Generated((ts(0.0), 7, 8, ts(5.0)), -0.1, 0.0)
        return Generated((), -2.0, 0.9)

    stats = LongformStats()
    segments = list(long_audio_segments(FakeBackend(script), speech(12.0), _options(),
                                        stats=stats))
    assert [s.text for s in segments] == [text([7, 8])]
    assert stats.retried == 1 and stats.recovered == 1
    assert stats.lost_windows == 1 and stats.lost_speech_s == pytest.approx(5.0)


def test_speech_no_retry_recovers_is_counted_as_lost(stretches):
    stretches.append(SpeechSpan(1.0, 9.0))
    silent = FakeBackend(lambda w, r: Generated((ts(0.0), 1, ts(5.0)), -2.0, 0.9))
    stats = LongformStats()
    assert list(long_audio_segments(silent, speech(10.0), _options(), stats=stats)) == []
    assert stats.lost_windows == 1 and stats.lost_speech_s == pytest.approx(8.0)


@pytest.mark.parametrize("mode", ["sequential", "batched"])
def test_retry_dropped_off_never_decodes_again(stretches, mode):
    stretches.extend([SpeechSpan(0.0, 6.0), SpeechSpan(7.0, 12.0)])
    backend = FakeBackend(lambda w, r: Generated((ts(0.0), 1, ts(5.0)), -2.0, 0.9))
    stats = LongformStats()
    list(long_audio_segments(backend, speech(12.0), _options(mode, retry_dropped=False),
                             stats=stats))
    assert len(backend.encoded_batches) == 1 and stats.retried == 0
    assert stats.lost_windows == 1


def test_batched_windows_share_batches_and_keep_open_text(stretches):
    stretches.extend([SpeechSpan(0.0, 20.0), SpeechSpan(25.0, 45.0), SpeechSpan(50.0, 70.0)])
    backend = FakeBackend(lambda w, r: Generated((ts(0.0), 1, ts(4.0), ts(4.0), 2), -0.1, 0.0))
    options = dataclasses.replace(_options("batched"), batch_size=2,
                                  vad=dataclasses.replace(DecodingOptions().vad, max_gap_s=1.0))
    segments = list(long_audio_segments(backend, speech(70.0), options))
    assert backend.encoded_batches == [2, 1]
    assert [s.text for s in segments] == [text([1]), text([2])] * 3
    assert segments[1].end == pytest.approx(20.0)  # open text runs to its window's end


def _punctuation_script(windows_seen: list[tuple[int, ...]]):
    """Window 1 (0-20 s) writes a sentence with 。; window 2 writes none unless prompted."""
    def script(window, request):
        windows_seen.append(request.prompt)
        if _seconds(window) > 19.0:  # the first window
            return Generated((ts(0.0), 1, 99, ts(4.0)), -0.1, 0.0)
        ids = (2, 99) if request.prompt else (2, 3)
        return Generated((ts(0.0), *ids, ts(4.0)), -0.1, 0.0)
    return script


@pytest.mark.parametrize("conditioned", [True, False])
def test_a_batched_window_without_punctuation_is_decoded_again_after_punctuated_text(
        stretches, conditioned):
    stretches.extend([SpeechSpan(0.0, 20.0), SpeechSpan(25.0, 35.0)])
    prompts: list[tuple[int, ...]] = []
    backend = FakeBackend(_punctuation_script(prompts))
    # retry_dropped off: the uncovered speech after each 4 s segment is not filled in
    options = _options("batched", condition_on_previous_text=conditioned, retry_dropped=False)
    stats = LongformStats()
    segments = list(long_audio_segments(backend, speech(35.0), options, stats=stats))
    if conditioned:
        assert prompts == [(), (), (1, 99)]  # the second window again, after the first's text
        assert [s.text for s in segments] == [text([1, 99]), text([2, 99])]
        assert stats.punctuated == 1
    else:
        assert prompts == [(), ()]
        assert [s.text for s in segments] == [text([1, 99]), text([2, 3])]
        assert stats.punctuated == 0


def test_a_re_reading_without_timestamps_lends_its_sentence_ends_to_the_first(stretches):
    # the second window, decoded again after punctuated text, writes 。 after each clause but
    # keeps only its opening timestamp: the first reading's times stay, with its 。 added
    stretches.extend([SpeechSpan(0.0, 20.0), SpeechSpan(25.0, 35.0)])

    def script(window, request):
        if _seconds(window) > 19.0:
            return Generated((ts(0.0), 1, 99, ts(4.0)), -0.1, 0.0)
        if request.prompt:
            return Generated((ts(0.0), 2, 3, 99, 4, 5, 99), -0.1, 0.0)
        return Generated((ts(0.0), 2, 3, ts(2.0), ts(2.0), 4, 5, ts(4.0)), -0.1, 0.0)
    stats = LongformStats()
    segments = list(long_audio_segments(FakeBackend(script), speech(35.0),
                                        _options("batched", retry_dropped=False), stats=stats))
    assert [(s.start, s.end, s.text) for s in segments[1:]] == [
        (25.0, 27.0, text([2, 3, 99])), (27.0, 29.0, text([4, 5, 99]))]
    assert stats.punctuated == 1


def test_cancelled_stops_before_the_next_window(stretches):
    stretches.append(SpeechSpan(0.0, 90.0))
    backend = FakeBackend(lambda w, r: Generated((ts(0.0), 1, ts(29.0)), -0.1, 0.0))
    calls = iter([False, True])
    segments = list(long_audio_segments(backend, speech(90.0), _options(),
                                        cancelled=lambda: next(calls, True)))
    assert len(backend.requests) == 1 and len(segments) == 1


def test_short_files_are_pooled_into_shared_batches(stretches):
    backend = FakeBackend(lambda w, r: Generated((ts(0.0), 3, ts(1.0)), -0.1, 0.0))
    audios = [speech(2.0 + i, seed=i) for i in range(5)]
    options = dataclasses.replace(_options(vad=False), batch_size=2)
    found = short_files_segments(backend, audios, options, [LongformStats() for _ in audios])
    assert backend.encoded_batches == [2, 2, 1]
    assert [len(f) for f in found] == [1] * 5


def test_word_timestamps_come_from_the_backends_alignment(stretches):
    stretches.append(SpeechSpan(0.0, 4.0))
    backend = FakeBackend(lambda w, r: Generated((ts(0.0), 1, 2, 3, ts(3.0)), -0.1, 0.0))
    plain = list(long_audio_segments(backend, speech(4.0), _options()))
    timed = list(long_audio_segments(backend, speech(4.0), _options(word_timestamps=True)))
    assert plain[0].words == ()
    assert [w.text for w in timed[0].words] == [text([1]), text([2]), text([3])]


def test_speech_after_the_models_last_segment_is_not_skipped(stretches):
    # The model writes the first 10 s and stops with a single timestamp (OpenAI's rule would
    # consume the whole window); VAD hears speech to 25 s.
    stretches.append(SpeechSpan(0.0, 25.0))

    def script(window: np.ndarray, request: GenerateRequest) -> Generated:
        if _seconds(window) > 20:
            return Generated((ts(0.0), 1, ts(10.0)), -0.1, 0.0)
        return Generated((ts(0.0), 2, ts(_seconds(window) - 0.5)), -0.1, 0.0)

    for mode in ("sequential", "batched"):
        stats = LongformStats()
        segments = list(long_audio_segments(FakeBackend(script), speech(25.0), _options(mode),
                                            stats=stats))
        assert text([2]) in "".join(s.text for s in segments), mode
        assert segments[-1].end > 20.0, mode
    off = list(long_audio_segments(FakeBackend(script), speech(25.0),
                                   _options("batched", retry_dropped=False)))
    assert [s.text for s in off] == [text([1])]


def test_a_sentence_split_between_a_window_and_its_filled_gap_is_joined(stretches):
    # The model writes only the window's first 4 s, a clause with no mark (ぃ); VAD hears
    # speech to 9 s, and the gap, decoded alone, ends the sentence (い。). The two are one
    # sentence, joined as a window's own clauses are.
    stretches.append(SpeechSpan(0.0, 9.0))

    def script(window: np.ndarray, request: GenerateRequest) -> Generated:
        if _seconds(window) > 8:
            return Generated((ts(0.0), 1, ts(4.0)), -0.1, 0.0)
        return Generated((ts(0.0), 2, 99, ts(_seconds(window) - 0.2)), -0.1, 0.0)

    joins = PauseSettings(split=False, snap_s=0.0, merge_gap_s=1.0)
    options = DecodingOptions(longform=LongformOptions(mode="batched", pauses=joins))
    segments = list(long_audio_segments(FakeBackend(script), speech(9.0), options))
    assert [(s.start, s.text) for s in segments] == [(0.0, text([1, 2, 99]))]
    apart = DecodingOptions(longform=LongformOptions(mode="batched", pauses=NO_PAUSES))
    assert len(list(long_audio_segments(FakeBackend(script), speech(9.0), apart))) == 2


def test_a_loop_every_retry_repeats_keeps_its_closed_text_and_the_rest_is_decoded_again(
        stretches):
    # One VAD stretch (nothing smaller to re-cut): the window loops at every temperature. Its
    # closed segment stays; the loop, open text cut where it began, is dropped and the speech
    # after the closed segment is decoded alone.
    stretches.append(SpeechSpan(0.0, 20.0))

    def script(window: np.ndarray, request: GenerateRequest) -> Generated:
        if _seconds(window) > 19:
            return Generated((ts(0.0), 4, ts(3.0), ts(3.0), *(1, 2, 3) * 12), -0.2, 0.0)
        return Generated((ts(0.0), 5, ts(_seconds(window) - 0.5)), -0.2, 0.0)

    stats = LongformStats()
    segments = list(long_audio_segments(FakeBackend(script), speech(20.0),
                                        _options("batched"), stats=stats))
    assert stats.looped == 1 and stats.filled == 1
    assert [s.text for s in segments] == [text([4]), text([5])]
    assert segments[-1].end > 15.0


@pytest.mark.parametrize("mode", ["sequential", "batched"])
def test_a_looping_window_is_cut_at_its_longest_pause_instead_of_sampled(stretches, mode):
    # Greedy decoding loops on the whole 20 s; each half, cut at the 1 s pause, decodes. No
    # attempt is sampled: on CTranslate2 each sampled loop runs to the token limit.
    stretches.extend([SpeechSpan(0.0, 9.0), SpeechSpan(10.0, 20.0)])

    def script(window: np.ndarray, request: GenerateRequest) -> Generated:
        seconds = _seconds(window)
        if seconds > 15:
            return Generated((ts(0.0), *(1, 2, 3) * 12), -0.2, 0.0)
        return Generated((ts(0.0), 4 if seconds < 9.5 else 5, ts(seconds - 0.5)), -0.2, 0.0)

    backend = FakeBackend(script)
    stats = LongformStats()
    options = dataclasses.replace(_options(mode, condition_on_previous_text=False),
                                  vad=dataclasses.replace(DecodingOptions().vad, max_gap_s=2.0))
    segments = list(long_audio_segments(backend, speech(20.0), options, stats=stats))
    assert [s.text for s in segments] == [text([4]), text([5])]
    assert segments[1].start == pytest.approx(10.0)
    assert {r.temperature for r in backend.requests} == {0.0}
    assert stats.recovered == 1 and stats.looped == 0 and stats.lost_windows == 0
    assert stats.cut_at_pause == 1


def test_a_window_is_cut_once_and_a_half_that_loops_again_is_sampled(stretches):
    # 0-20 s loops at greedy and is cut at 5-6 s; its longer half (6-20 s) loops again and is
    # sampled, not cut again (a model looping everywhere would cost ever more pieces).
    stretches.extend([SpeechSpan(0.0, 5.0), SpeechSpan(6.0, 12.0), SpeechSpan(13.0, 20.0)])

    def script(window: np.ndarray, request: GenerateRequest) -> Generated:
        seconds = _seconds(window)
        if seconds > 10 and request.temperature == 0:
            return Generated((ts(0.0), *(1, 2, 3) * 12), -0.2, 0.0)
        return Generated((ts(0.0), round(seconds) + 10, ts(seconds - 0.5)), -0.2, 0.0)

    backend = FakeBackend(script)
    options = dataclasses.replace(_options("batched"),
                                  vad=dataclasses.replace(DecodingOptions().vad, max_gap_s=2.0))
    segments = list(long_audio_segments(backend, speech(20.0), options))
    assert [round(s.start) for s in segments] == [0, 6]
    assert [s.text for s in segments] == [text([15]), text([24])]
    assert [r.temperature for r in backend.requests] == [0.0, 0.0, 0.2]  # window, halves
