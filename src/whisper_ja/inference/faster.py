"""The faster-whisper / CTranslate2 backend: conversion, checks and fast CPU transcription.

- :func:`convert_ct2` turns a transformers Whisper folder into a CTranslate2 folder with
  CTranslate2's own converter, plus the tokenizer and feature-extractor files faster-whisper
  reads (without them it cannot work offline).
- :func:`transcribe_ct2` is ``whisper-ja transcribe --backend ct2``: faster-whisper with
  Japanese forced, greedy by default, no timestamps, no conditioning on previous text.
- :func:`decode_features_ct2` runs CTranslate2 on given log-mel features, so an export can be
  compared like with like against transformers: faster-whisper itself pads *features* to 3000
  frames while transformers pads the *waveform* to 30 s, and on short clips the two inputs (and
  so the texts) differ slightly even with identical weights.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from whisper_ja.audio.io import load_audio
from whisper_ja.errors import Ct2Error
from whisper_ja.model.tokens import JA_ID, JA_PREFIX_IDS

__all__ = [
    "CT2_EXTRA_FILES",
    "Ct2Error",
    "convert_ct2",
    "decode_features_ct2",
    "load_faster_whisper",
    "transcribe_ct2",
    "verify_ct2",
]

CT2_EXTRA_FILES = ("tokenizer.json", "preprocessor_config.json")
"""Copied next to ``model.bin``: faster-whisper's tokenizer and mel settings."""
_CT2_FILES = ("model.bin", "config.json", *CT2_EXTRA_FILES)


def convert_ct2(hf_folder: Path, out: Path, quantization: str | None = None) -> None:
    """Convert a transformers Whisper folder with ``ctranslate2.converters.TransformersConverter``.

    Args:
        hf_folder: Folder written by ``save_pretrained`` (model, tokenizer.json,
            preprocessor_config.json).
        out: Output folder (created; may exist empty).
        quantization: CTranslate2 weight type (``int8``, ``float16``...); None keeps float32.
    """
    # Imported here, not at the top: CTranslate2 loads only for the ct2 backend and ct2 export.
    import ctranslate2

    missing = [n for n in CT2_EXTRA_FILES if not (hf_folder / n).is_file()]
    if missing:
        raise Ct2Error(f"{hf_folder}: lacks {', '.join(missing)}, which faster-whisper needs")
    converter = ctranslate2.converters.TransformersConverter(
        str(hf_folder), copy_files=list(CT2_EXTRA_FILES))
    converter.convert(str(out), quantization=quantization, force=True)


def _check_folder(model_dir: str | Path) -> Path:
    folder = Path(model_dir).expanduser()
    if not folder.is_dir():
        raise Ct2Error(f"{folder}: no such CTranslate2 model folder")
    missing = [n for n in _CT2_FILES if not (folder / n).is_file()]
    if missing:
        raise Ct2Error(f"{folder}: not a complete faster-whisper folder, missing "
                       f"{', '.join(missing)} (export it with `whisper-ja export --to ct2`)")
    return folder


@functools.lru_cache(maxsize=2)
def load_faster_whisper(model_dir: str, compute_type: str = "int8", cpu_threads: int = 0) -> Any:
    """A ``faster_whisper.WhisperModel`` on CPU, cached (loading costs about a second).

    Args:
        model_dir: CTranslate2 folder (``whisper-ja export --to ct2``).
        compute_type: ``int8``, ``float32``, ``default`` (as stored)...
        cpu_threads: Threads; 0 = CTranslate2's default.

    Raises:
        Ct2Error: the folder is missing files faster-whisper needs.
    """
    # Imported here, not at the top: faster-whisper loads only for the ct2 backend.
    from faster_whisper import WhisperModel

    # faster-whisper logs every file at INFO, which tears whisper-ja's progress bar apart.
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    folder = _check_folder(model_dir)
    return WhisperModel(str(folder), device="cpu", compute_type=compute_type,
                        cpu_threads=cpu_threads)


