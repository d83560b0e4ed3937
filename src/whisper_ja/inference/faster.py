"""The faster-whisper / CTranslate2 backend: conversion, loading, checks and one generate call.

- :func:`convert_ct2` turns a transformers Whisper folder into a CTranslate2 folder with
  CTranslate2's own converter, plus the tokenizer and feature-extractor files faster-whisper
  reads (without them it cannot work offline); :func:`verify_ct2` checks the result.
- :func:`generate_ct2` is CTranslate2's ``Whisper.generate`` as every whisper-ja path calls it
  (clips: :mod:`whisper_ja.inference.ct2_clips`; long audio:
  :mod:`whisper_ja.inference.ct2_longform`).
- :func:`decode_features_ct2` runs CTranslate2 on given log-mel features, so an export can be
  compared like with like against transformers: faster-whisper itself pads *features* to 3000
  frames while transformers pads the *waveform* to 30 s, and on short clips the two inputs (and
  so the texts) differ slightly even with identical weights.
- :func:`resolve_context`: the context policy an export is decoded with (what it records in
  ``whisper_ja.json`` is read by :mod:`whisper_ja.model.record`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from whisper_ja.audio.features import (
    ContextPolicy,
)
from whisper_ja.errors import ConfigError, Ct2Error
from whisper_ja.model.device import CT2_COMPUTE_TYPES, ct2_device
from whisper_ja.model.record import recorded_policy

__all__ = [
    "CT2_EXTRA_FILES",
    "Ct2Error",
    "check_compute_type",
    "check_ct2_folder",
    "convert_ct2",
    "ct2_avg_logprob",
    "decode_features_ct2",
    "export_feature_extractor",
    "generate_ct2",
    "load_ct2_whisper",
    "load_faster_whisper",
    "read_ct2_vocabulary",
    "resolve_context",
    "task_prompt",
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


def check_ct2_folder(model_dir: str | Path) -> Path:
    """The folder, checked to hold every file faster-whisper needs (else :class:`Ct2Error`)."""
    folder = Path(model_dir).expanduser()
    if not folder.is_dir():
        raise Ct2Error(f"{folder}: no such CTranslate2 model folder")
    missing = [n for n in _CT2_FILES if not (folder / n).is_file()]
    if missing:
        raise Ct2Error(f"{folder}: not a complete faster-whisper folder, missing "
                       f"{', '.join(missing)} (export it with `whisper-ja export --to ct2`)")
    return folder


def check_compute_type(compute_type: str, device: str = "auto",
                       setting: str = "compute_type") -> None:
    """Refuse a CTranslate2 compute type the device cannot run, by name, before loading.

    Raises:
        ConfigError: an unknown compute type, or one the device lacks (e.g. float16 or
            int8_float16 on a CPU: the message lists the types that work there).
    """
    # Imported here, not at the top: CTranslate2 loads only for the ct2 backend and ct2 export.
    import ctranslate2

    if compute_type not in CT2_COMPUTE_TYPES:
        raise ConfigError(f"{setting}: must be one of {', '.join(CT2_COMPUTE_TYPES)}, "
                          f"got {compute_type!r}")
    if compute_type in ("auto", "default"):  # CTranslate2 picks one the device runs
        return
    where = ct2_device(device)
    supported = sorted(ctranslate2.get_supported_compute_types(where))
    if compute_type not in supported:
        machine = "a CPU" if where == "cpu" else "this GPU"
        raise ConfigError(f"{setting}: {compute_type} does not run on {machine} here; "
                          f"use auto or one of {', '.join(supported)}")


@contextlib.contextmanager
def _ct2_load_errors(folder: Path, device: str) -> Iterator[None]:
    """CTranslate2's loading errors as one :class:`Ct2Error` naming the file and the fix.

    CTranslate2 reports a cut-short or corrupt ``model.bin`` as a bare ``RuntimeError``
    ("File model.bin is incomplete", "invalid payload size", "binary version") that names
    neither the folder nor what to do.
    """
    try:
        yield
    except RuntimeError as err:
        text = str(err)
        if any(sign in text for sign in ("model.bin", "payload", "binary version",
                                          "incomplete")):
            raise Ct2Error(f"{folder / 'model.bin'}: truncated or corrupt, CTranslate2 cannot "
                           f"read it ({text}); copy the folder again or re-export it with "
                           "`whisper-ja export --to ct2`") from err
        raise Ct2Error(f"{folder}: CTranslate2 cannot load the model on {device} ({text})"
                       ) from err


def load_ct2_whisper(model_dir: str | Path, compute_type: str = "int8", cpu_threads: int = 0,
                     device: str = "cpu") -> Any:
    """A fresh ``ctranslate2.models.Whisper`` (not cached), loaded as faster-whisper loads it.

    For a copy whose sampling is seeded (:func:`ctranslate2.set_random_seed` takes effect on
    a model's worker threads only before they first sample).

    Raises:
        ConfigError: a compute type the device cannot run.
        Ct2Error: the folder is incomplete, or its ``model.bin`` truncated or corrupt.
    """
    # Imported here, not at the top: CTranslate2 loads only for the ct2 backend and ct2 export.
    import ctranslate2

    folder = check_ct2_folder(model_dir)
    check_compute_type(compute_type, device)
    with _ct2_load_errors(folder, device):
        return ctranslate2.models.Whisper(
            str(folder), device=ct2_device(device),
            device_index=int(device.partition(":")[2] or 0), compute_type=compute_type,
            intra_threads=cpu_threads)


@functools.lru_cache(maxsize=2)
def load_faster_whisper(model_dir: str, compute_type: str = "int8", cpu_threads: int = 0,
                        device: str = "cpu") -> Any:
    """A ``faster_whisper.WhisperModel``, cached (loading costs about a second).

    Args:
        model_dir: CTranslate2 folder (``whisper-ja export --to ct2``).
        compute_type: ``int8``, ``int8_float16`` (GPU), ``float32``, ``default`` (as stored),
            ``auto`` (CTranslate2's fastest for the device)...
        cpu_threads: Threads; 0 = CTranslate2's default.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        ConfigError: a compute type the device cannot run (float16 on a CPU...).
        Ct2Error: the folder is missing files faster-whisper needs, or its ``model.bin`` is
            truncated or corrupt.
    """
    # Imported here, not at the top: faster-whisper loads only for the ct2 backend.
    from faster_whisper import WhisperModel

    # faster-whisper logs every file at INFO, which tears whisper-ja's progress bar apart.
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    folder = check_ct2_folder(model_dir)
    check_compute_type(compute_type, device)
    index = int(device.partition(":")[2] or 0)
    with _ct2_load_errors(folder, device):
        return WhisperModel(str(folder), device=ct2_device(device), device_index=index,
                            compute_type=compute_type, cpu_threads=cpu_threads)


def verify_ct2(folder: Path, device: str = "cpu") -> None:
    """Check that faster-whisper loads a CTranslate2 export and can force Japanese.

    Args:
        folder: The CTranslate2 folder.
        device: Where to load it (``auto``: the GPU when present, where it will run).

    Raises:
        Ct2Error: missing files, a tokenizer without the Japanese transcription prompt, or mel
            settings that differ between model and feature extractor.
    """
    model = load_faster_whisper.__wrapped__(str(folder), "default", 0, device)
    if not model.model.is_multilingual:
        raise Ct2Error(f"{folder}: faster-whisper sees an English-only model")
    task_prompt(model.hf_tokenizer, "ja")  # raises when a prompt token is missing
    n_mels = json.loads((folder / "preprocessor_config.json").read_text("utf-8"))["feature_size"]
    if model.model.n_mels != n_mels:
        raise Ct2Error(f"{folder}: model expects {model.model.n_mels} mel bands, "
                       f"preprocessor_config.json gives {n_mels}")


def generate_ct2(whisper: Any, inputs: Any, prompt: Sequence[int], rows: int, *,
                 beam_size: int, max_new_tokens: int, scores: bool = True,
                 temperature: float = 0.0) -> list[Any]:
    """CTranslate2's ``Whisper.generate`` as whisper-ja calls it, on every path.

    Args:
        whisper: A faster-whisper ``WhisperModel`` (its ``model`` is CTranslate2's).
        inputs: ``StorageView`` of ``(rows, n_mels, frames)`` features or of their encoding.
        prompt: The task prompt every row starts with (:func:`task_prompt`).
        rows: Batch size.
        beam_size: Beam width (1 = greedy).
        max_new_tokens: Most tokens generated after the prompt, as transformers counts them.
        scores: Also return each result's score and no-speech probability.
        temperature: 0 = greedy or beam search; above 0 = sampling from the whole
            distribution at that temperature (one hypothesis; the temperature fallback).
    """
    # sampling_topk=0 samples from every token, as faster-whisper's fallback does.
    sampling = ({"sampling_topk": 0, "sampling_temperature": temperature}
                if temperature > 0 else {})
    # CTranslate2 4.x's Whisper generate stops after min(max_length // 2,
    # max_length - len(prompt) + 1) new tokens (measured on 4.8, greedy, beam and sampling,
    # prompts of 3..405 tokens), hence this max_length for exactly max_new_tokens: transformers
    # counts max_new_tokens after the prompt.
    max_length = max(2 * max_new_tokens, max_new_tokens + len(prompt) - 1)
    return list(whisper.model.generate(
        inputs, [list(prompt)] * rows, beam_size=1 if temperature > 0 else beam_size,
        **sampling, max_length=max_length, suppress_blank=True, return_scores=scores,
        return_no_speech_prob=scores))


def ct2_avg_logprob(result: Any, length: int) -> float:
    """faster-whisper's average log-probability of a result of ``length`` generated tokens.

    CTranslate2's score is length-normalized; faster-whisper counts the end token too.
    """
    return float(result.scores[0]) * length / (length + 1)


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

    whisper = load_faster_whisper(str(model_dir), compute_type)
    batch = np.ascontiguousarray(features, dtype=np.float32)
    if batch.ndim != 3:
        raise ValueError(f"features must be (batch, n_mels, frames), got shape {batch.shape}")
    results = generate_ct2(whisper, ctranslate2.StorageView.from_array(batch),
                           task_prompt(whisper.hf_tokenizer, "ja"), len(batch),
                           beam_size=beam_size, max_new_tokens=max_new_tokens, scores=False)
    return [tuple(result.sequences_ids[0]) for result in results]


def read_ct2_vocabulary(folder: Path) -> list[str]:
    """The model's tokens by id, from the vocabulary file CTranslate2's converter writes.

    Empty when the folder has none. Stock faster-whisper exports ship a ``tokenizer.json``
    without timestamp tokens; this file has every token the model generates.

    Raises:
        Ct2Error: the file is unreadable.
    """
    try:
        if (folder / "vocabulary.json").is_file():
            tokens = json.loads((folder / "vocabulary.json").read_text(encoding="utf-8"))
            if not isinstance(tokens, list):
                raise ValueError("not a list of tokens")
            return [str(token) for token in tokens]
        if (folder / "vocabulary.txt").is_file():
            # One token a line, as CTranslate2 reads it (not splitlines: no other breaks).
            lines = (folder / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
            return lines[:-1] if lines and not lines[-1] else lines
    except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError included
        raise Ct2Error(f"{folder}: the model's vocabulary file is unreadable ({err})") from err
    return []


def resolve_context(model_dir: str | Path, context: str) -> ContextPolicy:
    """The policy to decode with: ``auto`` follows the export's record (stock: 30 s).

    ``dynamic`` uses the recorded bucket and floor when there are any, else the defaults;
    ``full`` is always 30 s. The same rule as ``whisper-ja evaluate --context``.
    """
    saved = recorded_policy(model_dir)
    if context == "full":
        return ContextPolicy(dynamic=False)
    if context == "dynamic":
        return ContextPolicy(bucket_frames=saved.bucket_frames, min_frames=saved.min_frames) \
            if saved is not None else ContextPolicy()
    return saved if saved is not None else ContextPolicy(dynamic=False)


@functools.lru_cache(maxsize=2)
def export_feature_extractor(model_dir: str) -> Any:
    """The log-mel extractor of a CTranslate2 export (cached: one per folder in use)."""
    # transformers' extractor, so features equal whisper-ja's transformers path exactly;
    # imported here, not at the top: this module otherwise loads without transformers.
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor.from_pretrained(model_dir)


def task_prompt(tokenizer: Any, language: str, timestamps: bool = False) -> list[int]:
    """``<|startoftranscript|><|lang|><|transcribe|>`` (+ ``<|notimestamps|>``), ids looked up.

    Args:
        tokenizer: faster-whisper's ``hf_tokenizer`` (a ``tokenizers.Tokenizer``).
        language: Forced language code.
        timestamps: Leave ``<|notimestamps|>`` out: CTranslate2 then applies Whisper's
            timestamp rules and the model writes timestamps.

    Raises:
        Ct2Error: a prompt token is missing (not a multilingual Whisper tokenizer).
    """
    names = ("<|startoftranscript|>", f"<|{language}|>", "<|transcribe|>",
             *(() if timestamps else ("<|notimestamps|>",)))
    ids = [tokenizer.token_to_id(name) for name in names]
    if None in ids:
        raise Ct2Error(f"tokenizer.json lacks one of {', '.join(names)}: not a multilingual "
                       "Whisper tokenizer")
    return ids
