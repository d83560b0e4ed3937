"""Atomic, resumable training checkpoints on top of Accelerate's ``save_state``.

A checkpoint is a folder ``OUT/checkpoints/step-00000123`` holding what Accelerate saves (model
weights, optimizer, every process's random states, registered objects: the learning-rate
scheduler and :class:`TrainProgress`). It is written under a temporary name and renamed once
complete, so a crash or kill while saving never leaves a half checkpoint that a resume would
pick up: a folder named ``step-*`` is always whole.

LoRA checkpoints keep only the trainable (adapter) weights: the frozen base weights are
reloaded from the base model, which makes a whisper-base LoRA checkpoint a few MB instead of
~300 MB.

The data position is not stored separately: the training order is a pure function of the
seed and the epoch, so the step counter in :class:`TrainProgress` says exactly which batches
were consumed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from whisper_ja.config import ConfigError
from whisper_ja.errors import CheckpointError
from whisper_ja.model.context import save_context_marker
from whisper_ja.model.record import ModelRecord, write_record
from whisper_ja.training.run_checks import changed_settings

__all__ = [
    "RunLog",
    "TrainProgress",
    "keep_trainable_only",
    "latest_checkpoint",
    "load_resumable",
    "no_room_is_one_line",
    "replace_folder",
    "save_best",
    "save_checkpoint",
    "save_state_file",
    "write_final_model",
]

_STEP_DIR = re.compile(r"^step-(\d+)$")

_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
"""A full disk, an exhausted quota, or a file-size limit."""

# safetensors (Rust) reports a full disk in its own error, naming the OS error in words; torch's
# zip writer raises a RuntimeError naming it too.
_NO_ROOM_WORDS = ("No space left", "StorageFull", "Disk quota", "File too large", "FileTooLarge",
                  "file write failed")


@contextlib.contextmanager
def no_room_is_one_line(what: str, partial: Path) -> Iterator[None]:
    """A full disk while writing ``partial`` becomes one :class:`CheckpointError`.

    ``partial`` is removed either way (the complete checkpoints before it stay as they were);
    other errors pass through unchanged.
    """
    try:
        yield
    except (OSError, SafetensorError, RuntimeError) as err:
        no_room = (err.errno in _NO_ROOM if isinstance(err, OSError)
                   else any(words in str(err) for words in _NO_ROOM_WORDS))
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)
        if not no_room:
            raise
        raise CheckpointError(f"out: no room to write the {what} to {partial.parent} ({err}); "
                              "the partial output was removed and earlier checkpoints are "
                              "intact. Free some space, then continue with --resume") from err


@dataclass
class TrainProgress:
    """Counters that must survive a resume (saved with every checkpoint).

    Attributes:
        step: Optimizer steps done.
        best_cer: Best validation CER so far (``None`` before the first validation).
        best_step: Step that reached ``best_cer``.
        initial_cer: Validation CER of the untouched model, if measured.
        bad_validations: Validations in a row without a better CER (early-stopping patience).
        elapsed_s: Wall seconds of the loop (steps, validation, checkpoints), all attempts.
        step_time_s: Seconds spent in optimizer steps only (forward, backward, update).
        samples: Training clips consumed, over all processes.
    """

    step: int = 0
    best_cer: float | None = None
    best_step: int = 0
    initial_cer: float | None = None
    bad_validations: int = 0
    elapsed_s: float = 0.0
    step_time_s: float = 0.0
    samples: int = 0

    def state_dict(self) -> dict[str, Any]:
        """Plain dict for ``accelerator.register_for_checkpointing``."""
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        for key, value in state.items():
            setattr(self, key, value)


def latest_checkpoint(folder: Path) -> Path | None:
    """The complete checkpoint with the highest step under ``folder``, or ``None``."""
    if not folder.is_dir():
        return None
    steps = [(int(m.group(1)), p) for p in folder.iterdir()
             if p.is_dir() and (m := _STEP_DIR.match(p.name))]
    return max(steps)[1] if steps else None


def keep_trainable_only(model: torch.nn.Module) -> Callable[[list[Any], list[Any], str], None]:
    """A ``register_save_state_pre_hook`` hook dropping frozen weights from checkpoints.

    Args:
        model: The model as prepared by Accelerate (parameter names must match its state dict).
    """
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}

    def hook(models: list[Any], weights: list[Any], output_dir: str) -> None:
        for state in weights:
            for key in [k for k in state if k not in trainable]:
                del state[key]

    return hook


def save_checkpoint(accelerator: Any, folder: Path, step: int, keep: int) -> Path:
    """Save the full training state atomically and keep only the ``keep`` newest checkpoints.

    Every process must call this (each one saves its own random state).

    Args:
        accelerator: The run's ``accelerate.Accelerator``.
        folder: The checkpoints folder (``OUT/checkpoints``).
        step: Optimizer steps done; names the checkpoint.
        keep: How many checkpoints to keep.

    Returns:
        The checkpoint folder.
    """
    final = folder / f"step-{step:08d}"
    partial = folder / f".partial-step-{step:08d}"
    if accelerator.is_main_process:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(partial, ignore_errors=True)  # left by a crash during an earlier save
    accelerator.wait_for_everyone()
    with no_room_is_one_line(f"checkpoint of step {step}", partial):
        accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with no_room_is_one_line(f"checkpoint of step {step}", partial):
            _fsync_tree(partial)
        replace_folder(partial, final)
        complete = sorted((p for p in folder.iterdir() if _STEP_DIR.match(p.name)),
                          key=lambda p: int(p.name.split("-")[1]))
        for old in complete[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def save_state_file(state: dict[str, Any], path: Path) -> None:
    """A one-file checkpoint (``torch.save``): written under a temporary name, synced, renamed.

    A killed run never leaves half a file; a full disk is one :class:`CheckpointError` line.
    """
    partial = path.with_name(f".{path.name}.partial")
    with no_room_is_one_line(path.name, partial):
        torch.save(state, partial)
        with partial.open("rb") as handle:
            os.fsync(handle.fileno())
    os.replace(partial, path)


def load_resumable(path: Path, settings: dict[str, Any], resume: bool
                   ) -> dict[str, Any] | None:
    """The one-file checkpoint to resume from (:func:`save_state_file`), or None.

    Its ``settings`` must equal ``settings``: a resume with others would make a hybrid run.

    Raises:
        ConfigError: naming ``resume`` and each changed key with its saved and new value.
    """
    if not resume or not path.is_file():
        return None
    state: dict[str, Any] = torch.load(path, weights_only=False)
    changes = changed_settings(state["settings"], settings)
    if changes:
        listed = "; ".join(f"{key} (was {old!r}, now {new!r})" for key, old, new in changes)
        raise ConfigError(f"resume: {path} was made with other settings that change the "
                          f"result: {listed}. Resume with those, pass --no-resume, or use "
                          "another --out")
    return state


def replace_folder(source: Path, target: Path) -> None:
    """Move the complete folder ``source`` to ``target``, as atomically as the file system allows.

    An existing ``target`` is renamed aside first and removed once ``source`` is in place.
    """
    aside = target.with_name(f".old-{target.name}")
    shutil.rmtree(aside, ignore_errors=True)
    if target.exists():
        os.replace(target, aside)
    os.replace(source, target)
    shutil.rmtree(aside, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    """Flush the files of ``folder`` to disk before the rename makes them visible."""
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())


class RunLog:
    """``log.jsonl`` (one JSON object per line) plus TensorBoard scalars, main process only.

    On a resume, records after the checkpoint's step are dropped first, so the log reads as
    one uninterrupted run.

    Args:
        out: The run's output folder.
        enabled: False on all but the main process.
        tensorboard: Also write TensorBoard events to ``out/tensorboard``.
        keep_until_step: Drop earlier records with a larger ``step`` (0 on a fresh start
            keeps nothing).
    """

    def __init__(self, out: Path, *, enabled: bool, tensorboard: bool,
                 keep_until_step: int) -> None:
        self.path = out / "log.jsonl"
        self.enabled = enabled
        self.writer: Any = None
        if not enabled:
            return
        kept: list[str] = []
        if keep_until_step and self.path.is_file():
            kept = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= keep_until_step]
        self.path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        if tensorboard:
            # Imported here, not at the top: TensorBoard pulls in protobuf; only runs using it pay.
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=keep_until_step + 1)

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (adds wall-clock ``time``); numbers go to TensorBoard too."""
        if not self.enabled:
            return
        record = {"time": round(time.time(), 3), **record}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        if self.writer is not None and "event" not in record:
            for key in ("loss", "lr", "val_cer"):
                if isinstance(record.get(key), int | float):
                    self.writer.add_scalar(f"train/{key}", record[key], record["step"])

    def close(self) -> None:
        """Flush TensorBoard."""
        if self.writer is not None:
            self.writer.close()


