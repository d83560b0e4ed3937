"""Whisper's fixed audio constants, defined once (as ``whisper/audio.py`` does upstream).

Every module that needs the sample rate, the hop, the 30 s window or its frame count imports it
from here; no other module writes 16000, 160 or 3000 as a literal.
"""

from __future__ import annotations

__all__ = ["CHUNK_SECONDS", "FRAMES_PER_SECOND", "FULL_CONTEXT_FRAMES", "HOP_LENGTH",
           "SAMPLES_PER_CHUNK", "SAMPLE_RATE", "ENCODER_STRIDE", "TOKENS_PER_SECOND"]

SAMPLE_RATE = 16000
"""Hz: every model input is 16 kHz mono float32."""

HOP_LENGTH = 160
"""Samples between two log-mel frames (10 ms)."""

CHUNK_SECONDS = 30
"""Seconds of audio in one Whisper window."""

SAMPLES_PER_CHUNK = CHUNK_SECONDS * SAMPLE_RATE
"""480,000 samples in one window."""

FULL_CONTEXT_FRAMES = SAMPLES_PER_CHUNK // HOP_LENGTH
"""3000 log-mel frames in one window: what stock Whisper pads every input to."""

FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH
"""100 log-mel frames per second."""

ENCODER_STRIDE = 2
"""The encoder's second convolution halves the frames: 3000 frames -> 1500 positions."""

TOKENS_PER_SECOND = FRAMES_PER_SECOND // ENCODER_STRIDE
"""50 encoder positions per second; timestamp tokens step by 1 / 50 s = 0.02 s."""
