import json

import pytest

from whisper_ja.errors import AudioError, RequestError
from whisper_ja.inference.timestamps import Segment, Word
from whisper_ja.serve.engine import EngineResult
from whisper_ja.serve.formats import render, srt, timestamp, vtt
from whisper_ja.serve.request import decode_upload, parse_fields

RESULT = EngineResult(
    segments=(Segment(0.0, 2.5, "今日は", (Word(0.0, 1.0, "今日"),), (1, 2)),
              Segment(2.5, 3661.0451, "良い天気です。", token_ids=(3,), looped=True)),
    duration=3661.2, language="ja", temperature=0.0)


def test_timestamps_in_srt_and_vtt_style():
    assert timestamp(3661.0451) == "01:01:01,045"
    assert timestamp(0.9996, ".") == "00:00:01.000"
    assert timestamp(-0.01) == "00:00:00,000"


def test_srt_numbers_cues_and_vtt_has_header():
    assert srt(RESULT.segments) == ("1\n00:00:00,000 --> 00:00:02,500\n今日は\n\n"
                                    "2\n00:00:02,500 --> 01:01:01,045\n良い天気です。\n\n")
    assert vtt(RESULT.segments).startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.500\n今日は\n")


def test_json_text_and_verbose_json_bodies():
    assert render(RESULT, "json") == {"text": "今日は良い天気です。"}
    assert render(RESULT, "text") == "今日は良い天気です。\n"
    body = render(RESULT, "verbose_json", ("segment", "word"))
    assert body["language"] == "japanese" and body["duration"] == 3661.2
    assert [s["id"] for s in body["segments"]] == [0, 1]
    assert body["segments"][1]["looped"] is True and body["segments"][1]["seek"] == 250
    assert body["segments"][0]["avg_logprob"] is None  # unknown, not invented
    assert body["words"] == [{"word": "今日", "start": 0.0, "end": 1.0}]
    assert "words" not in render(RESULT, "verbose_json")
    json.dumps(body)


def test_fields_default_to_japanese_json():
    parsed = parse_fields([("model", "whisper-1")], "served")
    assert parsed.response_format == "json" and parsed.options.language == "ja"
    assert parsed.model == "whisper-1" and parsed.granularities == ("segment",)
    assert parse_fields([], "served").model == "served"


@pytest.mark.parametrize(("fields", "param"), [
    ([("response_format", "xml")], "response_format"),
    ([("temperature", "2")], "temperature"),
    ([("temperature", "hot")], "temperature"),
    ([("timestamp_granularities[]", "word")], "timestamp_granularities[]"),  # needs verbose_json
    ([("response_format", "verbose_json"), ("timestamp_granularities[]", "char")],
     "timestamp_granularities[]"),
    ([("colour", "blue")], "colour"),
    ([("stream", "true")], "stream"),
    ([("language", "ja"), ("language", "en")], "language"),
])
def test_bad_fields_are_refused_naming_the_field(fields, param):
    with pytest.raises(RequestError) as caught:
        parse_fields(fields, "served")
    assert caught.value.param == param
    assert param.rstrip("[]") in str(caught.value)


def test_uploads_that_are_not_audio_are_refused_by_name(ja_clips):
    with pytest.raises(RequestError, match="'a.wav' is empty"):
        decode_upload(b"", "a.wav")
    with pytest.raises(AudioError, match="'notes.wav' is not audio"):
        decode_upload("これは音声ではありません".encode(), "notes.wav")
    audio = decode_upload(ja_clips[0].path.read_bytes(), "clip.wav")
    assert audio.dtype.name == "float32" and audio.size > 16000  # resampled to 16 kHz
