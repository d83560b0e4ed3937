"""Audio input: decoding, resampling to 16 kHz mono, silence check, chunking of long audio.

Files are decoded with ``soundfile`` (libsndfile: WAV, FLAC, OGG/Opus, MP3, ...) and resampled
with ``soxr`` (high quality), so any sample rate and channel count works. Every failure raises
:class:`AudioError` whose message starts with the file name, so a batch job can report it in one
line and carry on with the other files.

A file cut short (a WAV whose ``data`` chunk is shorter than its header declares, a FLAC missing
its last frames) raises :class:`TruncatedAudioError`: libsndfile clamps a short WAV to what is
there and says nothing, so without this check half a clip would be decoded against the whole
sentence's text.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from whisper_ja.audio.constants import CHUNK_SECONDS, SAMPLE_RATE
from whisper_ja.errors import AudioError, TruncatedAudioError

__all__ = [
    "SAMPLE_RATE",
    "AudioError",
    "TruncatedAudioError",
    "audio_duration",
    "check_not_truncated",
    "is_silent",
    "load_audio",
    "quiet_stretches",
    "read_sound",
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


_UNKNOWN_WAV_LENGTHS = (0, 0xFFFFFFFF)
"""``data`` chunk sizes a streaming writer leaves when it cannot seek back: length unknown."""


def _wav_shortfall(raw: BinaryIO) -> tuple[int, int] | None:
    """``(declared, present)`` bytes of a RIFF WAVE ``data`` chunk that the file cuts short.

    Walked by hand because libsndfile only logs the mismatch and reads what is there.
    None when the file is complete, not RIFF WAVE, or its data length is unknown. ``raw``'s
    position is restored: libsndfile reads through the same handle and trusts its position.
    """
    saved = raw.tell()
    try:
        return _wav_shortfall_at(raw)
    finally:
        raw.seek(saved)


def _wav_shortfall_at(raw: BinaryIO) -> tuple[int, int] | None:
    size = raw.seek(0, 2)
    raw.seek(0)
    head = raw.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    position = 12
    while position + 8 <= size:
        raw.seek(position)
        chunk = raw.read(8)
        length = int.from_bytes(chunk[4:8], "little")
        if chunk[:4] == b"data":
            present = size - position - 8
            if length in _UNKNOWN_WAV_LENGTHS or present >= length:
                return None
            return length, present
        position += 8 + length + (length & 1)  # chunks are padded to an even size
    return None


def check_not_truncated(sound: sf.SoundFile, raw: BinaryIO, name: str) -> None:
    """Raise :class:`TruncatedAudioError` when an open WAV or FLAC ends before its header says.

    Cheap: a WAV's chunk headers are walked; a FLAC is asked for its last frame (libsndfile
    cannot seek past where a cut-short FLAC ends). Other formats are not checked: MP3 and OGG
    headers give only an estimate of their length.

    Args:
        sound: The file opened by soundfile (its position is restored to the start).
        raw: The same bytes as a seekable binary file (a path's handle or ``io.BytesIO``).
        name: What the message calls it (the path, or an upload's file name).
    """
    if sound.format == "WAV":
        shortfall = _wav_shortfall(raw)
        if shortfall is not None:
            declared, present = shortfall
            raise TruncatedAudioError(
                f"{name}: truncated: its audio data ends after {present} of the {declared} "
                "bytes its header declares (a cut-short copy? copy or download it again)")
    elif sound.format == "FLAC" and sound.frames > 0:
        try:
            sound.seek(sound.frames - 1)
            sound.read(1)
            sound.seek(0)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise TruncatedAudioError(
                f"{name}: truncated: it ends before the {sound.frames / sound.samplerate:.2f} s "
                "its header declares (a cut-short copy? copy or download it again)") from err


def read_sound(raw: BinaryIO, name: str) -> tuple[np.ndarray, int]:
    """Decode a whole audio file: ``(samples, channels)`` float32 and its sample rate.

    Args:
        raw: The file's bytes, seekable (an open file or ``io.BytesIO`` of an upload).
        name: What error messages call it.

    Raises:
        TruncatedAudioError: it ends before its header says.
        AudioError: not audio, no samples, or NaN / infinite samples (the message names it).
    """
    try:
        with sf.SoundFile(raw) as sound:
            check_not_truncated(sound, raw, name)
            rate = int(sound.samplerate)
            declared = sound.frames
            audio = sound.read(dtype="float32", always_2d=True)
            format_checked = sound.format in ("WAV", "FLAC")
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioError(f"{name}: not a readable audio file ({_reason(err)})") from err
    if format_checked and audio.shape[0] < declared:
        raise TruncatedAudioError(f"{name}: truncated: decoded {audio.shape[0]} of the "
                                  f"{declared} samples its header declares")
    if audio.shape[0] == 0:
        raise AudioError(f"{name}: contains no audio samples (zero length)")
    if not np.isfinite(audio).all():
        raise AudioError(f"{name}: contains NaN or infinite samples")
    return audio, rate


def _reason(err: Exception) -> str:
    # libsndfile's own words, without soundfile's prefix naming the handle rather than the file.
    return str(getattr(err, "error_string", "") or err)


def _checked_path(path: Path) -> Path:
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    return path


def load_audio(path: str | Path) -> np.ndarray:
    """Read an audio file as float32 mono at 16 kHz.

    Args:
        path: Any format libsndfile decodes (WAV, FLAC, OGG, MP3, ...), any rate and channels.

    Returns:
        The samples in [-1, 1].

    Raises:
        TruncatedAudioError: a WAV or FLAC ends before its header says (the message names it).
        AudioError: the file is missing, not audio, or holds no samples (the message names it).
    """
    path = _checked_path(Path(path))
    with path.open("rb") as raw:
        audio, rate = read_sound(raw, str(path))
    return resample(audio, rate)


def audio_duration(path: str | Path) -> float:
    """Length in seconds from the file's header, after checking it is not cut short.

    For listing a corpus without decoding it (``prepare``).

    Raises:
        TruncatedAudioError: a WAV or FLAC ends before its header says.
        AudioError: missing, empty, not audio, or no samples.
    """
    path = _checked_path(Path(path))
    try:
        with path.open("rb") as raw, sf.SoundFile(raw) as sound:
            check_not_truncated(sound, raw, str(path))
            frames, rate = sound.frames, sound.samplerate
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioError(f"{path}: not a readable audio file ({_reason(err)})") from err
    if frames <= 0 or rate <= 0:
        raise AudioError(f"{path}: contains no audio samples (zero length)")
    return float(frames) / rate


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


QUIET_FRAME = SAMPLE_RATE // 100
"""Frame of :func:`quiet_stretches` (10 ms): fine enough to time a 0.2 s pause."""
LOUD_PERCENTILE = 95
"""Frames of a recording this loud or louder are its loud speech (the reference level)."""


def quiet_stretches(audio: np.ndarray, below_loud_db: float,
                    min_seconds: float) -> list[tuple[float, float]]:
    """``(start, end)`` seconds of every stretch at least ``below_loud_db`` under loud speech.

    The level is relative to the recording's own loud speech (the 95th percentile of its 10 ms
    frames), so a noisy recording, whose noise floor sits within ``below_loud_db`` of its
    speech, gives no quiet stretches at all rather than false ones. Only stretches of at least
    ``min_seconds`` count: shorter dips are stop closures inside words.
    """
    if audio.size < QUIET_FRAME:
        return []
    # Frame by frame in pieces of ~10 min, so an hour of audio is never squared in one copy.
    piece = QUIET_FRAME * 60_000
    levels = np.concatenate([_frame_db(audio[i:i + piece], QUIET_FRAME)
                             for i in range(0, audio.size - QUIET_FRAME + 1, piece)])
    quiet = levels < np.percentile(levels, LOUD_PERCENTILE) - below_loud_db
    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
    seconds = QUIET_FRAME / SAMPLE_RATE
    return [(float(a * seconds), float(b * seconds)) for a, b in zip(edges[::2], edges[1::2],
                                                                     strict=True)
            if (b - a) * seconds >= min_seconds]


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
