"""SRT and WebVTT subtitles from timed segments: one cue per segment, at its real times."""

from __future__ import annotations

from collections.abc import Iterable

from whisper_ja.inference.timestamps import Segment

__all__ = ["format_timestamp", "to_srt", "to_vtt"]


def format_timestamp(seconds: float, decimal: str = ",", always_hours: bool = True) -> str:
    """``HH:MM:SS,mmm`` (SRT) or ``HH:MM:SS.mmm`` / ``MM:SS.mmm`` (WebVTT).

    Args:
        seconds: Non-negative time (negative values are clamped to 0).
        decimal: Separator before the milliseconds (``,`` SRT, ``.`` WebVTT).
        always_hours: Write the hours even when zero.
    """
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    head = f"{hours:02d}:" if always_hours or hours else ""
    return f"{head}{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def _cues(segments: Iterable[Segment]) -> list[Segment]:
    """Segments with text, each ending after it starts (players skip empty cues)."""
    return [s for s in segments if s.text.strip() and s.end > s.start]


def to_srt(segments: Iterable[Segment]) -> str:
    """SubRip subtitles: numbered cues separated by blank lines (empty string for none)."""
    cues = [f"{i}\n{format_timestamp(s.start)} --> {format_timestamp(s.end)}\n{s.text.strip()}\n"
            for i, s in enumerate(_cues(segments), start=1)]
    return "\n".join(cues)


def to_vtt(segments: Iterable[Segment]) -> str:
    """WebVTT subtitles: the ``WEBVTT`` header, then one cue per segment."""
    cues = [f"{format_timestamp(s.start, '.')} --> {format_timestamp(s.end, '.')}\n"
            f"{s.text.strip()}\n" for s in _cues(segments)]
    return "\n".join(["WEBVTT\n", *cues])
