"""The training and validation datasets of a run, built from its settings."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from accelerate.utils import broadcast_object_list
from tqdm.auto import tqdm

from whisper_ja.audio.features import context_frames, log_mel
from whisper_ja.audio.io import AudioError, load_audio
from whisper_ja.config import ConfigError
from whisper_ja.data.collate import (
    Example,
    SpeechDataset,
    build_labels,
    collate,
    frames_of,
    prompt_length,
    select_trainable,
)
from whisper_ja.data.feature_cache import FeatureCache
from whisper_ja.data.manifest import Utterance, read_manifest
from whisper_ja.data.skips import NAMED_KEPT
from whisper_ja.data.stream_sources import estimated_clips, plan_sources
from whisper_ja.data.timestamps import LabelMix
from whisper_ja.text.labels import LabelSettings, count_label_changes
from whisper_ja.training.memory_steps import MemorySteps
from whisper_ja.training.run_checks import is_streamed
from whisper_ja.training.settings import TrainConfig, parse_mixing
from whisper_ja.training.stream import Featurizer, Labeler, ReaderPlan
from whisper_ja.training.stream_steps import StreamSteps

LOGGER = logging.getLogger(__name__)

__all__ = ["Datasets", "StepSource", "build_datasets", "feature_source", "fold_labels"]

CHUNK_BYTES = 4 << 20
"""Streamed JSONL manifests are read in byte ranges of about this size (~20,000 rows)."""


class StepSource(Protocol):
    """Where a run's training batches come from: clips in memory, or streamed."""

    steps_per_epoch: int

    def steps(self, start_step: int, total_steps: int
              ) -> Iterator[list[dict[str, torch.Tensor]]]:
        """Each remaining optimizer step's batches for this process."""

    def epoch(self, step: int) -> float:
        """The epoch a step is in (logs)."""

    def gather_position(self) -> None:
        """Before a checkpoint (every process): collect the data position."""

    def state_dict(self) -> dict[str, Any]:
        """The data position for a checkpoint."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the data position."""

    def summary(self) -> dict[str, Any]:
        """The training data's part of the run summary (every process calls it)."""


@dataclass
class Datasets:
    """Training and validation data of a run.

    Attributes:
        train: The training batches (:class:`MemorySteps` or :class:`StreamSteps`).
        validation: Validation examples with features in memory, shortest first (main
            process only; empty elsewhere).
        validation_utterances: The validation utterances (every process).
        validation_skipped: Validation clips skipped, by reason.
        validation_named: The first unreadable validation clips, named.
    """

    train: StepSource
    validation: list[Example]
    validation_utterances: list[Utterance]
    validation_skipped: dict[str, int] = dataclasses.field(default_factory=dict)
    validation_named: list[str] = dataclasses.field(default_factory=list)


def feature_source(config: TrainConfig, feature_extractor: Any
                   ) -> Callable[[Utterance], np.ndarray]:
    """How a run gets log-mel features: through the on-disk cache, or computed every time."""
    if config.efficiency.feature_cache:
        cache = FeatureCache(config.efficiency.cache_dir or config.out / "feature_cache")
        return lambda utt: cache.get(utt, feature_extractor)
    return lambda utt: log_mel(load_audio(utt.audio), feature_extractor)


def _readable(utterances: Sequence[Utterance], features: Callable[[Utterance], np.ndarray],
              show: bool) -> tuple[dict[str, str], list[np.ndarray | None]]:
    """Compute every clip's features once.

    Returns:
        The unreadable clips' errors by id, and the features (``None`` where unreadable).
    """
    bad: dict[str, str] = {}
    result: list[np.ndarray | None] = []
    for utt in tqdm(utterances, desc="features", disable=not show, leave=False):
        try:
            result.append(features(utt))
        except AudioError as err:  # TruncatedAudioError and a missing file too
            LOGGER.warning("skipping %s: %s", utt.id, err)
            bad[utt.id] = f"unreadable audio: {err}"
            result.append(None)
    return bad, result


def fold_labels(utterances: Sequence[Utterance], settings: LabelSettings
                ) -> tuple[list[Utterance], dict[str, int]]:
    """Utterances with their transcripts in Whisper's orthography (``labels``), and the counts.

    The fold happens before tokenizing, so LoRA and full runs still learn byte-identical
    labels; see :mod:`whisper_ja.text.labels`.
    """
    texts, counts = count_label_changes((u.text for u in utterances), settings)
    return ([u if u.text == t else dataclasses.replace(u, text=t)
             for u, t in zip(utterances, texts, strict=True)], counts)


def build_datasets(config: TrainConfig, processor: Any, accelerator: Any) -> Datasets:
    """The run's training batches (streamed or in memory) and its validation set.

    Validation sets are small: they are read in memory, their features computed once by the
    main process (unreadable clips skipped and counted).

    Raises:
        ConfigError: no usable training clip is left, or the step budget cannot be derived.
    """
    tokenizer = processor.tokenizer
    val_utts = read_manifest(*config.data.validation) if config.data.validation else []
    val_utts, _ = fold_labels(val_utts, config.labels)
    val_utts, _, skipped = select_trainable(val_utts, tokenizer, config.data.max_label_tokens)
    if config.data.validation_limit:
        val_utts = val_utts[: config.data.validation_limit]
    features = feature_source(config, processor.feature_extractor)
    bad: dict[str, str] = {}
    validation: list[Example] = []
    if accelerator.is_main_process:
        bad, val_feats = _readable(val_utts, features, config.run.progress)
        validation = [Example(u.id, u.text, f,
                              tuple(build_labels(u.text, tokenizer, u.language())))
                      for u, f in zip(val_utts, val_feats, strict=True) if f is not None]
        validation.sort(key=lambda e: e.features.shape[1])
    shared: list[Any] = [bad]
    broadcast_object_list(shared)
    bad = shared[0]
    if bad:
        skipped["unreadable audio"] += len(bad)
    train = (_streamed(config, processor, accelerator) if is_streamed(config)
             else _in_memory(config, processor, accelerator, features))
    return Datasets(train=train, validation=validation,
                    validation_utterances=[u for u in val_utts if u.id not in bad],
                    validation_skipped=dict(skipped),
                    validation_named=list(bad.values())[:NAMED_KEPT])


