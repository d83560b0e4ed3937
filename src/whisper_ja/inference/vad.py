"""Voice-activity detection with Silero VAD: where the speech of a long file is.

The Silero model is the ONNX file that ships inside the ``faster-whisper`` wheel
(``faster_whisper/assets/silero_vad_v6.onnx``), run by onnxruntime through faster-whisper's own
``get_speech_timestamps``: no download, and the very detector faster-whisper's ``vad_filter``
uses, so the two backends see the same speech.

:func:`speech_spans` gives the speech stretches of a file; :func:`merge_spans` joins them into
contiguous stretches of at most 30 s (gaps included), and :func:`batch_windows` makes those the
windows of batched decoding (both backends decode the same windows). Stretches
are contiguous pieces of the original audio, so a time inside one maps back by adding its start.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from whisper_ja.audio.constants import CHUNK_SECONDS, SAMPLE_RATE
from whisper_ja.audio.io import is_silent, quiet_stretches, split_long_audio
from whisper_ja.inference.options import PauseSettings, VadSettings
from whisper_ja.inference.timestamps import SpeechSpan

__all__ = ["SpeechSpan", "VadSettings", "batch_windows", "merge_spans", "pause_stretches",
           "speech_spans"]




def speech_spans(audio: np.ndarray, settings: VadSettings | None = None,
                 max_seconds: float = float("inf")) -> list[SpeechSpan]:
    """The speech stretches of a 16 kHz mono clip, by Silero VAD.

    Args:
        audio: ``(samples,)`` float32 at 16 kHz.
        settings: Detector settings.
        max_seconds: Longer stretches are split (at the last pause of at least 98 ms when
            there is one, Silero's rule).

    Returns:
        Stretches in time order, not overlapping; empty when there is no speech.
    """
    # Imported here, not at the top: faster-whisper (and onnxruntime behind it) loads only when
    # VAD runs.
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if audio.size == 0:
        return []
    settings = settings or VadSettings()
    options = VadOptions(threshold=settings.threshold,
                         min_speech_duration_ms=settings.min_speech_ms,
                         min_silence_duration_ms=settings.min_silence_ms,
                         speech_pad_ms=settings.speech_pad_ms,
                         max_speech_duration_s=max_seconds)
    found = get_speech_timestamps(np.asarray(audio, dtype=np.float32), options,
                                  sampling_rate=SAMPLE_RATE)
    return [SpeechSpan(item["start"] / SAMPLE_RATE, item["end"] / SAMPLE_RATE)
            for item in found]


def merge_spans(spans: Sequence[SpeechSpan], max_gap: float,
                max_seconds: float = CHUNK_SECONDS) -> list[SpeechSpan]:
    """Join neighbouring stretches into contiguous windows of at most ``max_seconds``.

    Two stretches share a window when the pause between them is at most ``max_gap`` and the
    joined window still fits. A stretch longer than ``max_seconds`` is cut into equal pieces
    (call :func:`speech_spans` with ``max_seconds`` to cut at pauses instead).

    Args:
        spans: Speech stretches in time order.
        max_gap: Longest pause kept inside a window (seconds).
        max_seconds: Longest window (seconds).
    """
    pieces: list[SpeechSpan] = []
    for span in spans:
        count = max(1, int(np.ceil(span.duration / max_seconds - 1e-9)))
        step = span.duration / count
        pieces.extend(SpeechSpan(span.start + i * step, span.start + (i + 1) * step)
                      for i in range(count))
    merged: list[SpeechSpan] = []
    for piece in pieces:
        if merged and (piece.start - merged[-1].end <= max_gap
                       and piece.end - merged[-1].start <= max_seconds):
            merged[-1] = SpeechSpan(merged[-1].start, piece.end)
        else:
            merged.append(piece)
    return merged


def _quiet_cuts(audio: np.ndarray) -> list[SpeechSpan]:
    """Windows of at most 30 s cut at quiet moments (no VAD)."""
    spans, start = [], 0
    for chunk in split_long_audio(audio):
        spans.append(SpeechSpan(start / SAMPLE_RATE, (start + chunk.size) / SAMPLE_RATE))
        start += chunk.size
    return spans


def batch_windows(audio: np.ndarray, vad: VadSettings, use_vad: bool = True,
                  edge_s: float = 0.0) -> list[SpeechSpan]:
    """The windows of batched long-form decoding, in time order (both backends decode these).

    Silero VAD stretches closer than ``vad.max_gap_s`` joined into windows of at most 30 s
    (``use_vad`` off: the file cut at quiet moments into windows of at most 30 s); windows the
    energy gate finds silent are dropped without running the model.

    Args:
        audio: ``(samples,)`` float32 at 16 kHz.
        vad: Silero VAD settings.
        use_vad: Run VAD (``longform.vad``).
        edge_s: With VAD, widen each window by up to this much audio on each side (never
            into a neighbour, never past 30 s).
    """
    if not use_vad:
        return [w for w in _quiet_cuts(audio) if not is_silent(w.samples(audio))]
    windows = merge_spans(speech_spans(audio, vad), vad.max_gap_s, CHUNK_SECONDS)
    if edge_s > 0:
        windows = _widened(windows, edge_s, audio.size / SAMPLE_RATE)
    return [w for w in windows if not is_silent(w.samples(audio))]


def _widened(windows: Sequence[SpeechSpan], edge_s: float, duration: float,
             ) -> list[SpeechSpan]:
    """Each window widened by up to ``edge_s`` each side, within half its gaps and 30 s."""
    out: list[SpeechSpan] = []
    for index, window in enumerate(windows):
        before = (windows[index - 1].end + window.start) / 2 if index else 0.0
        after = ((window.end + windows[index + 1].start) / 2 if index + 1 < len(windows)
                 else duration)
        edge = min(edge_s, max(0.0, CHUNK_SECONDS - window.duration) / 2)
        out.append(SpeechSpan(max(before, window.start - edge), min(after, window.end + edge)))
    return out


def pause_stretches(audio: np.ndarray, vad: VadSettings,
                    settings: PauseSettings) -> list[SpeechSpan]:
    """Speech stretches separated by every pause of at least ``settings.min_pause_ms``.

    A pause is Silero's, or a stretch ``settings.quiet_db`` under the loud speech
    (:func:`~whisper_ja.audio.io.quiet_stretches`): Silero bridges pauses under ~0.35 s.
    Short stretches are kept (``min_speech_ms=0``): dropping a short word would make a
    longer pause out of two.
    """
    fine = VadSettings(threshold=vad.threshold, min_speech_ms=0,
                       min_silence_ms=settings.min_pause_ms, speech_pad_ms=settings.pad_ms,
                       max_gap_s=vad.max_gap_s)
    stretches = speech_spans(audio, fine)
    if settings.quiet_db <= 0:
        return stretches
    quiet = quiet_stretches(audio, settings.quiet_db, settings.min_pause_ms / 1000)
    return _split_at_quiet(stretches, quiet, settings.pad_ms / 1000)


def _split_at_quiet(stretches: Sequence[SpeechSpan], quiet: Sequence[tuple[float, float]],
                    pad: float) -> list[SpeechSpan]:
    """Each stretch split at the quiet stretches inside it, keeping ``pad`` of each side."""
    # Bisection keeps an hour's thousands of quiet stretches out of every stretch's search.
    ends = [end for _, end in quiet]
    out: list[SpeechSpan] = []
    for stretch in stretches:
        start = stretch.start
        first = bisect.bisect_right(ends, stretch.start)
        last = bisect.bisect_left(quiet, stretch.end, lo=first, key=lambda q: q[0])
        for begin, end in quiet[first:last]:
            left, right = begin + pad, end - pad
            if start < left < right < stretch.end:
                out.append(SpeechSpan(start, left))
                start = right
        out.append(SpeechSpan(start, stretch.end))
    return out
