"""Response bodies of ``/v1/audio/transcriptions``: json, text, srt, vtt and verbose_json.

Shapes follow OpenAI's API reference: ``json`` is ``{"text": ...}``; ``verbose_json`` adds
``task``, ``language`` (the English name, e.g. ``japanese``), ``duration`` and ``segments``
(and ``words`` when word granularity was asked for). Decoder statistics a backend does not
compute (``avg_logprob``, ``no_speech_prob`` with transformers) are ``null``, not invented.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

from transformers.models.whisper.tokenization_whisper import LANGUAGES

from whisper_ja.audio.constants import FRAMES_PER_SECOND
from whisper_ja.inference.timestamps import Segment
from whisper_ja.serve.engine import EngineResult

__all__ = ["MEDIA_TYPES", "render", "srt", "timestamp", "verbose_json", "vtt"]

MEDIA_TYPES = {"json": "application/json", "verbose_json": "application/json",
               "text": "text/plain; charset=utf-8", "srt": "application/x-subrip; charset=utf-8",
               "vtt": "text/vtt; charset=utf-8"}


def timestamp(seconds: float, separator: str = ",") -> str:
    """``HH:MM:SS,mmm`` (SRT) or, with ``separator="."``, ``HH:MM:SS.mmm`` (WebVTT)."""
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def srt(segments: Sequence[Segment]) -> str:
    """SubRip cues, numbered from 1."""
    return "".join(f"{i}\n{timestamp(s.start)} --> {timestamp(s.end)}\n{s.text}\n\n"
                   for i, s in enumerate(segments, start=1))


def vtt(segments: Sequence[Segment]) -> str:
    """WebVTT: the header, then one cue per segment."""
    cues = "".join(f"{timestamp(s.start, '.')} --> {timestamp(s.end, '.')}\n{s.text}\n\n"
                   for s in segments)
    return "WEBVTT\n\n" + cues


def _compression_ratio(text: str) -> float:
    """OpenAI's repetition signal: UTF-8 length over zlib-compressed length."""
    data = text.encode("utf-8")
    return round(len(data) / len(zlib.compress(data)), 4) if data else 0.0


def verbose_json(result: EngineResult, granularities: Sequence[str] = ("segment",),
                 ) -> dict[str, Any]:
    """OpenAI's ``verbose_json`` body, with whisper-ja's ``looped`` flag added per segment."""
    body: dict[str, Any] = {
        "task": "transcribe", "language": LANGUAGES.get(result.language, result.language),
        "duration": round(result.duration, 3), "text": result.text,
    }
    if "segment" in granularities or not granularities:
        body["segments"] = [
            {"id": i, "seek": round(s.start * FRAMES_PER_SECOND), "start": round(s.start, 3),
             "end": round(s.end, 3), "text": s.text, "tokens": list(s.token_ids),
             "temperature": result.temperature, "avg_logprob": s.avg_logprob,
             "compression_ratio": _compression_ratio(s.text),
             "no_speech_prob": s.no_speech_prob, "looped": s.looped}
            for i, s in enumerate(result.segments)]
    if "word" in granularities:
        body["words"] = [{"word": w.text, "start": round(w.start, 3), "end": round(w.end, 3)}
                         for s in result.segments for w in s.words]
    return body


def render(result: EngineResult, response_format: str,
           granularities: Sequence[str] = ("segment",)) -> str | dict[str, Any]:
    """The body of one response: a dict for the JSON formats, text for the others."""
    if response_format == "json":
        return {"text": result.text}
    if response_format == "verbose_json":
        return verbose_json(result, granularities)
    if response_format == "srt":
        return srt(result.segments)
    if response_format == "vtt":
        return vtt(result.segments)
    return result.text + "\n"
