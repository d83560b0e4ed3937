"""Training-step time of a whisper-base-shaped model: 30-s input vs dynamic context.

Random weights give the same shapes and FLOPs as real whisper-base, so this runs where the real
weights cannot travel (the GPU check machines reach no package index). For each mode (LoRA r=32 on
q,k,v,out,fc1,fc2 / full) and precision it prints the median step time (forward + backward +
AdamW) at 3000 mel frames and at the 800-frame dynamic-context floor, side by side in one run.

    python benchmarks/step_time.py                  # CUDA if available, else CPU
    python benchmarks/step_time.py --batch 8 --steps 3 --device cpu

Measured on one NVIDIA H100 (2026-11-26, torch 2.11, batch 32, median of 10 steps):
    lora fp32 3000: 269.5 ms  800: 89.1 ms  (3.02x)   lora bf16 3000: 119.5 ms  800: 81.6 ms (1.46x)
    full fp32 3000: 273.4 ms  800: 72.7 ms  (3.76x)   full bf16 3000:  65.5 ms  800: 48.9 ms (1.34x)
    peak GPU memory, LoRA fp32: 11.49 GiB at 3000 frames vs 3.92 GiB at 800.
"""

from __future__ import annotations

import argparse
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import WhisperConfig, WhisperForConditionalGeneration

from whisper_ja.model.context import enable_dynamic_context

BASE_SHAPE = dict(d_model=512, encoder_layers=6, decoder_layers=6, encoder_attention_heads=8,
                  decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048,
                  vocab_size=51865, num_mel_bins=80)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def step_time(mode: str, frames: int, precision: str, device: str, batch: int,
              steps: int) -> tuple[float, float]:
    """Median seconds per training step and peak memory (GiB, CUDA only, else 0)."""
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(WhisperConfig(**BASE_SHAPE))
    enable_dynamic_context(model)
    if mode == "lora":
        model = get_peft_model(model, LoraConfig(
            r=32, lora_alpha=64,
            target_modules=["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]))
    model.to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    features = torch.randn(batch, 80, frames, device=device)
    labels = torch.randint(0, 50000, (batch, 30), device=device)
    dtype = torch.bfloat16 if precision == "bf16" else None
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps + 2):  # two warm-up steps
        _sync(device)
        start = time.perf_counter()
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            loss = model(input_features=features, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(device)
        times.append(time.perf_counter() - start)
    measured = sorted(times[2:])
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0
    return measured[len(measured) // 2], peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    args = parser.parse_args()
    for mode in ("lora", "full"):
        for precision in args.precisions:
            full, full_peak = step_time(mode, 3000, precision, args.device, args.batch, args.steps)
            dyn, dyn_peak = step_time(mode, 800, precision, args.device, args.batch, args.steps)
            print(f"{mode} {precision} batch {args.batch} on {args.device}: "
                  f"3000 frames {full * 1000:.1f} ms ({full_peak:.2f} GiB), "
                  f"800 frames {dyn * 1000:.1f} ms ({dyn_peak:.2f} GiB): {full / dyn:.2f}x faster",
                  flush=True)


if __name__ == "__main__":
    main()
