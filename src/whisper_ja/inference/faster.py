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
- :func:`export_context` / :func:`write_context_record` / :func:`resolve_context`: the context
  policy an export records and the one it is decoded with.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from whisper_ja.audio.features import (
    ContextPolicy,
)
from whisper_ja.errors import Ct2Error
from whisper_ja.model.device import ct2_device

__all__ = [
    "CONTEXT_RECORD",
    "CT2_EXTRA_FILES",
    "Ct2Error",
    "convert_ct2",
    "check_ct2_folder",
    "ct2_avg_logprob",
    "decode_features_ct2",
    "export_context",
    "export_feature_extractor",
    "generate_ct2",
    "load_faster_whisper",
    "resolve_context",
    "task_prompt",
    "verify_ct2",
    "write_context_record",
]

CT2_EXTRA_FILES = ("tokenizer.json", "preprocessor_config.json")
"""Copied next to ``model.bin``: faster-whisper's tokenizer and mel settings."""
_CT2_FILES = ("model.bin", "config.json", *CT2_EXTRA_FILES)
CONTEXT_RECORD = "whisper_ja.json"
"""Written into every export (and by ``train``): ``dynamic_context`` and the ``context`` policy."""


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
        Ct2Error: the folder is missing files faster-whisper needs.
    """
    # Imported here, not at the top: faster-whisper loads only for the ct2 backend.
    from faster_whisper import WhisperModel

    # faster-whisper logs every file at INFO, which tears whisper-ja's progress bar apart.
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    folder = check_ct2_folder(model_dir)
    index = int(device.partition(":")[2] or 0)
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
    return list(whisper.model.generate(
        inputs, [list(prompt)] * rows, beam_size=1 if temperature > 0 else beam_size,
        **sampling,
        # CTranslate2 4.x's Whisper generate stops after max_length / 2 new tokens (measured),
        # hence the doubling; transformers counts max_new_tokens after the prefix.
        max_length=2 * max_new_tokens, suppress_blank=True, return_scores=scores,
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


def export_context(folder: str | Path) -> ContextPolicy | None:
    """The context policy a model folder records in :data:`CONTEXT_RECORD`, or None.

    ``whisper-ja export`` and ``train`` write ``{"dynamic_context": ..., "context": {...}}``;
    a stock folder (e.g. a converted whisper-base) records nothing.

    Raises:
        Ct2Error: the record exists but is not valid JSON with a valid policy.
    """
    path = Path(folder).expanduser() / CONTEXT_RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        saved = record.get("context") or {}
        dynamic = bool(record.get("dynamic_context", saved.get("dynamic", False)))
        known = {f.name for f in dataclasses.fields(ContextPolicy)}
        return ContextPolicy(**{**{k: v for k, v in saved.items() if k in known},
                                "dynamic": dynamic})
    except (ValueError, TypeError, AttributeError) as err:  # ConfigError is a ValueError
        raise Ct2Error(f"{path}: not a whisper-ja context record ({err})") from err


def write_context_record(folder: Path, policy: ContextPolicy) -> Path:
    """Write :data:`CONTEXT_RECORD` into ``folder``: the flag and the policy to decode with."""
    record = {"dynamic_context": policy.dynamic, "context": dataclasses.asdict(policy)}
    path = folder / CONTEXT_RECORD
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def resolve_context(model_dir: str | Path, context: str) -> ContextPolicy:
    """The policy to decode with: ``auto`` follows the export's record (stock: 30 s).

    ``dynamic`` uses the recorded bucket and floor when there are any, else the defaults;
    ``full`` is always 30 s. The same rule as ``whisper-ja evaluate --context``.
    """
    saved = export_context(model_dir)
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
