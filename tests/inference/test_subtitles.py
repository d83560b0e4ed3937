"""SRT and WebVTT cues from timed segments."""

from __future__ import annotations

from whisper_ja.inference.subtitles import format_timestamp, to_srt, to_vtt
from whisper_ja.inference.timestamps import Segment

SEGMENTS = [Segment(0.0, 2.5, "今日は良い天気です。"), Segment(3.25, 3.25, "empty cue"),
            Segment(3661.007, 3663.5, " 駅まで "), Segment(4000.0, 4001.0, "  ")]


def test_timestamps():
    assert format_timestamp(3661.007) == "01:01:01,007"
    assert format_timestamp(61.5, ".", always_hours=False) == "01:01.500"
    assert format_timestamp(-0.2) == "00:00:00,000"


def test_srt_has_one_numbered_cue_per_segment_at_its_times():
    assert to_srt(SEGMENTS) == ("1\n00:00:00,000 --> 00:00:02,500\n今日は良い天気です。\n\n"
                                "2\n01:01:01,007 --> 01:01:03,500\n駅まで\n")
    assert to_srt([]) == ""


def test_vtt_has_the_header_and_dotted_times():
    assert to_vtt(SEGMENTS) == ("WEBVTT\n\n00:00:00.000 --> 00:00:02.500\n今日は良い天気です。\n\n"
                                "01:01:01.007 --> 01:01:03.500\n駅まで\n")
