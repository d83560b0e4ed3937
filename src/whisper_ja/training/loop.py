r"""Fine-tune a multilingual Whisper for Japanese, with LoRA or end to end: ``whisper-ja train``.

The loop below reads top to bottom: load the model, make it trainable (LoRA adapters or all
weights), build the data, then step / validate / checkpoint until the step budget or early
stopping ends the run, and write the best model. It runs on Accelerate, so the same command works
on one CPU, one GPU or many::

    whisper-ja train --config configs/cpu_base_lora.yaml            # one CPU or GPU
    accelerate launch --multi_gpu --num_processes 4 -m whisper_ja.cli train \\
        --config configs/paper_tiny_full.yaml                       # 4 GPUs, DDP
    accelerate launch --config_file my_deepspeed_or_fsdp.yaml -m whisper_ja.cli train ...
    torchrun --nproc_per_node 2 -m whisper_ja.cli train ...         # 2 CPU processes (gloo)

``optim.batch_size`` is per process: the effective batch is batch_size x grad_accum x processes.
Validation (greedy decoding, Japanese forced) runs on the main process. Checkpoints are written
to a folder the processes share (one node, or a shared file system for several).

Output folder (``out``): the best model by validation CER (LoRA: a PEFT adapter for
``PeftModel.from_pretrained``; full: a ``WhisperForConditionalGeneration`` folder), the processor,
``whisper_ja.json`` (base model and context policy to decode with), the resolved ``config.yaml``,
``summary.json``, ``log.jsonl``, ``tensorboard/`` and ``checkpoints/`` (for ``--resume``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import broadcast_object_list, gather_object, set_seed
from tqdm.auto import tqdm
from transformers import get_scheduler

from whisper_ja.config import save_config
from whisper_ja.data.collate import IGNORE_INDEX
from whisper_ja.inference.engine import Engine, needs_snapshot
from whisper_ja.model import load_model
from whisper_ja.training.checkpoint import (
    RunLog,
    TrainProgress,
    keep_trainable_only,
    latest_checkpoint,
    save_best,
    save_checkpoint,
    write_final_model,
)
from whisper_ja.training.datasets import Datasets, build_datasets
from whisper_ja.training.gate_checks import GateRun, untouched_decoder
from whisper_ja.training.processes import end_processes
from whisper_ja.training.run_checks import DATA_FINGERPRINT, check_paths, data_fingerprint
from whisper_ja.training.settings import TrainConfig, resolve_precision
from whisper_ja.training.step import train_step
from whisper_ja.training.trainable import build_optimizer, prepare_model
from whisper_ja.training.validation import validate, validate_decoded

__all__ = [
    "TrainConfig",
    "TrainResult",
    "build_optimizer",
    "prepare_model",
    "resolve_precision",
    "train",
    "validate",
]

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced (``summary`` is also in ``out/summary.json``)."""

    out: Path
    summary: dict[str, Any]


@dataclass
class _Run:
    """What one training run holds while its loop runs (made by :func:`_set_up`)."""

    config: TrainConfig
    accelerator: Accelerator
    model: Any
    processor: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    data: Datasets
    counts: dict[str, int]
    progress: TrainProgress
    log: RunLog
    steps_per_epoch: int
    total_steps: int
    clock: float = 0.0  # start of the loop time not yet added to progress.elapsed_s
    gate: GateRun | None = None  # the versatility gate (main process; None when off)


def train(config: TrainConfig) -> TrainResult:
    """Fine-tune ``config.model`` on ``config.data`` and write the output folder.

    Raises:
        ConfigError: a setting is invalid (checked before any work).
    """
    check_paths(config)
    run = _set_up(config)
    progress = run.progress
    validate_now = (progress.step == 0 and config.run.validate_at_start
                    and bool(run.data.validation_utterances))
    # One CTranslate2 snapshot of the untouched model serves the gate's untouched scores and
    # the step-0 validation (two exports of the same weights cost ~5-8 s on a CPU).
    with untouched_decoder(config, run.accelerator.unwrap_model(run.model), run.processor,
                           wanted=validate_now and run.accelerator.is_main_process) as decoder:
        run.gate = GateRun.for_training(run, decoder) if run.accelerator.is_main_process else None
        run.clock = time.monotonic()
        if validate_now:
            progress.initial_cer = _validate_and_keep_best(run, decoder)
    bar = tqdm(total=run.total_steps, initial=progress.step, desc=f"train ({config.mode})",
               disable=not (run.accelerator.is_main_process and config.run.progress),
               dynamic_ncols=True)
    loss = math.nan
    for step_batches in run.data.train.steps(progress.step, run.total_steps):
        lr = run.scheduler.get_last_lr()[0]  # the rate this step uses
        step_started = time.monotonic()
        loss = train_step(run.model, run.optimizer, run.scheduler, step_batches, config,
                          run.accelerator, progress.step)
        progress.step_time_s += time.monotonic() - step_started
        progress.step += 1
        progress.samples += _samples(step_batches, run.accelerator)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
        if progress.step % config.run.log_every == 0 or progress.step == run.total_steps:
            run.log.write({"step": progress.step, "loss": loss, "lr": lr,
                           "epoch": run.data.train.epoch(progress.step),
                           "samples": progress.samples})
        if _validate_checkpoint_and_stop(run):
            break
    bar.close()
    progress.elapsed_s += time.monotonic() - run.clock
    return TrainResult(out=config.out, summary=_write_outputs(run, loss))


