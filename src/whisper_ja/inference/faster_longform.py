"""Long-form transcription on CTranslate2 (``whisper-ja transcribe --backend ct2``).

- ``longform.mode=sequential``: faster-whisper's own ``transcribe`` (seeks by the last
  timestamp, conditions on previous text), Japanese forced, its bundled Silero VAD; every
  faster-whisper segment (and word) becomes a :class:`~whisper_ja.inference.timestamps.Segment`,
  one for one, never joined.
- ``longform.mode=batched``: whisper-ja's own batched algorithm, the same VAD windows and
  timestamp parsing as the transformers backend, decoded by CTranslate2
  (:mod:`whisper_ja.inference.ct2_longform`).

:func:`faster_whisper_batched` runs faster-whisper's stock ``BatchedInferencePipeline``: not a
CLI mode, the reference arm of ``benchmarks/longform.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from whisper_ja.audio.constants import SAMPLE_RATE, SAMPLES_PER_CHUNK
from whisper_ja.audio.io import is_silent
from whisper_ja.inference.ct2_longform import ct2_batched_segments
from whisper_ja.inference.decoding import WINDOW_MAX_TOKENS, DecodeOptions, is_looping
from whisper_ja.inference.faster import load_faster_whisper
from whisper_ja.inference.longform import LongformOptions
from whisper_ja.inference.timestamps import Segment, Word
from whisper_ja.inference.vad import VadSettings

__all__ = ["ct2_segments", "faster_segments", "faster_whisper_batched", "segment_from_faster"]


def _vad_parameters(vad: VadSettings) -> dict[str, Any]:
    return {"threshold": vad.threshold, "min_speech_duration_ms": vad.min_speech_ms,
            "min_silence_duration_ms": vad.min_silence_ms, "speech_pad_ms": vad.speech_pad_ms}


def segment_from_faster(found: Any, max_new_tokens: int) -> Segment:
    """One faster-whisper segment (and its words) as a :class:`Segment`, times to the ms.

    Used by ``transcribe --backend ct2`` and the server's ct2 engine alike. A segment counts
    as looped when it hit the token limit or repeats itself (:func:`is_looping`).
    """
    words = tuple(Word(round(float(w.start), 3), round(float(w.end), 3), w.word.strip(),
                       float(w.probability)) for w in (found.words or ()))
    tokens = tuple(int(t) for t in found.tokens)
    return Segment(round(float(found.start), 3), round(float(found.end), 3), found.text.strip(),
                   words, tokens, float(found.avg_logprob), float(found.no_speech_prob),
                   len(tokens) >= max_new_tokens or is_looping(tokens))


def _faster_options(longform: LongformOptions, options: DecodeOptions,
                    vad: VadSettings) -> dict[str, Any]:
    """The keyword arguments faster-whisper's ``transcribe`` methods share."""
    return {
        "language": options.language, "task": "transcribe", "beam_size": options.num_beams,
        "temperature": 0.0, "word_timestamps": longform.word_timestamps,
        "vad_filter": longform.vad, "max_new_tokens": options.max_new_tokens,
        "no_speech_threshold": options.no_speech_threshold,
        "log_prob_threshold": options.logprob_threshold,
        "vad_parameters": _vad_parameters(vad) if longform.vad else None,
        "without_timestamps": False,
    }


def faster_segments(found: Iterable[Any], max_new_tokens: int) -> Iterator[Segment]:
    """faster-whisper's non-empty segments as :class:`Segment` objects (CLI and server)."""
    for item in found:
        segment = segment_from_faster(item, max_new_tokens)
        if segment.text:
            yield segment


def ct2_segments(audio: np.ndarray, model_dir: str | Path,
                 longform: LongformOptions | None = None,
                 options: DecodeOptions | None = None,
                 vad: VadSettings | None = None, compute_type: str = "int8",
                 cpu_threads: int = 0, device: str = "cpu") -> Iterator[Segment]:
    """Timed segments of a recording on CTranslate2, yielded as they are decoded.

    Args:
        audio: ``(samples,)`` float32 at 16 kHz.
        model_dir: CTranslate2 folder (``whisper-ja export --to ct2``).
        longform: Mode (``sequential``: faster-whisper's ``transcribe``; ``batched``:
            whisper-ja's VAD windows, :func:`ct2_batched_segments`), VAD, previous text, word
            timestamps (None: the defaults, as for ``options`` and ``vad``).
        options: Beams, token limit, batch size, language, no-speech rule.
        vad: Silero VAD settings.
        compute_type: CTranslate2 compute type.
        cpu_threads: CTranslate2 threads (0 = its default).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
    """
    if is_silent(audio):  # the energy gate of the transformers backend: silence stays empty
        return
    longform = longform or LongformOptions()
    options = options or DecodeOptions(max_new_tokens=WINDOW_MAX_TOKENS)
    vad = vad or VadSettings()
    if longform.mode == "batched":
        yield from ct2_batched_segments(audio, model_dir, longform, options, vad, compute_type,
                                        cpu_threads, device)
        return
    model = load_faster_whisper(str(model_dir), compute_type, cpu_threads, device)
    common = _faster_options(longform, options, vad)
    if longform.condition_on_previous_text:
        # faster-whisper prompts with up to max_length // 2 - 1 previous tokens and refuses a
        # window whose prompt, prefix and max_new_tokens exceed max_length (448).
        room = model.max_length - (model.max_length // 2 - 1) - 4
        common["max_new_tokens"] = min(options.max_new_tokens, room)
    found, _ = model.transcribe(
        np.asarray(audio, dtype=np.float32),
        condition_on_previous_text=longform.condition_on_previous_text, **common)
    yield from faster_segments(found, options.max_new_tokens)


def faster_whisper_batched(audio: np.ndarray, model_dir: str | Path,
                           longform: LongformOptions | None = None,
                           options: DecodeOptions | None = None,
                           vad: VadSettings | None = None, compute_type: str = "int8",
                           cpu_threads: int = 0, device: str = "cpu") -> Iterator[Segment]:
    """faster-whisper's stock ``BatchedInferencePipeline`` (the benchmark's reference arm).

    Same arguments as :func:`ct2_segments` (``longform.mode`` is not read). The CLI's batched
    mode runs whisper-ja's own algorithm instead: measured on synthetic long recordings, this
    pipeline lost text and boundaries (``benchmarks/README.md``).
    """
    if is_silent(audio):
        return
    longform = longform or LongformOptions(mode="batched")
    options = options or DecodeOptions(max_new_tokens=WINDOW_MAX_TOKENS)
    vad = vad or VadSettings()
    # Imported here, not at the top: faster-whisper loads only for the ct2 backend.
    from faster_whisper import BatchedInferencePipeline

    model = load_faster_whisper(str(model_dir), compute_type, cpu_threads, device)
    common = _faster_options(longform, options, vad)
    if not longform.vad:  # the pipeline needs its windows given (in seconds) when VAD is off
        common["clip_timestamps"] = [
            {"start": start / SAMPLE_RATE,
             "end": min(start + SAMPLES_PER_CHUNK, audio.size) / SAMPLE_RATE}
            for start in range(0, audio.size, SAMPLES_PER_CHUNK)]
    found, _ = BatchedInferencePipeline(model).transcribe(
        np.asarray(audio, dtype=np.float32), batch_size=options.batch_size, **common)
    yield from faster_segments(found, options.max_new_tokens)
