"""The training and validation datasets of a run, built from its settings."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from accelerate.utils import broadcast_object_list
from tqdm.auto import tqdm

from whisper_ja.audio.features import log_mel
from whisper_ja.audio.io import AudioError, load_audio
from whisper_ja.config import ConfigError
from whisper_ja.data.collate import (
    Example,
    SpeechDataset,
    build_labels,
    frames_of,
    prompt_length,
    select_trainable,
)
from whisper_ja.data.feature_cache import FeatureCache
from whisper_ja.data.manifest import Utterance, read_manifest
from whisper_ja.data.timestamps import LabelMix
from whisper_ja.text.labels import LabelSettings, count_label_changes
from whisper_ja.training.settings import TrainConfig

LOGGER = logging.getLogger(__name__)

__all__ = ["Datasets", "build_datasets", "feature_source", "fold_labels"]


@dataclass
class Datasets:
    """Training and validation data of a run.

    Attributes:
        train: The training clips (features computed or read from the cache on access).
        train_frames: Frames of each training clip (length grouping, epoch planning).
        train_corpora: Corpus of each training clip (mixing).
        validation: Validation examples with features in memory, shortest first (main
            process only; empty elsewhere).
        validation_utterances: The validation utterances (every process).
        skipped: Skip reason to count, training and validation together.
        label_changes: Training labels each ``labels`` rule changed (before any skipping).
    """

    train: SpeechDataset
    train_frames: list[int]
    train_corpora: list[str]
    validation: list[Example]
    validation_utterances: list[Utterance]
    skipped: dict[str, int]
    label_changes: dict[str, int] = dataclasses.field(default_factory=dict)


def feature_source(config: TrainConfig, feature_extractor: Any
                   ) -> Callable[[Utterance], np.ndarray]:
    """How a run gets log-mel features: through the on-disk cache, or computed every time."""
    if config.efficiency.feature_cache:
        cache = FeatureCache(config.efficiency.cache_dir or config.out / "feature_cache")
        return lambda utt: cache.get(utt, feature_extractor)
    return lambda utt: log_mel(load_audio(utt.audio), feature_extractor)


def _readable(utterances: Sequence[Utterance], features: Callable[[Utterance], np.ndarray],
              show: bool) -> tuple[set[str], list[np.ndarray | None]]:
    """Compute every clip's features once; returns ids of unreadable clips and the features."""
    bad: set[str] = set()
    result: list[np.ndarray | None] = []
    for utt in tqdm(utterances, desc="features", disable=not show, leave=False):
        try:
            result.append(features(utt))
        except AudioError as err:
            LOGGER.warning("skipping %s: %s", utt.id, err)
            bad.add(utt.id)
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
    """Read the manifests, build labels once, check the audio, and assemble the datasets.

    With the feature cache on, the main process computes every training clip's features
    before training (filling the cache; unreadable audio is skipped and counted). Without it,
    features are computed on the fly and unreadable training audio stops the run with the
    file's name. Validation features are computed once and kept in memory.

    ``data.mixing`` is not checked here: :func:`whisper_ja.training.settings.check_paths` does it
    before any work.

    Raises:
        ConfigError: no usable training clip is left.
    """
    main = accelerator.is_main_process
    train_utts = read_manifest(*config.data.train)  # data.mixing was checked by check_paths
    tokenizer = processor.tokenizer
    train_utts, label_changes = fold_labels(train_utts, config.labels)
    mix = LabelMix(config.data.timestamp_probability, config.data.condition_on_prev,
                   config.seed)
    train_utts, train_labels, skipped = select_trainable(
        train_utts, tokenizer, config.data.max_label_tokens, mix)
    val_utts = read_manifest(*config.data.validation) if config.data.validation else []
    val_utts, _ = fold_labels(val_utts, config.labels)
    val_utts, _, val_skipped = select_trainable(val_utts, tokenizer, config.data.max_label_tokens)
    skipped.update(val_skipped)
    if config.data.validation_limit:
        val_utts = val_utts[: config.data.validation_limit]
    features = feature_source(config, processor.feature_extractor)
    bad: set[str] = set()
    validation: list[Example] = []
    if main:
        if config.efficiency.feature_cache:
            bad, _ = _readable(train_utts, features, config.run.progress)
        val_bad, val_feats = _readable(val_utts, features, config.run.progress)
        bad |= val_bad
        validation = [Example(u.id, u.text, f,
                              tuple(build_labels(u.text, tokenizer, u.language())))
                      for u, f in zip(val_utts, val_feats, strict=True) if f is not None]
        validation.sort(key=lambda e: e.features.shape[1])
    shared: list[Any] = [sorted(bad)]
    broadcast_object_list(shared)
    bad = set(shared[0])
    if bad:
        skipped["unreadable audio"] = len(bad)
    keep = [i for i, u in enumerate(train_utts) if u.id not in bad]
    train_utts = [train_utts[i] for i in keep]
    train_labels = [train_labels[i] for i in keep]
    if not train_utts:
        raise ConfigError(f"data.train: no usable training clip in {list(config.data.train)} "
                          f"(skipped: {dict(skipped)})")
    return Datasets(
        train=SpeechDataset(train_utts, train_labels, features,
                            [prompt_length(ids, tokenizer) for ids in train_labels]),
        train_frames=[frames_of(u) for u in train_utts],
        train_corpora=[u.corpus for u in train_utts],
        validation=validation,
        validation_utterances=[u for u in val_utts if u.id not in bad],
        skipped=dict(skipped),
        label_changes=label_changes,
    )