def _set_up(config: TrainConfig) -> _Run:
    """Accelerator, trainable model, data, optimizer and schedule, resumed when asked."""
    # Several processes without a GPU (torchrun / mpirun on CPUs) need cpu=True for Accelerate
    # to pick its MULTI_CPU (gloo) mode; with GPUs or one process Accelerate decides alone.
    cpu_processes = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    # Accelerate keeps its settings in a process-wide singleton that refuses a second precision;
    # train() may run several times in one process (sweeps, tests), so start each run afresh.
    # The process group (PartialState) is kept.
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    accelerator = Accelerator(mixed_precision=resolve_precision(config.precision),
                              cpu=cpu_processes)
    set_seed(config.seed)
    main = accelerator.is_main_process
    if main:
        config.out.mkdir(parents=True, exist_ok=True)
        save_config(config, config.out / "config.yaml")
        if not config.resume or not (config.out / DATA_FINGERPRINT).is_file():
            (config.out / DATA_FINGERPRINT).write_text(json.dumps(data_fingerprint(config)),
                                                       encoding="utf-8")

    # 1. The model, made trainable: LoRA adapters only, or all (or all but encoder) weights.
    loaded = load_model(config.model, dtype=torch.float32)
    model, counts = prepare_model(loaded.model, config)

    # 2. Data: labels built once (same ids for both modes), features cached, skips counted.
    data = build_datasets(config, loaded.processor, accelerator)
    steps_per_epoch = data.train.steps_per_epoch
    total_steps = config.optim.max_steps or config.optim.epochs * steps_per_epoch

    # 3. Optimizer and schedule; Accelerate wraps the model for DDP / DeepSpeed / FSDP.
    optimizer = build_optimizer(model, config)
    scheduler = get_scheduler(config.optim.schedule, optimizer,
                              num_warmup_steps=config.optim.warmup_steps,
                              num_training_steps=total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    progress = TrainProgress()
    accelerator.register_for_checkpointing(scheduler, progress, data.train)
    if config.mode == "lora":
        accelerator.register_save_state_pre_hook(keep_trainable_only(model))

    # 4. Resume: model, optimizer, scheduler, every process's RNG and the step counter (which
    #    fixes the data position, since the order is a function of seed and epoch).
    resumed_from = latest_checkpoint(config.out / "checkpoints") if config.resume else None
    if resumed_from is not None:
        accelerator.load_state(str(resumed_from), strict=config.mode != "lora")
        LOGGER.info("resumed from %s (step %d)", resumed_from, progress.step)
    log = RunLog(config.out, enabled=main, tensorboard=config.run.tensorboard,
                 keep_until_step=progress.step)
    log.write({"event": "start", "step": progress.step, "total_steps": total_steps,
               "steps_per_epoch": steps_per_epoch, "processes": accelerator.num_processes,
               "precision": accelerator.mixed_precision, **counts,
               "resumed_from": str(resumed_from) if resumed_from else None})
    return _Run(config, accelerator, model, loaded.processor, optimizer, scheduler, data, counts,
                progress, log, steps_per_epoch, total_steps)


def _validate_checkpoint_and_stop(run: _Run) -> bool:
    """After a step: validate and checkpoint when due; True when early stopping ends the run."""
    config, progress = run.config, run.progress
    last = progress.step == run.total_steps
    if run.data.validation_utterances and (
            last or (config.run.validate_every and progress.step % config.run.validate_every == 0)):
        _validate_and_keep_best(run)
    stop = bool(config.run.patience and progress.bad_validations >= config.run.patience)
    if config.run.save_every and (progress.step % config.run.save_every == 0 or last or stop):
        now = time.monotonic()  # the elapsed time travels in the checkpoint
        progress.elapsed_s += now - run.clock
        run.clock = now
        run.data.train.gather_position()  # streamed data: every process's reader position
        save_checkpoint(run.accelerator, config.out / "checkpoints", progress.step,
                        config.run.keep_checkpoints)
    if stop:
        run.log.write({"event": "early_stop", "step": progress.step,
                       "best_step": progress.best_step})
    return stop


def _write_outputs(run: _Run, loss: float) -> dict[str, Any]:
    """Best (or, without validation, last) model, processor and summary; returns the summary."""
    accelerator, out = run.accelerator, run.config.out
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(run.model)
    if accelerator.is_main_process:
        write_final_model(unwrapped, run.processor, run.config,
                          has_best=bool(run.data.validation_utterances))
    summary = _summary(run, unwrapped, loss)
    if accelerator.is_main_process:
        (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False),
                                          encoding="utf-8")
        run.log.write({"event": "end", **summary})
    run.log.close()
    end_processes(accelerator)  # waits for every process; avoids gloo's teardown deadlock
    return summary