def _save_model_folder(model: Any, processor: Any, config: Any, folder: Path) -> None:
    """Write a loadable model folder: PEFT adapter or full model, processor, whisper_ja.json."""
    if hasattr(model, "peft_config"):
        # Record the name the user gave (hub id or folder), not a resolved cache path, so
        # `load_model(base, adapter=folder)` and PeftModel.from_pretrained find the base again.
        for adapter in model.peft_config.values():
            adapter.base_model_name_or_path = config.model
    model.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    if hasattr(model, "peft_config"):
        save_context_marker(model, folder)  # peft saves no base config to carry the flag
    write_record(folder, ModelRecord(policy=config.efficiency.context, base_model=config.model,
                                     mode=config.mode))


def save_best(model: Any, processor: Any, config: Any) -> Path:
    """Atomically (re)write ``out/best`` with the current weights (main process only)."""
    partial = config.out / ".partial-best"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with no_room_is_one_line("best model", partial):
        _save_model_folder(model, processor, config, partial)
        _fsync_tree(partial)
    best = config.out / "best"
    replace_folder(partial, best)
    return best


def write_final_model(model: Any, processor: Any, config: Any, *, has_best: bool) -> None:
    """Put the run's result at the top of ``out``, each file by atomic rename.

    That is the best model by validation CER if there was validation, else the current (last)
    weights.
    """
    source = config.out / "best"
    if not (has_best and source.is_dir()):
        source = config.out / ".partial-last"
        shutil.rmtree(source, ignore_errors=True)
        source.mkdir(parents=True)
        with no_room_is_one_line("final model", source):
            _save_model_folder(model, processor, config, source)
    for path in source.iterdir():
        if path.is_file():
            tmp = config.out / f".{path.name}.tmp"
            shutil.copy2(path, tmp)
            os.replace(tmp, config.out / path.name)
    if source.name == ".partial-last":
        shutil.rmtree(source, ignore_errors=True)
