"""The faster-whisper / CTranslate2 backend: conversion, checks and fast CPU transcription.

- :func:`convert_ct2` turns a transformers Whisper folder into a CTranslate2 folder with
  CTranslate2's own converter, plus the tokenizer and feature-extractor files faster-whisper
  reads (without them it cannot work offline).
- :func:`transcribe_ct2`: files to transcripts, Japanese forced, greedy by default, no
  timestamps, no conditioning on previous text (whisper-ja's batched path below, or stock
  faster-whisper with ``context="stock"``; ``whisper-ja transcribe --backend ct2`` runs
  faster-whisper's sequential long-form pipeline or whisper-ja's batched one,
  :mod:`whisper_ja.inference.faster_longform`).
- :func:`decode_features_ct2` runs CTranslate2 on given log-mel features, so an export can be
  compared like with like against transformers: faster-whisper itself pads *features* to 3000
  frames while transformers pads the *waveform* to 30 s, and on short clips the two inputs (and
  so the texts) differ slightly even with identical weights.
- :func:`transcribe_audio_ct2` is whisper-ja's own CTranslate2 path: clips in length-sorted
  batches, each batch's features only as long as the model's context policy says (the export's
  ``whisper_ja.json``; floor honoured), padded with Whisper's silence value, one
  ``Whisper.generate`` per batch; results are faster-whisper ``Segment`` objects. Stock
  faster-whisper decodes one clip at a time at 30 s: on short clips that is most of its time.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from whisper_ja.audio.constants import HOP_LENGTH, SAMPLE_RATE
from whisper_ja.audio.features import (
    ContextPolicy,
    batch_context_frames,
    log_mel,
    pad_features,
)
from whisper_ja.audio.io import is_silent, load_audio, split_long_audio
from whisper_ja.config import ConfigError, field
from whisper_ja.errors import Ct2Error
from whisper_ja.inference.decoding import is_looping
from whisper_ja.model.device import CT2_COMPUTE_TYPES, DEVICE_HELP, check_device, ct2_device

__all__ = [
    "CONTEXT_RECORD",
    "CT2_EXTRA_FILES",
    "Ct2Clip",
    "Ct2Error",
    "Ct2Options",
    "convert_ct2",
    "ct2_avg_logprob",
    "export_context",
    "resolve_context",
    "task_prompt",
    "transcribe_audio_ct2",
    "write_context_record",
    "decode_features_ct2",
    "export_feature_extractor",
    "generate_ct2",
    "load_faster_whisper",
    "transcribe_ct2",
    "verify_ct2",
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
    folder = _check_folder(model_dir)
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
                 beam_size: int, max_new_tokens: int, scores: bool = True) -> list[Any]:
    """CTranslate2's ``Whisper.generate`` as whisper-ja calls it, on every path.

    Args:
        whisper: A faster-whisper ``WhisperModel`` (its ``model`` is CTranslate2's).
        inputs: ``StorageView`` of ``(rows, n_mels, frames)`` features or of their encoding.
        prompt: The task prompt every row starts with (:func:`task_prompt`).
        rows: Batch size.
        beam_size: Beam width (1 = greedy).
        max_new_tokens: Most tokens generated after the prompt, as transformers counts them.
        scores: Also return each result's score and no-speech probability.
    """
    return list(whisper.model.generate(
        inputs, [list(prompt)] * rows, beam_size=beam_size,
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


def transcribe_ct2(paths: Sequence[Path], model_dir: str, *, beam_size: int = 1,
                   language: str = "ja", compute_type: str = "int8",
                   max_new_tokens: int | None = None, cpu_threads: int = 0,
                   progress: bool = True,
                   context: Literal["auto", "dynamic", "full", "stock"] = "auto",
                   device: str = "auto") -> list[str]:
    """Transcribe audio files with CTranslate2, one transcript per file.

    Decoding is deterministic (temperature 0, no fallback) and does not condition on previous
    text, like whisper-ja's own decoding. ``context`` ``auto``, ``dynamic`` or ``full`` run
    :func:`transcribe_audio_ct2` (batches of 8, the export's own context policy for ``auto``);
    ``stock`` runs faster-whisper's own ``transcribe`` one file at a time at 30 s, windowing
    long audio its way.

    Args:
        paths: Audio files (any format :func:`whisper_ja.audio.io.load_audio` reads).
        model_dir: CTranslate2 folder (``whisper-ja export --to ct2``).
        beam_size: Beam width (1 = greedy).
        language: Forced language code.
        compute_type: ``int8`` (fastest on CPU), ``float32``...
        max_new_tokens: Most tokens per 30 s window (None: 128, or faster-whisper's limit for
            ``stock``).
        cpu_threads: CTranslate2 threads (0 = its default).
        progress: Show a progress bar.
        context: See above.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.

    Returns:
        One transcript per path, in order (segments joined without spaces, as Japanese is
        written).

    Raises:
        Ct2Error: the model folder is incomplete.
        whisper_ja.audio.io.AudioError: a file cannot be decoded (the message names it).
    """
    if context != "stock":
        options = Ct2Options(context=context, beam_size=beam_size, language=language,
                             compute_type=compute_type, cpu_threads=cpu_threads,
                             device=device,
                             **({"max_new_tokens": max_new_tokens} if max_new_tokens else {}))
        audios = [load_audio(path) for path in paths]
        return [clip.text for clip in transcribe_audio_ct2(audios, model_dir, options,
                                                           progress=progress)]
    model = load_faster_whisper(str(model_dir), compute_type, cpu_threads, device)
    texts = []
    for path in tqdm(list(paths), desc="faster-whisper", unit="file", disable=not progress):
        segments, _ = model.transcribe(
            load_audio(path), language=language, task="transcribe", beam_size=beam_size,
            temperature=0.0, without_timestamps=True, condition_on_previous_text=False,
            vad_filter=False, max_new_tokens=max_new_tokens)
        texts.append("".join(segment.text for segment in segments).strip())
    return texts


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


@dataclasses.dataclass(frozen=True)
class Ct2Options:
    """How whisper-ja's own CTranslate2 path decodes (:func:`transcribe_audio_ct2`)."""

    context: Literal["auto", "dynamic", "full"] = field(
        "auto", help="encoder input: auto = the export's recorded policy (stock models: 30 s); "
        "dynamic = the batch's longest clip with the recorded (or default) floor; full = 30 s")
    batch_size: int = field(8, help="clips per CTranslate2 generate call")
    beam_size: int = field(1, help="beam width; 1 = greedy")
    max_new_tokens: int = field(128, help="most tokens per window after the prompt")
    compute_type: str = field("int8", help="CTranslate2 compute type (int8 is fastest on CPU; "
                              "int8_float16 on a GPU; auto = CTranslate2's fastest)")
    cpu_threads: int = field(0, help="CTranslate2 threads (0: its default)")
    device: str = field("auto", help=DEVICE_HELP)
    no_speech_threshold: float | None = field(
        0.6, help="no-speech probability above which an unconfident window is emptied")
    logprob_threshold: float = field(-1.0, help="average log-probability under which such a "
                                     "window counts as unconfident")
    language: str = field("ja", help="forced language code")

    def __post_init__(self) -> None:
        for name in ("batch_size", "beam_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if not 1 <= self.max_new_tokens <= 440:
            raise ConfigError(f"max_new_tokens: must be in 1..440, got {self.max_new_tokens}")
        check_device(self.device)
        if self.compute_type not in CT2_COMPUTE_TYPES:
            raise ConfigError(f"compute_type: must be one of {', '.join(CT2_COMPUTE_TYPES)}, "
                              f"got {self.compute_type!r}")


@dataclasses.dataclass(frozen=True)
class Ct2Clip:
    """One clip's result: faster-whisper segments (one per window) and the loop flag."""

    segments: tuple[Any, ...]
    looped: bool

    @property
    def text(self) -> str:
        """The segments' texts joined without spaces, as Japanese is written."""
        return "".join(segment.text for segment in self.segments).strip()


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


def _segments(model: Any, folder: str, chunks: list[tuple[int, float, np.ndarray]],
              frames: int, options: Ct2Options) -> list[tuple[Any, bool]]:
    """Decode one batch of (index, offset seconds, audio) chunks at ``frames`` mel frames."""
    # Imported here, not at the top: CTranslate2 and faster-whisper load only for this backend.
    import ctranslate2

    # Imported here, not at the top: faster-whisper loads only for the ct2 backend.
    from faster_whisper.transcribe import Segment, get_compression_ratio

    extractor = export_feature_extractor(folder)
    feats = pad_features([log_mel(audio, extractor) for _, _, audio in chunks], frames)
    tokenizer = model.hf_tokenizer
    eot = tokenizer.token_to_id("<|endoftext|>")
    results = generate_ct2(
        model, ctranslate2.StorageView.from_array(np.ascontiguousarray(feats.numpy())),
        task_prompt(tokenizer, options.language), len(chunks), beam_size=options.beam_size,
        max_new_tokens=options.max_new_tokens)
    out = []
    for (index, offset, audio), result in zip(chunks, results, strict=True):
        ids = [t for t in result.sequences_ids[0] if t < eot]
        avg_logprob = ct2_avg_logprob(result, len(ids))
        silent = (options.no_speech_threshold is not None
                  and result.no_speech_prob > options.no_speech_threshold
                  and avg_logprob < options.logprob_threshold)
        text = "" if silent else tokenizer.decode(ids).strip()
        segment = Segment(
            id=index, seek=round(offset * SAMPLE_RATE / HOP_LENGTH), start=offset,
            end=offset + audio.size / SAMPLE_RATE, text=text, tokens=[] if silent else ids,
            avg_logprob=avg_logprob, compression_ratio=get_compression_ratio(text) if text
            else 0.0, no_speech_prob=result.no_speech_prob, words=None, temperature=0.0)
        looped = not silent and (len(ids) >= options.max_new_tokens or is_looping(ids))
        out.append((segment, looped))
    return out


def transcribe_audio_ct2(audios: Sequence[np.ndarray], model_dir: str | Path,
                         options: Ct2Options = Ct2Options(), progress: bool = False,
                         ) -> list[Ct2Clip]:
    """Transcribe 16 kHz clips with CTranslate2 in batches, at the model's own context length.

    Clips longer than 30 s are cut at quiet moments (one segment per window); silent windows
    give no segment without running the model. Windows are sorted by length and decoded
    ``batch_size`` at a time, each batch's features cut to
    :func:`whisper_ja.audio.features.context_frames` of its longest window under the policy
    :func:`resolve_context` picks (30 s for a stock model unless ``context="dynamic"``).

    Args:
        audios: float32 mono clips at 16 kHz.
        model_dir: CTranslate2 folder (``whisper-ja export --to ct2``).
        options: Decoding settings.
        progress: Show a progress bar over windows.

    Returns:
        One :class:`Ct2Clip` per clip, in input order.

    Raises:
        Ct2Error: the folder is incomplete or its context record is unreadable.
    """
    policy = resolve_context(model_dir, options.context)
    folder = str(_check_folder(model_dir))
    model = load_faster_whisper(folder, options.compute_type, options.cpu_threads,
                                options.device)
    windows: list[tuple[int, float, np.ndarray]] = []
    for index, audio in enumerate(audios):
        offset = 0.0
        for chunk in split_long_audio(np.asarray(audio, dtype=np.float32)):
            if not is_silent(chunk):
                windows.append((index, offset, chunk))
            offset += chunk.size / SAMPLE_RATE
    windows.sort(key=lambda window: window[2].size)
    decoded: list[list[tuple[Any, bool]]] = [[] for _ in audios]
    with tqdm(total=len(windows), desc="ct2", unit="window", disable=not progress) as bar:
        for start in range(0, len(windows), options.batch_size):
            batch = windows[start:start + options.batch_size]
            frames = batch_context_frames([clip for _, _, clip in batch], policy)
            results = _segments(model, folder, batch, frames, options)
            for (index, _, _), result in zip(batch, results, strict=True):
                decoded[index].append(result)
            bar.update(len(batch))
    clips = []
    for parts in decoded:
        parts.sort(key=lambda part: part[0].start)
        kept = [segment for segment, _ in parts if segment.text]
        clips.append(Ct2Clip(segments=tuple(dataclasses.replace(segment, id=i)
                                            for i, segment in enumerate(kept, start=1)),
                             looped=any(looped for _, looped in parts)))
    return clips
