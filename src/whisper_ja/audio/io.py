"""Audio input: decoding, resampling to 16 kHz mono, silence check, chunking of long audio.

Files are decoded with ``soundfile`` (libsndfile: WAV, FLAC, OGG/Opus, MP3, ...) and resampled
with ``soxr`` (high quality), so any sample rate and channel count works. Every failure raises
:class:`AudioError` whose message starts with the file name, so a batch job can report it in one
line and carry on with the other files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from whisper_ja.audio.constants import CHUNK_SECONDS, SAMPLE_RATE
from whisper_ja.errors import AudioError

__all__ = [
    "SAMPLE_RATE",
    "AudioError",
    "is_silent",
    "load_audio",
    "resample",
    "split_long_audio",
]

SILENCE_DBFS = -45.0
"""Audio whose loudest 25 ms frame is quieter than this (dB full scale) counts as silence."""


def resample(audio: np.ndarray, rate: int) -> np.ndarray:
    """Mix down to mono and resample to :data:`SAMPLE_RATE` (float32).

    Args:
        audio: ``(samples,)`` or ``(samples, channels)`` array.
        rate: Its sample rate in Hz.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1, dtype=np.float32)
    if rate != SAMPLE_RATE and audio.size:
        audio = soxr.resample(audio, rate, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(audio, dtype=np.float32)


def load_audio(path: str | Path) -> np.ndarray:
    """Read an audio file as float32 mono at 16 kHz.

    Args:
        path: Any format libsndfile decodes (WAV, FLAC, OGG, MP3, ...), any rate and channels.

    Returns:
        The samples in [-1, 1].

    Raises:
        AudioError: the file is missing, not audio, or holds no samples (the message names it).
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioError(f"{path}: not a readable audio file ({err})") from err
    if audio.shape[0] == 0:
        raise AudioError(f"{path}: contains no audio samples (zero length)")
    if not np.isfinite(audio).all():
        raise AudioError(f"{path}: contains NaN or infinite samples")
    return resample(audio, int(rate))


def _frame_db(audio: np.ndarray, frame: int) -> np.ndarray:
    """RMS level in dBFS of consecutive frames of ``frame`` samples."""
    usable = (audio.size // frame) * frame
    frames = audio[:usable].reshape(-1, frame) if usable else audio.reshape(1, -1)
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    return 20.0 * np.log10(np.maximum(rms, 1e-10))


def is_silent(audio: np.ndarray, threshold_dbfs: float = SILENCE_DBFS) -> bool:
    """Whether a 16 kHz clip holds no speech-level sound at all (an energy check).

    Whisper "hears" sentences in silence and faint noise; skipping such clips before decoding is
    what keeps silence transcribed as an empty string.
    """
    if audio.size == 0:
        return True
    return float(_frame_db(audio, SAMPLE_RATE // 40).max()) < threshold_dbfs


def split_long_audio(audio: np.ndarray, max_seconds: float = CHUNK_SECONDS,
                     search_seconds: float = 5.0) -> list[np.ndarray]:
    """Cut audio longer than ``max_seconds`` into chunks, each cut at a quiet moment.

    Each cut is placed at the quietest 20 ms frame within the last ``search_seconds`` of the
    window, so words are rarely split. Audio that fits is returned as one chunk. Concatenating
    the chunks gives back the input exactly.
    """
    limit = int(max_seconds * SAMPLE_RATE)
    if audio.size <= limit:
        return [audio]
    frame = SAMPLE_RATE // 50
    search = int(search_seconds * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    start = 0
    while audio.size - start > limit:
        window = audio[start + limit - search:start + limit]
        levels = _frame_db(window, frame)
        cut = start + limit - search + int(np.argmin(levels)) * frame
        cut = max(cut, start + frame)  # always advance
        chunks.append(audio[start:cut])
        start = cut
    chunks.append(audio[start:])
    return chunks
