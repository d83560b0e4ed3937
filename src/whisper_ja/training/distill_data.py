"""The data of ``whisper-ja distill``: encoder outputs and pseudo-labels, computed once.

The encoder is frozen and identical in teacher and student, so each fixed length-sorted batch
is encoded once; its output is shared by pseudo-labelling, the teacher's soft targets and every
step of student training. Both are cached (``OUT/cache``, or ``--cache``) as they are made
(one file per batch, written atomically), so an interrupted run resumes without encoding or
labelling again.
Each file remembers the settings it was made with and is rebuilt when they differ.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers.modeling_outputs import BaseModelOutput

from whisper_ja.audio.features import (
    ContextPolicy,
    batch_context_frames,
    log_mel,
    pad_features,
)
from whisper_ja.inference.engine import load_engine
from whisper_ja.inference.guards import is_looping
from whisper_ja.inference.options import DecodingOptions, RuntimeSettings
from whisper_ja.model.tokens import special_tokens
from whisper_ja.training.distill_settings import DistillConfig

__all__ = ["Batch", "LabelledData", "encode_and_label", "looped_label", "save_atomic"]

CACHE_VERSION = 1
"""Bumped when the cache's layout changes (an older cache is then rebuilt)."""


@dataclass
class Batch:
    """One fixed length-sorted batch.

    Attributes:
        rows: Utterance indices.
        hidden: The frozen encoder's output ``(B, T, d)``, in the training dtype.
        labels: The teacher's pseudo-label token ids per row (text only, no specials).
    """

    rows: list[int]
    hidden: torch.Tensor
    labels: list[tuple[int, ...]] = dataclasses.field(default_factory=list)


@dataclass
class LabelledData:
    """Every batch, with each utterance's pseudo-label text and loop flag (input order)."""

    batches: list[Batch]
    hyps: list[str]
    looped: list[bool]


def looped_label(ids: tuple[int, ...], max_new_tokens: int) -> bool:
    """A pseudo-label that repeats itself or ran into the token limit (a hallucination)."""
    return len(ids) >= max_new_tokens or is_looping(ids)


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save under a temporary name, then rename: a killed run never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _cache_key(config: DistillConfig, policy: ContextPolicy, audios: list[np.ndarray],
               dtype: torch.dtype) -> dict[str, Any]:
    """What decides the cached batches; a cache made with another key is rebuilt."""
    return {"version": CACHE_VERSION, "teacher": config.teacher,
            "adapter": str(config.adapter) if config.adapter else None,
            "train": str(config.train), "clips": len(audios),
            "samples": int(sum(a.size for a in audios)), "batch_size": config.batch_size,
            "max_new_tokens": config.max_new_tokens,
            "label_ct2": str(config.label_ct2) if config.label_ct2 else None,
            "labels": config.labels,
            "context": dataclasses.asdict(policy), "dtype": str(dtype)}


def _cached_batch(path: Path, key: dict[str, Any], rows: list[int]) -> dict[str, Any] | None:
    """A batch file made with ``key`` for ``rows``, else None (missing, older or other)."""
    if not path.is_file():
        return None
    stored: dict[str, Any] = torch.load(path)
    return stored if stored.get("key") == key and stored.get("rows") == rows else None