def verify_ct2(folder: Path) -> None:
    """Check that faster-whisper loads a CTranslate2 export and can force Japanese.

    Raises:
        Ct2Error: missing files, a tokenizer without ``<|ja|>`` at id 50266, or mel settings
            that differ between model and feature extractor.
    """
    model = load_faster_whisper.__wrapped__(str(folder), "default")
    if not model.model.is_multilingual:
        raise Ct2Error(f"{folder}: faster-whisper sees an English-only model")
    if model.hf_tokenizer.token_to_id("<|ja|>") != JA_ID:
        raise Ct2Error(f"{folder}: tokenizer.json does not map <|ja|> to {JA_ID}")
    n_mels = json.loads((folder / "preprocessor_config.json").read_text("utf-8"))["feature_size"]
    if model.model.n_mels != n_mels:
        raise Ct2Error(f"{folder}: model expects {model.model.n_mels} mel bands, "
                       f"preprocessor_config.json gives {n_mels}")


def decode_features_ct2(model_dir: str | Path, features: np.ndarray, *, beam_size: int = 1,
                        max_new_tokens: int = 128, compute_type: str = "default",
                        ) -> list[tuple[int, ...]]:
    """Greedy (or beam) decoding of given log-mel features with CTranslate2, Japanese forced.

    For like-with-like comparisons: feed the very features transformers decodes.

    Args:
        model_dir: CTranslate2 folder.
        features: ``(batch, n_mels, 3000)`` float32 log-mel features.
        beam_size: Beam width (1 = greedy).
        max_new_tokens: Most tokens generated after the four prefix tokens.
        compute_type: CTranslate2 compute type.

    Returns:
        The generated token ids of each item, without the prefix and end token.
    """
    # Imported here, not at the top: CTranslate2 loads only for the ct2 backend and ct2 export.
    import ctranslate2

    model = load_faster_whisper(str(model_dir), compute_type).model
    batch = np.ascontiguousarray(features, dtype=np.float32)
    if batch.ndim != 3:
        raise ValueError(f"features must be (batch, n_mels, frames), got shape {batch.shape}")
    results = model.generate(
        ctranslate2.StorageView.from_array(batch), [list(JA_PREFIX_IDS)] * len(batch),
        # CTranslate2 4.x's Whisper generate stops after max_length / 2 new tokens (measured),
        # hence the doubling; transformers counts max_new_tokens after the prefix.
        beam_size=beam_size, max_length=2 * max_new_tokens,
        suppress_blank=True, return_scores=False)
    return [tuple(result.sequences_ids[0]) for result in results]


def transcribe_ct2(paths: Sequence[Path], model_dir: str, *, beam_size: int = 1,
                   language: str = "ja", compute_type: str = "int8",
                   max_new_tokens: int | None = None, cpu_threads: int = 0,
                   progress: bool = True) -> list[str]:
    """Transcribe audio files with faster-whisper (``whisper-ja transcribe --backend ct2``).

    Decoding is deterministic (temperature 0, no fallback) and does not condition on previous
    text, like whisper-ja's own decoding; audio longer than 30 s is windowed by faster-whisper.

    Args:
        paths: Audio files (any format :func:`whisper_ja.audio.io.load_audio` reads).
        model_dir: CTranslate2 folder (``whisper-ja export --to ct2``).
        beam_size: Beam width (1 = greedy).
        language: Forced language code.
        compute_type: ``int8`` (fastest on CPU), ``float32``...
        max_new_tokens: Most tokens per 30 s window (None: faster-whisper's limit).
        cpu_threads: CTranslate2 threads (0 = its default).
        progress: Show a progress bar.

    Returns:
        One transcript per path, in order (segments joined without spaces, as Japanese is
        written).

    Raises:
        Ct2Error: the model folder is incomplete.
        whisper_ja.audio.io.AudioError: a file cannot be decoded (the message names it).
    """
    model = load_faster_whisper(str(model_dir), compute_type, cpu_threads)
    texts = []
    for path in tqdm(list(paths), desc="faster-whisper", unit="file", disable=not progress):
        segments, _ = model.transcribe(
            load_audio(path), language=language, task="transcribe", beam_size=beam_size,
            temperature=0.0, without_timestamps=True, condition_on_previous_text=False,
            vad_filter=False, max_new_tokens=max_new_tokens)
        texts.append("".join(segment.text for segment in segments).strip())
    return texts
