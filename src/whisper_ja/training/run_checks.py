"""Checks of a training run's settings against the file system, before any work starts.

Manifests and shard folders must exist, ``data.mixing`` must name corpora they hold, ``out``
must be usable, and a resume must keep the settings and the data its run started with (a
hybrid of two recipes, or of two corpora under one path, is refused with one line naming what
changed). Also where ``data.streaming: auto`` decides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from whisper_ja.config import ConfigError, config_to_dict, load_config
from whisper_ja.data.manifest import iter_manifest
from whisper_ja.data.stream_sources import fingerprint, is_streamable
from whisper_ja.training.settings import TrainConfig, parse_mixing

__all__ = [
    "DATA_FINGERPRINT",
    "RESULT_NEUTRAL_SETTINGS",
    "changed_settings",
    "check_paths",
    "check_resume_data",
    "check_resume_settings",
    "data_fingerprint",
    "is_streamed",
]


def check_paths(config: TrainConfig) -> None:
    """Fail fast on settings that name files, before any work starts.

    Manifests must exist, ``data.mixing`` must name corpora they hold, and ``out`` must be
    usable.

    Raises:
        ConfigError: naming the setting (``data.train``, ``data.validation``,
            ``data.mixing``, ``out``).
    """
    if not config.data.train:
        raise ConfigError("data.train: name at least one training manifest")
    for name, paths in (("data.train", config.data.train),
                        ("data.validation", config.data.validation),
                        ("gate.unseen", config.gate.unseen),
                        ("gate.retention", config.gate.retention)):
        for path in paths:
            shards = name == "data.train" and Path(path).is_dir()
            if not (Path(path).is_file() or shards):
                raise ConfigError(f"{name}: manifest {path} does not exist")
    weights = parse_mixing(config.data.mixing)
    if weights and not is_streamed(config):  # a stream is not read before training
        corpora = {u.corpus for path in config.data.train for u in iter_manifest(path)}
        unknown = sorted(set(weights) - corpora)
        if unknown:
            raise ConfigError(f"data.mixing: corpus(es) {unknown} not in the training "
                              f"manifests (they hold {sorted(corpora)})")
    if config.out.exists() and not config.out.is_dir():
        raise ConfigError(f"out: {config.out} exists and is not a folder")
    checkpoints = config.out / "checkpoints"
    if not config.resume and checkpoints.is_dir() and any(checkpoints.glob("step-*")):
        raise ConfigError(f"out: {config.out} already holds checkpoints of a run; pass "
                          f"--resume to continue it or choose another folder")
    if config.resume and checkpoints.is_dir() and any(checkpoints.glob("step-*")):
        check_resume_settings(config)
        check_resume_data(config)


DATA_FINGERPRINT = "data_fingerprint.json"
"""File in OUT with the size and modification time of every training and validation file."""


def data_fingerprint(config: TrainConfig) -> dict[str, list[int]]:
    """Size and modification time (ns) of each file the run's data is read from."""
    return fingerprint([*config.data.train, *config.data.validation])


def check_resume_data(config: TrainConfig) -> None:
    """Refuse to resume on data that changed under the same paths.

    Raises:
        ConfigError: naming ``resume`` and the first changed file.
    """
    saved_file = config.out / DATA_FINGERPRINT
    if not saved_file.is_file():
        return  # a run started before fingerprints were kept
    saved = json.loads(saved_file.read_text(encoding="utf-8"))
    now = data_fingerprint(config)
    for path in sorted(set(saved) | set(now)):
        if saved.get(path) != now.get(path):
            what = ("is gone" if path not in now else "is new" if path not in saved else
                    "changed (size or modification time)")
            raise ConfigError(f"resume: the training data changed since the run in {config.out} "
                              f"started: {path} {what}. Resume with the same data or start a "
                              "new run in another folder")


def is_streamed(config: TrainConfig) -> bool:
    """Whether the training data is streamed, as ``data.streaming`` says.

    ``auto`` streams shards, and manifests over ``data.stream_above_mb`` in total.

    Raises:
        ConfigError: naming ``data.streaming`` when shards are to be read in memory.
    """
    paths = [Path(p) for p in config.data.train]
    shards = any(is_streamable(p) for p in paths)
    if config.data.streaming == "never" and shards:
        raise ConfigError("data.streaming: never reads manifests in memory, but data.train "
                          "names shards; use always or auto")
    if config.data.streaming != "auto":
        return config.data.streaming == "always"
    return shards or sum(p.stat().st_size for p in paths) > config.data.stream_above_mb * 1e6


RESULT_NEUTRAL_SETTINGS = frozenset({
    "resume", "run.log_every", "run.progress", "run.tensorboard", "run.save_every",
    "run.keep_checkpoints"})
"""Settings that may differ between a run and its resume: they cannot change the weights."""


def changed_settings(saved: Mapping[str, object], new: Mapping[str, object],
                     prefix: str = "") -> list[tuple[str, object, object]]:
    """``(dotted key, saved value, new value)`` of every setting that differs, sections walked."""
    changes: list[tuple[str, object, object]] = []
    for key in sorted(set(saved) | set(new)):
        old_value, new_value = saved.get(key), new.get(key)
        if isinstance(old_value, Mapping) and isinstance(new_value, Mapping):
            changes += changed_settings(old_value, new_value, f"{prefix}{key}.")
        elif old_value != new_value:
            changes.append((f"{prefix}{key}", old_value, new_value))
    return changes


def check_resume_settings(config: TrainConfig) -> None:
    """Refuse to resume a run with settings that would change its result.

    The run's ``config.yaml`` (written when it started) is compared with ``config``; only
    :data:`RESULT_NEUTRAL_SETTINGS` may differ. Otherwise the resumed run would silently be a
    hybrid of two recipes.

    Raises:
        ConfigError: naming ``resume`` and each changed key with its saved and new value.
    """
    saved_file = config.out / "config.yaml"
    if not saved_file.is_file():
        raise ConfigError(f"resume: {config.out} has checkpoints but no config.yaml to compare "
                          "the settings with; start a new run in another folder")
    saved = config_to_dict(load_config(TrainConfig, saved_file))
    changes = [c for c in changed_settings(saved, config_to_dict(config))
               if c[0] not in RESULT_NEUTRAL_SETTINGS]
    if changes:
        listed = "; ".join(f"{key} (was {old!r}, now {new!r})" for key, old, new in changes)
        raise ConfigError(f"resume: the run in {config.out} was started with other settings "
                          f"that change the result: {listed}. Resume with its settings or "
                          "start a new run in another folder")