def _collate_fn(config: TrainConfig) -> Callable[[list[Example]], dict[str, torch.Tensor]]:
    policy = config.efficiency.context
    return partial(collate, frames=partial(context_frames, policy=policy))


def _in_memory(config: TrainConfig, processor: Any, accelerator: Any,
               features: Callable[[Utterance], np.ndarray]) -> MemorySteps:
    """Every training clip's label built up front, and with the cache on its features too.

    The main process computes the features; unreadable clips are skipped and counted.
    """
    tokenizer = processor.tokenizer
    train_utts = read_manifest(*config.data.train)  # data.mixing was checked by check_paths
    train_utts, label_changes = fold_labels(train_utts, config.labels)
    mix = LabelMix(config.data.timestamp_probability, config.data.condition_on_prev,
                   config.seed)
    limit = config.data.max_pseudo_cer
    over = [u for u in train_utts if limit and _pseudo_cer(u) > limit]
    train_utts = [u for u in train_utts if not (limit and _pseudo_cer(u) > limit)]
    train_utts, train_labels, skipped = select_trainable(
        train_utts, tokenizer, config.data.max_label_tokens, mix)
    if over:
        skipped[f"pseudo-label CER above {limit}"] = len(over)
    bad: dict[str, str] = {}
    if accelerator.is_main_process and config.efficiency.feature_cache:
        bad, _ = _readable(train_utts, features, config.run.progress)
    shared: list[Any] = [bad]
    broadcast_object_list(shared)
    bad = shared[0]
    if bad:
        skipped["unreadable audio"] += len(bad)
    keep = [i for i, u in enumerate(train_utts) if u.id not in bad]
    train_utts = [train_utts[i] for i in keep]
    train_labels = [train_labels[i] for i in keep]
    if not train_utts:
        raise ConfigError(f"data.train: no usable training clip in {list(config.data.train)} "
                          f"(skipped: {dict(skipped)})")
    steps = MemorySteps(config, SpeechDataset(train_utts, train_labels, features,
                                              [prompt_length(i, tokenizer) for i in train_labels]),
                        [frames_of(u) for u in train_utts], [u.corpus for u in train_utts],
                        _collate_fn(config), accelerator.num_processes, accelerator.process_index)
    steps.skipped, steps.label_changes = dict(skipped), label_changes
    steps.named = list(bad.values())[:NAMED_KEPT]
    return steps


def _pseudo_cer(utt: Utterance) -> float:
    """``extra.pseudo_cer`` (written by ``pseudo-label``), or 0 for a corpus's own label."""
    rate = utt.extra.get("pseudo_cer", 0.0)
    return float(rate) if isinstance(rate, int | float) else 0.0


def _streamed(config: TrainConfig, processor: Any, accelerator: Any) -> StreamSteps:
    """Readers in DataLoader workers; nothing is read before the first step.

    Only file sizes (and, to size the schedule when ``optim.max_steps`` is 0, a row count or
    estimate: :func:`~whisper_ja.data.stream_sources.estimated_clips`).
    """
    world, workers = accelerator.num_processes, config.efficiency.workers
    slots = world * max(workers, 1)
    plan = ReaderPlan(seed=config.seed, epoch=0, rank=accelerator.process_index, world=world,
                      workers=workers, slot_order=(), skip={}, done=frozenset(),
                      weights=parse_mixing(config.data.mixing),
                      shuffle_buffer=config.data.shuffle_buffer,
                      batch_size=config.optim.batch_size, max_duration=config.optim.max_duration,
                      boundaries=tuple(config.data.bucket_seconds))
    labeler = Labeler(processor.tokenizer, config.labels,
                      LabelMix(config.data.timestamp_probability, config.data.condition_on_prev,
                               config.seed),
                      config.data.max_label_tokens, config.data.max_pseudo_cer)
    cache = config.efficiency.cache_dir or config.out / "feature_cache"
    featurizer = Featurizer(processor.feature_extractor,
                            str(cache) if config.efficiency.feature_cache else None,
                            int(config.efficiency.cache_max_gb * 1e9 / slots))
    steps = StreamSteps(plan_sources(config.data.train, slots, CHUNK_BYTES), plan, labeler,
                        featurizer, _collate_fn(config), accelerator, config.optim.grad_accum,
                        processor.feature_extractor.feature_size)
    steps.steps_per_epoch = _streamed_steps_per_epoch(config, world)
    return steps


def _streamed_steps_per_epoch(config: TrainConfig, world: int) -> int:
    """Steps of one epoch, estimated from the row count (batches by clip count only).

    Raises:
        ConfigError: naming ``optim.max_steps`` when it is 0 and no estimate is possible.
    """
    clips = estimated_clips([Path(p) for p in config.data.train])
    if config.optim.max_duration or not clips:
        if not config.optim.max_steps:
            raise ConfigError(
                "optim.max_steps: streamed data with optim.max_duration (or shards without an "
                "index.json) has no known epoch length; set optim.max_steps")
        return config.optim.max_steps
    return max(1, math.ceil(clips / (config.optim.batch_size * world * config.optim.grad_accum)))
