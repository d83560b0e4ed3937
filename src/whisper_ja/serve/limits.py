"""The longest audio one request may carry, so that an accepted upload can finish in time.

An upload under ``limits.max_upload_mb`` can hold more audio than the server decodes within
``limits.request_timeout_s`` (a 10-minute 16 kHz WAV is 19.2 MB and takes about 110 s on two
CPU cores). Rather than decode it until the 504, the server refuses it up front, from the
duration its header declares, with HTTP 413 naming the limit:

- ``limits.max_audio_s > 0``: that many seconds, fixed;
- ``limits.max_audio_s = 0`` (the default): what the server decodes in
  :data:`TIMEOUT_SHARE` of the timeout (the rest is room for the upload and the queue) at its
  speed: the slowest of the last :data:`SPEEDS_KEPT` batches of uploads longer than 30 s it
  decoded (audio seconds per second), and ``limits.speed_guess`` until one is measured.

A busy queue can still make an accepted request time out; it is then answered 504 and its
decoding is stopped (:mod:`whisper_ja.serve.batcher`).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from whisper_ja.errors import UploadTooLargeError
from whisper_ja.serve.settings import LimitsConfig

__all__ = ["SPEEDS_KEPT", "TIMEOUT_SHARE", "AudioLimit"]

TIMEOUT_SHARE = 0.8
"""Share of ``request_timeout_s`` an upload's decoding may take."""
SPEEDS_KEPT = 8
"""Measured batches remembered; the slowest of them sets the limit."""
_ADVICE = "send a shorter part, or run `whisper-ja transcribe` on the file"


class AudioLimit:
    """The audio-length limit of one server; :meth:`record` is safe from the model thread."""

    def __init__(self, limits: LimitsConfig) -> None:
        self.limits = limits
        self._speeds: deque[float] = deque(maxlen=SPEEDS_KEPT)
        self._lock = threading.Lock()

    def record(self, audio_s: float, decode_s: float) -> None:
        """One batch decoded to the end: ``audio_s`` seconds of audio in ``decode_s``."""
        with self._lock:
            self._speeds.append(audio_s / max(decode_s, 1e-3))

    @property
    def measured_speed(self) -> float | None:
        """Seconds of audio per second: the slowest recent batch (None: none measured yet)."""
        with self._lock:
            return min(self._speeds) if self._speeds else None

    @property
    def max_seconds(self) -> float:
        """The longest audio accepted now."""
        if self.limits.max_audio_s > 0:
            return self.limits.max_audio_s
        speed = self.measured_speed or self.limits.speed_guess
        return TIMEOUT_SHARE * self.limits.request_timeout_s * speed

    def _why(self) -> str:
        if self.limits.max_audio_s > 0:
            return "(limits.max_audio_s)"
        measured = self.measured_speed
        speed = (f"{measured:.1f} s of audio per second (measured)" if measured is not None
                 else f"{self.limits.speed_guess:g} s of audio per second (limits.speed_guess, "
                 "until measured)")
        return (f"(limits.max_audio_s=0: what it decodes in {TIMEOUT_SHARE:g} x its "
                f"{self.limits.request_timeout_s:g} s limits.request_timeout_s at {speed})")

    def check(self, seconds: float) -> None:
        """Refuse audio longer than :attr:`max_seconds`.

        Raises:
            UploadTooLargeError: too long (HTTP 413); the message names the limit.
        """
        limit = self.max_seconds
        if seconds > limit:
            raise UploadTooLargeError(
                f"file: the audio lasts {seconds:.1f} s, over this server's limit of "
                f"{limit:.0f} s per request {self._why()}; {_ADVICE}", param="file")

    def info(self) -> dict[str, Any]:
        """What ``/api/info`` and ``/health`` show."""
        measured = self.measured_speed
        return {"max_audio_s": round(self.max_seconds, 1),
                "speed": round(measured, 2) if measured is not None else None}
