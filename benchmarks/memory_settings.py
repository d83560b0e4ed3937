"""What the memory settings of ``whisper-ja train`` cost and save, side by side in one run.

A whisper-base-shaped model with random weights (same shapes and FLOPs as the real one), one
training step after another on a batch of 800-frame (8 s, the dynamic-context floor) inputs, each
setting in its own process so that its peak memory is its own:

- LoRA r=32 on q,v and full fine-tuning, each plain, with ``gradient_checkpointing=true`` and
  with ``freeze_encoder=true`` (through ``whisper_ja.training.trainable.prepare_model``);
- on a CUDA GPU also LoRA on an 8-bit and a 4-bit base (``quantize_base``); on a CPU these are
  refused (ConfigError), which the table says.

It prints the median step time and peak memory (RSS on CPU, allocated on GPU) per setting.

    .venv/bin/python benchmarks/memory_settings.py [--batch 4] [--steps 4] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch

SETTINGS = {
    "lora": {"mode": "lora"},
    "lora+checkpointing": {"mode": "lora", "gradient_checkpointing": True},
    "lora+freeze_encoder": {"mode": "lora", "freeze_encoder": True},
    "lora+8bit base": {"mode": "lora", "quantize_base": "8bit"},
    "lora+4bit base": {"mode": "lora", "quantize_base": "4bit"},
    "full": {"mode": "full"},
    "full+checkpointing": {"mode": "full", "gradient_checkpointing": True},
    "full+freeze_encoder": {"mode": "full", "freeze_encoder": True},
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--frames", type=int, default=800)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--setting", choices=sorted(SETTINGS), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One setting: median step seconds and peak memory."""
    from whisper_ja.config import load_config
    from whisper_ja.model.device import resolve_device
    from whisper_ja.model.generations import GENERATIONS, random_whisper
    from whisper_ja.training.settings import TrainConfig
    from whisper_ja.training.trainable import build_optimizer, prepare_model

    device = resolve_device(args.device)
    values = SETTINGS[args.setting]
    overrides = [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in values.items()]
    overrides += ["lora.rank=32", "lora.target_modules=[q_proj,v_proj]",
                  "efficiency.context.dynamic=true"]
    config = load_config(TrainConfig, overrides=overrides)  # quantize_base: refused on a CPU
    loaded = random_whisper(GENERATIONS["v2"], d_model=512, encoder_layers=6, heads=8)
    model, counts = prepare_model(loaded.model, config)
    model.to(device).train()
    optimizer = build_optimizer(model, config)
    features = torch.randn(args.batch, 80, args.frames, device=device)
    labels = torch.randint(0, 50000, (args.batch, 24), device=device)
    times = []
    for _ in range(args.steps + 1):  # the first step warms up
        started = time.perf_counter()
        model(input_features=features, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"step_s": statistics.median(times[1:]), "peak_mib": peak,
            "trainable": counts["trainable_params"], "device": device.type}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.setting:
        try:
            print(json.dumps(measure(args)))
        except Exception as err:  # noqa: BLE001 - reported in the table, e.g. the CPU refusal
            print(json.dumps({"error": f"{type(err).__name__}: {err}"}))
        return 0
    print(f"batch {args.batch} x {args.frames} frames, whisper-base shape, "
          f"median of {args.steps} steps")
    print(f"{'setting':<22} {'step s':>7} {'peak MiB':>9} {'trainable':>10}")
    for name in SETTINGS:
        done = subprocess.run([sys.executable, __file__, "--setting", name, "--batch",
                               str(args.batch), "--steps", str(args.steps), "--frames",
                               str(args.frames), "--device", args.device],
                              capture_output=True, text=True, check=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        result = json.loads(lines[-1]) if lines else {"error": done.stderr.strip()[-200:]}
        if "error" in result:
            print(f"{name:<22} not run: {result['error'][:120]}")
        else:
            print(f"{name:<22} {result['step_s']:>7.2f} {result['peak_mib']:>9.0f} "
                  f"{result['trainable']:>10,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