def _samples(batches: list[dict[str, torch.Tensor]], accelerator: Accelerator) -> int:
    """Clips trained on in a step, all processes (an empty batch of a done reader counts 0)."""
    count = torch.tensor(sum(int((b["labels"] != IGNORE_INDEX).any(dim=1).sum())
                             for b in batches), device=accelerator.device)
    return int(accelerator.reduce(count, reduction="sum").item())


def _validate_and_keep_best(run: _Run, decoder: Engine | None = None) -> float:
    """Validate on the main process, share the CER, keep the best model, count patience.

    ``decoder``: the model ready on the gate's backend when the caller has one.
    """
    accelerator, progress, config = run.accelerator, run.progress, run.config
    started = time.monotonic()
    result: list[Any] = [None]
    if accelerator.is_main_process:
        result = [_judge(run, accelerator.unwrap_model(run.model), decoder)]
    broadcast_object_list(result)
    cer, better, passed, gate_log = result[0]
    improved = bool(better and passed)
    if improved:
        progress.best_cer, progress.best_step, progress.bad_validations = cer, progress.step, 0
        if accelerator.is_main_process:
            save_best(accelerator.unwrap_model(run.model), run.processor, config)
    elif progress.step > 0:
        progress.bad_validations += 1
    run.log.write({"step": progress.step, "val_cer": cer, "best_val_cer": progress.best_cer,
                   "val_time_s": round(time.monotonic() - started, 2), **gate_log})
    accelerator.wait_for_everyone()
    return cer


def _judge(run: _Run, model: Any, decoder: Engine | None = None
           ) -> tuple[float, bool, bool, dict[str, Any]]:
    """In-domain CER, whether it beats the kept one, the gate's verdict and its log entry.

    With a CTranslate2 gate (``gate.backend``) one snapshot of the model (``decoder`` when the
    caller has one) decodes both the validation set and the gate's check sets.
    """
    if decoder is not None:
        cer = validate_decoded(decoder, run.data.validation_utterances)
        return (cer, *_gate_verdict(run, model, cer, decoder))
    if run.gate is not None and needs_snapshot(run.gate.settings.runtime):
        with run.gate.decoding.decoder(model, run.processor) as decoder:
            cer = validate_decoded(decoder, run.data.validation_utterances)
            return (cer, *_gate_verdict(run, model, cer, decoder))
    cer = validate(model, run.processor, run.data.validation, run.config, run.accelerator)
    return (cer, *_gate_verdict(run, model, cer, None))


def _gate_verdict(run: _Run, model: Any, cer: float, decoder: Engine | None
                  ) -> tuple[bool, bool, dict[str, Any]]:
    """Whether ``cer`` beats the kept one, whether the gate passes, and the gate's log entry.

    Only a checkpoint that passes may become the kept one. The gate judges only checkpoints
    better in-domain than the kept one (no other can be kept), which spares most of a
    validation's time and changes no outcome.
    """
    better = run.progress.best_cer is None or cer < run.progress.best_cer
    if run.gate is None:
        return better, True, {}
    if not better:
        return better, False, {"gate": "not judged (in-domain CER not better than kept)"}
    return (better, *run.gate.check(model, run.processor, run.progress.step, cer,
                                    decoder=decoder))


def _summary(run: _Run, model: Any, loss: float) -> dict[str, Any]:
    config, progress, data, accelerator = run.config, run.progress, run.data, run.accelerator
    checksum = float(sum(p.detach().double().sum().item()
                         for p in model.parameters() if p.requires_grad))
    synthetic = any(u.is_synthetic for u in data.validation_utterances)
    train_data = data.train.summary()  # every process takes part (streamed data gathers)
    return {
        "mode": config.mode, "model": config.model, "steps": progress.step,
        "planned_steps": run.total_steps, "train_time_s": round(progress.elapsed_s, 2),
        "time_per_step_s": round(progress.step_time_s / progress.step, 4) if progress.step
        else None,
        "best_val_cer": progress.best_cer, "best_step": progress.best_step,
        "initial_val_cer": progress.initial_cer, "final_train_loss": loss,
        "stopped_early": bool(config.run.patience
                              and progress.bad_validations >= config.run.patience),
        **run.counts, "peak_memory_mb": peak_memory_mb(), "precision": accelerator.mixed_precision,
        "processes": accelerator.num_processes, "samples_seen": progress.samples,
        **train_data,
        "validation_clips": len(data.validation_utterances),
        "validation_corpora": sorted({u.corpus for u in data.validation_utterances}),
        "validation_is_synthetic_speech": synthetic,
        "skipped": dict(Counter(train_data["skipped"]) + Counter(data.validation_skipped)),
        "skipped_named": train_data["skipped_named"] + data.validation_named,
        **(run.gate.summary() if run.gate else {}),
        "dynamic_context": config.efficiency.context.dynamic,
        "context_min_frames": config.efficiency.context.min_frames,
        "replica_checksums": gather_object([checksum]),
    }


def peak_memory_mb() -> float:
    """Peak memory of this process in MiB: GPU memory allocated on CUDA, else peak RSS."""
    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    # Imported here, not at the top: POSIX-only; peak memory is read only where reported.
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
