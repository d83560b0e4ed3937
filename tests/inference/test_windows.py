"""Which of a window's speech no segment covers (the skipped-speech retry's input)."""

from __future__ import annotations

import numpy as np

from whisper_ja.inference.timestamps import Segment, SpeechSpan
from whisper_ja.inference.windows import Window, split_at_pause, uncovered


def _window(*speech: tuple[float, float]) -> Window:
    stretches = tuple(SpeechSpan(a, b) for a, b in speech)
    return Window(SpeechSpan(0.0, 30.0), np.zeros(1, dtype=np.float32), stretches)


def test_speech_no_segment_covers_is_found_and_short_remnants_are_not():
    window = _window((0.0, 6.0), (7.0, 12.0))
    # the segment covers 0-4 s (4.5 s with its pad): 4.5-6 is 1.5 s, 7-12 is 5 s
    assert uncovered(window, [Segment(0.0, 4.0, "x")]) == [SpeechSpan(4.5, 12.0)]
    assert uncovered(window, [Segment(0.0, 5.0, "x"), Segment(7.0, 12.0, "y")]) == []


def test_stretches_split_only_by_pauses_are_one_piece_and_a_segment_keeps_them_apart():
    # a sentence with two comma pauses, none of it written: one piece to decode, so the
    # model hears it whole
    window = _window((10.0, 12.8), (13.3, 15.0), (15.5, 17.0), (20.0, 24.0), (26.0, 29.0))
    assert uncovered(window, [Segment(20.0, 24.0, "x")]) == [SpeechSpan(10.0, 17.0),
                                                              SpeechSpan(26.0, 29.0)]


def test_a_window_is_cut_at_its_longest_pause_that_leaves_two_seconds_each_side():
    span = SpeechSpan(0.0, 20.0)
    stretches = [SpeechSpan(0.0, 1.5), SpeechSpan(2.5, 9.0), SpeechSpan(9.4, 14.0),
                 SpeechSpan(14.8, 20.0)]
    # 1.5-2.5 is the longest pause but leaves 1.5 s before it; 14.0-14.8 beats 9.0-9.4
    assert split_at_pause(span, stretches) == (SpeechSpan(0.0, 14.0), SpeechSpan(14.8, 20.0))
    assert split_at_pause(span, [SpeechSpan(0.0, 20.0)]) is None
    assert split_at_pause(span, [SpeechSpan(0.0, 1.0), SpeechSpan(1.5, 20.0)]) is None
    # only the stretches inside the span count
    assert split_at_pause(SpeechSpan(2.5, 14.0), stretches) == (SpeechSpan(2.5, 9.0),
                                                                 SpeechSpan(9.4, 14.0))
