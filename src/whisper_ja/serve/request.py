"""One transcription request: its form fields, checked as OpenAI defines them, and its audio.

``POST /v1/audio/transcriptions`` takes ``multipart/form-data`` with ``file`` (required),
``model``, ``language`` (default ``ja``), ``prompt``, ``response_format`` (json, text, srt,
vtt, verbose_json), ``timestamp_granularities[]`` (segment, word; verbose_json only) and
``temperature`` (0..1). Any other field, or a value outside these, is refused with a
:class:`~whisper_ja.errors.RequestError` naming the field: nothing a client sends is ignored
silently.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, cast, get_args

import numpy as np
import soundfile as sf

from whisper_ja.audio.io import check_not_truncated, resample
from whisper_ja.errors import AudioError, RequestError, WhisperJaError
from whisper_ja.serve.engine import RequestOptions

__all__ = ["RESPONSE_FORMATS", "ResponseFormat", "TranscriptionRequest", "decode_upload",
           "parse_fields"]

ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]
RESPONSE_FORMATS: tuple[str, ...] = get_args(ResponseFormat)
GRANULARITIES = ("segment", "word")
KNOWN_FIELDS = ("file", "model", "language", "prompt", "response_format",
                "timestamp_granularities[]", "timestamp_granularities", "temperature")
# Fields of OpenAI's API that this server knows but does not offer: named in the refusal.
UNSUPPORTED_FIELDS = {"stream": "streaming responses", "chunking_strategy": "server-side VAD "
                      "chunking", "include[]": "log-probabilities", "include": "log-probabilities"}


@dataclass(frozen=True)
class TranscriptionRequest:
    """The checked form fields of one request (the file travels separately)."""

    model: str
    response_format: ResponseFormat
    options: RequestOptions
    granularities: tuple[str, ...]


def _single(fields: Sequence[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in fields if k == name]
    if len(values) > 1:
        raise RequestError(f"{name}: given {len(values)} times, expected once", param=name)
    return values[0] if values else None


def _temperature(raw: str | None) -> float:
    if raw is None or not raw.strip():
        return 0.0
    try:
        value = float(raw)
    except ValueError as err:
        raise RequestError(f"temperature: expected a number in 0..1, got {raw!r}",
                           param="temperature") from err
    if not 0.0 <= value <= 1.0:
        raise RequestError(f"temperature: must be in 0..1, got {value}", param="temperature")
    return value


def _granularities(fields: Sequence[tuple[str, str]], response_format: str) -> tuple[str, ...]:
    values = tuple(v for k, v in fields if k in ("timestamp_granularities[]",
                                                  "timestamp_granularities"))
    bad = [v for v in values if v not in GRANULARITIES]
    if bad:
        raise RequestError(f"timestamp_granularities[]: {bad[0]!r} is not one of "
                           f"{list(GRANULARITIES)}", param="timestamp_granularities[]")
    if values and response_format != "verbose_json":
        raise RequestError("timestamp_granularities[]: needs response_format verbose_json, "
                           f"got {response_format!r}", param="timestamp_granularities[]")
    return tuple(dict.fromkeys(values)) or ("segment",)


def parse_fields(fields: Sequence[tuple[str, str]], default_model: str) -> TranscriptionRequest:
    """Check the text fields of a transcription form.

    Args:
        fields: ``(name, value)`` pairs of every non-file field, in order.
        default_model: The model used when the request names none.

    Raises:
        RequestError: an unknown or unsupported field, a repeated one, or a bad value.
    """
    for name, _ in fields:
        if name in UNSUPPORTED_FIELDS:
            raise RequestError(f"{name}: {UNSUPPORTED_FIELDS[name]} are not supported by "
                               "this server", param=name)
        if name not in KNOWN_FIELDS:
            raise RequestError(f"{name}: unknown field; known: {', '.join(KNOWN_FIELDS[:-2])}, "
                               "temperature", param=name)
    response_format = _single(fields, "response_format") or "json"
    if response_format not in RESPONSE_FORMATS:
        raise RequestError(f"response_format: {response_format!r} is not one of "
                           f"{list(RESPONSE_FORMATS)}", param="response_format")
    granularities = _granularities(fields, response_format)
    language = (_single(fields, "language") or "ja").strip().lower()
    options = RequestOptions(language=language, prompt=_single(fields, "prompt") or "",
                             temperature=_temperature(_single(fields, "temperature")),
                             words="word" in granularities)
    return TranscriptionRequest(model=_single(fields, "model") or default_model,
                                response_format=cast(ResponseFormat, response_format),
                                options=options, granularities=granularities)


def decode_upload(data: bytes, filename: str,
                  admit: Callable[[float], None] | None = None) -> np.ndarray:
    """Decode an uploaded file (any format and rate libsndfile reads) to 16 kHz mono float32.

    Args:
        data: The file's bytes.
        filename: Its name, for messages.
        admit: Called with the duration its header declares, in seconds, before any sample
            is decoded; raises to refuse it (the server's audio-length limit).

    Raises:
        RequestError: the file is empty, or ``admit`` refused it.
        AudioError: it is not audio, is truncated, holds no samples or non-finite ones.
    """
    if not data:
        raise RequestError(f"file: {filename!r} is empty (0 bytes)", param="file")
    raw = io.BytesIO(data)
    try:
        with sf.SoundFile(raw) as sound:
            check_not_truncated(sound, raw, f"file: {filename!r}")
            rate = sound.samplerate
            if admit is not None and rate > 0:
                admit(sound.frames / rate)
            audio = sound.read(dtype="float32", always_2d=True)
    except WhisperJaError:
        raise
    except sf.LibsndfileError as err:
        reason = err.error_string or "unknown format"
        raise AudioError(f"file: {filename!r} is not audio that can be decoded, or is "
                         f"truncated ({reason})") from err
    except (RuntimeError, TypeError, ValueError) as err:
        raise AudioError(f"file: {filename!r} cannot be decoded ({err})") from err
    if audio.shape[0] == 0:
        raise AudioError(f"file: {filename!r} holds no audio samples (zero length)")
    if not np.isfinite(audio).all():
        raise AudioError(f"file: {filename!r} holds NaN or infinite samples")
    return resample(audio, int(rate))