@torch.no_grad()
def encode_and_label(teacher: Any, processor: Any, audios: list[np.ndarray],
                     policy: ContextPolicy, config: DistillConfig, dtype: torch.dtype,
                     cache: Path, given: list[str] | None = None) -> LabelledData:
    """Encode fixed length-sorted batches once and pseudo-label them with the teacher.

    Batches already in ``cache`` (made with the same settings) are read back, not recomputed;
    the CTranslate2 labeller runs only on the clips of batches that are missing.

    Args:
        teacher: The teacher (adapter merged, dynamic context enabled when ``policy`` is).
        processor: Its processor.
        audios: 16 kHz clips, in manifest order.
        policy: The context policy (encoder input length per batch).
        config: The :class:`whisper_ja.training.distill_settings.DistillConfig`.
        dtype: The dtype the encoder outputs are kept in (the training precision's).
        cache: Folder of the cache (made if missing).
        given: Each clip's pseudo-label text, already made (``whisper-ja pseudo-label``);
            None: the teacher decodes them here.

    Returns:
        The batches with their labels, and each utterance's label text and loop flag.
    """
    cache.mkdir(parents=True, exist_ok=True)
    key = _cache_key(config, policy, audios, dtype)
    order = sorted(range(len(audios)), key=lambda i: audios[i].size)
    plan = [order[s:s + config.batch_size] for s in range(0, len(order), config.batch_size)]
    paths = [cache / f"batch-{k:05d}.pt" for k in range(len(plan))]
    stored = [_cached_batch(path, key, rows) for path, rows in zip(paths, plan, strict=True)]
    missing = [i for rows, got in zip(plan, stored, strict=True) if got is None for i in rows]
    ct2_labels: dict[int, tuple[tuple[int, ...], bool]] | None = None
    if missing and given is not None:  # labelled before: tokenized, nothing decoded
        ct2_labels = {i: _given_label(given[i], processor.tokenizer, config.max_new_tokens)
                      for i in missing}
    elif missing and config.label_ct2 is not None:
        ct2_labels = dict(zip(missing, _ct2_labels([audios[i] for i in missing], policy,
                                                   config), strict=True))
    batches: list[Batch] = []
    hyps, looped = [""] * len(audios), [False] * len(audios)
    tokenizer = processor.tokenizer
    for rows, path, got in tqdm(list(zip(plan, paths, stored, strict=True)),
                                desc="encode + pseudo-label", disable=not config.progress):
        if got is None:
            # bf16 runs encode (and label) under bf16 autocast too: ~3x faster on AVX512-bf16
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                got = _label_batch(teacher, processor, audios, rows, policy, config,
                                   ct2_labels)
            got.update(key=key, hidden=got["hidden"].to(dtype))
            save_atomic(got, path)
        batch = Batch(rows=rows, hidden=got["hidden"],
                      labels=[tuple(ids) for ids in got["labels"]])
        for i, ids, loop in zip(rows, batch.labels, got["looped"], strict=True):
            hyps[i] = tokenizer.decode(list(ids), skip_special_tokens=True).strip()
            looped[i] = bool(loop)
        batches.append(batch)
    return LabelledData(batches=batches, hyps=hyps, looped=looped)


def _given_label(text: str, tokenizer: Any, max_new_tokens: int
                 ) -> tuple[tuple[int, ...], bool]:
    """A ready pseudo-label's ids, and whether it is too long to have ended (as looped)."""
    ids = tuple(int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"])
    return ids[:max_new_tokens], looped_label(ids, max_new_tokens) or len(ids) > max_new_tokens


def _label_batch(teacher: Any, processor: Any, audios: list[np.ndarray], rows: list[int],
                 policy: ContextPolicy, config: DistillConfig,
                 ct2_labels: dict[int, tuple[tuple[int, ...], bool]] | None) -> dict[str, Any]:
    """One batch's encoder output, pseudo-labels and loop flags (as cached)."""
    extractor = processor.feature_extractor
    eot = special_tokens(processor.tokenizer).eot
    frames = batch_context_frames([audios[i] for i in rows], policy)
    feats = pad_features([log_mel(audios[i], extractor) for i in rows], frames)
    hidden = teacher.get_encoder()(feats).last_hidden_state
    if ct2_labels is not None:
        labels = [ct2_labels[i][0] for i in rows]
        flags = [ct2_labels[i][1] or looped_label(ct2_labels[i][0], config.max_new_tokens)
                 for i in rows]
    else:
        out = teacher.generate(
            encoder_outputs=BaseModelOutput(last_hidden_state=hidden), language="ja",
            task="transcribe", return_timestamps=False, num_beams=1, do_sample=False,
            max_new_tokens=config.max_new_tokens)
        sequences = out.sequences if hasattr(out, "sequences") else out
        labels = [tuple(t for t in row if t < eot) for row in sequences.tolist()]
        flags = [looped_label(ids, config.max_new_tokens) for ids in labels]
    return {"rows": rows, "hidden": hidden, "labels": [list(ids) for ids in labels],
            "looped": flags}


def _ct2_labels(audios: list[np.ndarray], policy: ContextPolicy,
                config: DistillConfig) -> list[tuple[tuple[int, ...], bool]]:
    """Pseudo-label ids and loop flags from the teacher's CTranslate2 export, same context.

    A clip counts as looped when the guards could not end its loop (``ClipResult.looped``); a
    first attempt that looped and was replaced by the fallback is kept, as on transformers.
    Decoded by the engine every command uses, on the export in int8.
    """
    runtime = RuntimeSettings(backend="ct2", compute_type="int8",
                              context="dynamic" if policy.dynamic else "full")
    options = DecodingOptions(batch_size=config.batch_size,
                              max_new_tokens=config.max_new_tokens, no_speech_threshold=None)
    engine = load_engine(str(config.label_ct2), None, runtime, options)
    clips = engine.decode_clips(audios, progress=config.progress)
    return [(clip.token_ids, clip.looped) for clip in clips]
