"""Training throughput: the Hugging Face recipe against whisper-ja, side by side in one run.

Same synthetic Japanese clips (Open JTalk voices, a few seconds each; SYNTHETIC speech), same
model (offline whisper-base via ``whisper_ja.model.load_model``), same LoRA settings, learning
rate, schedule, batch size, seed, epochs and precision:

(a) reference: the Hugging Face fine-tuning recipe: ``WhisperFeatureExtractor`` padding every clip
    to 30 s, a ``datasets.Dataset``, the usual label collator, ``Seq2SeqTrainer``;
(b) whisper-ja: ``whisper_ja.training.loop.train`` with its defaults (dynamic audio context, cached
    log-mel features, length-grouped batches); SpecAugment off, as in (a); at ``--precision``;
(c) whisper-ja-auto: the same at whisper-ja's default precision ``auto`` (bf16 autocast on CPUs
    with AVX512-bf16), against the recipe's CPU default, fp32.

Each arm runs in its own process (so peak RSS is its own). After training, both decode the same
validation clips greedily with Japanese forced, each the way it was trained (reference: 30 s;
whisper-ja: dynamic context), and the script prints samples/s, their ratio, peak memory,
validation CER with bootstrap intervals, achieved model FLOP/s against the measured torch.mm peak.

    .venv/bin/python benchmarks/train_throughput.py                  # ~10 min on 2 cores
    .venv/bin/python benchmarks/train_throughput.py --train-clips 400 --epochs 3   # bigger
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

OPENJTALK_VOICES = ("openjtalk:-3", "openjtalk:-1", "openjtalk:0", "openjtalk:+2", "openjtalk:+4")
ARMS = ("reference", "whisper-ja", "whisper-ja-auto")
"""whisper-ja runs at ``--precision`` (like the reference) and at its own default, ``auto``
(bf16 autocast where the CPU has it)."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    parser.add_argument("--model", default="openai/whisper-base")
    parser.add_argument("--train-clips", type=int, default=48)
    parser.add_argument("--val-clips", type=int, default=32)
    parser.add_argument("--test-clips", type=int, default=32, help="for decode_speed.py")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--alpha", type=float, default=64.0)
    parser.add_argument("--lora-dropout", type=float, default=0.05)
    parser.add_argument("--targets", default="q_proj,v_proj")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arms", default=",".join(ARMS),
                        help="arms to run now; a missing one is read from an earlier run in OUT")
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)  # child process
    return parser.parse_args(argv)


# ---------------------------------------------------------------- data and measurements
def make_corpus(args: argparse.Namespace) -> dict[str, Path]:
    """Synthesize (or reuse) the clips and write train/validation/test manifests."""
    from whisper_ja.data.manifest import read_manifest, write_manifest
    from whisper_ja.data.synth import synthesize_corpus

    total = args.train_clips + args.val_clips + args.test_clips
    manifest = synthesize_corpus(args.out / "corpus", size=total, seed=args.seed,
                                 voices=OPENJTALK_VOICES)
    utts = read_manifest(manifest)
    if len(utts) < total:
        raise SystemExit(f"synthesis gave {len(utts)} of {total} clips")
    cuts = {"train": utts[:args.train_clips],
            "validation": utts[args.train_clips:args.train_clips + args.val_clips],
            "test": utts[args.train_clips + args.val_clips:total]}
    paths = {}
    for split, items in cuts.items():
        paths[split] = args.out / f"{split}.jsonl"
        write_manifest(paths[split], items)
    return paths


def matmul_peak(sizes: Sequence[int] = (1024, 2048), repeats: int = 5) -> dict[str, float]:
    """Measured torch.mm GFLOP/s (median of ``repeats`` after a warm-up), fp32 and bf16."""
    result = {}
    for dtype in (torch.float32, torch.bfloat16):
        best = 0.0
        for n in sizes:
            a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
            torch.mm(a, b)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                torch.mm(a, b)
                times.append(time.perf_counter() - start)
            best = max(best, 2 * n**3 / statistics.median(times) / 1e9)
        result[str(dtype).removeprefix("torch.")] = round(best, 1)
    return result


def flops_per_sample(args: argparse.Namespace, frames: Sequence[int]) -> dict[int, float]:
    """Counted FLOPs of one training sample (forward + backward, LoRA) at each frame count."""
    from peft import LoraConfig, get_peft_model
    from torch.utils.flop_counter import FlopCounterMode

    from whisper_ja.model import load_model
    from whisper_ja.model.context import enable_dynamic_context

    model = load_model(args.model).model
    enable_dynamic_context(model)  # identical to stock at 3000 frames; lets us count shorter
    model = get_peft_model(model, LoraConfig(r=args.rank, lora_alpha=args.alpha,
                                             target_modules=args.targets.split(",")))
    model.train()
    labels = torch.tensor([[50258, 50266, 50359, 50363] + [1000] * 20 + [50257]])
    counted = {}
    for count in frames:
        with FlopCounterMode(display=False) as counter:
            model(input_features=torch.randn(1, 80, count), labels=labels).loss.backward()
        counted[count] = float(counter.get_total_flops())
    return counted


# ---------------------------------------------------------------- decoding shared by both arms
def decode_dynamic(model: Any, processor: Any, audios: Sequence[np.ndarray], batch_size: int,
                   policy: Any = None) -> list[Any]:
    """whisper-ja decoding: the engine's clips on transformers, dynamic context."""
    from whisper_ja.audio.features import ContextPolicy
    from whisper_ja.inference.engine import live_engine
    from whisper_ja.inference.options import DecodingOptions, RuntimeSettings

    options = DecodingOptions(batch_size=batch_size)
    runtime = RuntimeSettings(backend="transformers", context="dynamic")
    with live_engine(model, processor, runtime, options, policy or ContextPolicy()) as engine:
        return list(engine.decode_clips(audios))


def decode_standard(model: Any, processor: Any, audios: Sequence[np.ndarray],
                    batch_size: int) -> list[Any]:
    """Stock decoding: 30-s features."""
    from whisper_ja.audio.features import ContextPolicy
    from whisper_ja.inference.engine import live_engine
    from whisper_ja.inference.options import DecodingOptions, RuntimeSettings

    options = DecodingOptions(batch_size=batch_size)
    runtime = RuntimeSettings(backend="transformers", context="full")
    with live_engine(model, processor, runtime, options, ContextPolicy(dynamic=False)) as engine:
        return list(engine.decode_clips(audios))


def load_audios(manifest: Path) -> tuple[list[str], list[np.ndarray]]:
    from whisper_ja.audio.io import load_audio
    from whisper_ja.data.manifest import read_manifest

    utts = read_manifest(manifest)
    return [u.text for u in utts], [load_audio(u.audio) for u in utts]


# ---------------------------------------------------------------- the two arms (child processes)
def run_reference(args: argparse.Namespace) -> dict[str, Any]:
    """The Hugging Face recipe (feature extractor padding to 30 s, Seq2SeqTrainer)."""
    import datasets
    from peft import LoraConfig, get_peft_model
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

    from whisper_ja.audio.io import load_audio
    from whisper_ja.data.manifest import read_manifest
    from whisper_ja.model import load_model

    loaded = load_model(args.model)
    processor = loaded.processor
    model = get_peft_model(loaded.model, LoraConfig(
        r=args.rank, lora_alpha=args.alpha, lora_dropout=args.lora_dropout,
        target_modules=args.targets.split(","), bias="none"))
    started = time.monotonic()
    rows = [{"audio": u.audio, "text": u.text} for u in read_manifest(args.out / "train.jsonl")]

    def prepare(row: dict[str, Any]) -> dict[str, Any]:
        audio = load_audio(row["audio"])
        return {"input_features": processor.feature_extractor(
                    audio, sampling_rate=16000).input_features[0],
                "labels": processor.tokenizer(row["text"]).input_ids}

    train_set = datasets.Dataset.from_list(rows).map(prepare, remove_columns=["audio", "text"])
    prep_s = time.monotonic() - started
    start_id = model.config.decoder_start_token_id

    def collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = processor.feature_extractor.pad(
            [{"input_features": f["input_features"]} for f in features], return_tensors="pt")
        # The recipe's tokenizer.pad + masked_fill(-100), by hand: the offline tokenizer has no
        # pad token.
        longest = max(len(f["labels"]) for f in features)
        ids = torch.full((len(features), longest), -100, dtype=torch.long)
        for row, f in enumerate(features):
            ids[row, :len(f["labels"])] = torch.tensor(f["labels"])
        if (ids[:, 0] == start_id).all():  # the model prepends it again when shifting right
            ids = ids[:, 1:]
        batch["labels"] = ids
        return batch

    training_args = Seq2SeqTrainingArguments(
        output_dir=str(args.out / "reference"), per_device_train_batch_size=args.batch_size,
        num_train_epochs=args.epochs, learning_rate=args.lr, lr_scheduler_type="linear",
        warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, optim="adamw_torch",
        bf16=args.precision == "bf16", use_cpu=True, save_strategy="no", eval_strategy="no",
        report_to=[], logging_steps=5, remove_unused_columns=False, label_names=["labels"],
        seed=args.seed, dataloader_num_workers=0)
    trainer = Seq2SeqTrainer(model=model, args=training_args, train_dataset=train_set,
                             data_collator=collate)
    output = trainer.train()
    train_s = float(output.metrics["train_runtime"])
    model.eval()
    refs, audios = load_audios(args.out / "validation.jsonl")
    started = time.monotonic()
    hyps = [r.text for r in decode_standard(model, processor, audios, args.batch_size)]
    return {"train_s": train_s, "samples": len(train_set) * args.epochs, "prep_s": prep_s,
            "decode_s": time.monotonic() - started, "hyps": hyps, "refs": refs,
            "context_frames": [3000] * len(train_set), "precision": args.precision}


def run_whisper_ja(args: argparse.Namespace) -> dict[str, Any]:
    """whisper-ja's own training entry point with its efficiency defaults."""
    from whisper_ja.audio.features import ContextPolicy, context_frames
    from whisper_ja.audio.specaugment import SpecAugmentConfig
    from whisper_ja.data.manifest import read_manifest
    from whisper_ja.model import load_model
    from whisper_ja.model.context import apply_saved_context, uses_dynamic_context
    from whisper_ja.training.loop import resolve_precision, train
    from whisper_ja.training.settings import (
        DataSection,
        LoraSection,
        OptimSection,
        RunSection,
        TrainConfig,
    )

    out = args.out / args.arm
    precision = "auto" if args.arm == "whisper-ja-auto" else args.precision
    config = TrainConfig(
        model=args.model, mode="lora", out=out, seed=args.seed, precision=precision,
        data=DataSection(train=(args.out / "train.jsonl",)),
        lora=LoraSection(rank=args.rank, alpha=args.alpha, dropout=args.lora_dropout,
                         target_modules=tuple(args.targets.split(","))),
        specaugment=SpecAugmentConfig(enabled=False),
        optim=OptimSection(batch_size=args.batch_size, epochs=args.epochs, lr=args.lr,
                           schedule="linear", warmup_steps=0, weight_decay=0.0,
                           max_grad_norm=1.0),
        run=RunSection(validate_every=0, validate_at_start=False, save_every=0,
                       tensorboard=False))
    summary = train(config).summary
    loaded = load_model(args.model, adapter=out)
    apply_saved_context(loaded.model, out)  # no-op if the loader already did it
    if not uses_dynamic_context(loaded.model):
        raise SystemExit("the saved whisper-ja model did not come back with dynamic context")
    refs, audios = load_audios(args.out / "validation.jsonl")
    started = time.monotonic()
    hyps = [r.text for r in decode_dynamic(loaded.model, loaded.processor, audios,
                                           args.batch_size)]
    frames = [context_frames(-(-round(u.duration * 16000) // 160), ContextPolicy())
              for u in read_manifest(args.out / "train.jsonl")]
    return {"train_s": float(summary["train_time_s"]), "samples": int(summary["samples_seen"]),
            "prep_s": 0.0, "decode_s": time.monotonic() - started, "hyps": hyps, "refs": refs,
            "context_frames": frames, "summary_peak_mb": summary["peak_memory_mb"],
            "precision": "fp32" if resolve_precision(precision) == "no" else "bf16"}


def child(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    result = (run_reference if args.arm == "reference" else run_whisper_ja)(args)
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    (args.out / f"arm-{args.arm}.json").write_text(json.dumps(result, ensure_ascii=False))


# ---------------------------------------------------------------- the parent: run and report
def report(args: argparse.Namespace, arms: dict[str, dict[str, Any]], peak: dict[str, float],
           flops: dict[int, float]) -> dict[str, Any]:
    from whisper_ja.text.bootstrap import metric_interval, paired_bootstrap

    ref = arms["reference"]
    refs = ref["refs"]
    lines = ["", f"SYNTHETIC speech (Open JTalk), {args.train_clips} train / {args.val_clips} "
             f"validation clips, {args.epochs} epochs, batch {args.batch_size}, LoRA r="
             f"{args.rank} on {args.targets}, {torch.get_num_threads()} threads",
             f"torch.mm peak: fp32 {peak['float32']} GFLOP/s, bf16 {peak['bfloat16']} GFLOP/s", "",
             f"{'arm':<16} {'prec':<5} {'samples/s':>9} {'train s':>8} {'peak RSS':>9} "
             f"{'val CER [95% CI]':>24} {'model GFLOP/s':>13} {'% of peak':>9}"]
    table: dict[str, Any] = {}
    for name, arm in arms.items():
        arm.setdefault("precision", args.precision)  # arms from runs before it was recorded
        rate = arm["samples"] / arm["train_s"]
        achieved = rate * statistics.mean(flops[f] for f in arm["context_frames"]) / 1e9
        interval = metric_interval(refs, arm["hyps"])
        table[name] = {"samples_per_s": rate, "train_s": arm["train_s"],
                       "precision": arm["precision"], "peak_rss_mb": arm["peak_rss_mb"],
                       "val_cer": interval.to_dict(), "model_gflops_per_s": achieved,
                       "prep_s": arm["prep_s"], "decode_s": arm["decode_s"],
                       "finished": arm.get("finished")}
        share = achieved / peak["bfloat16" if arm["precision"] == "bf16" else "float32"]
        lines.append(f"{name:<16} {arm['precision']:<5} {rate:>9.3f} {arm['train_s']:>8.1f} "
                     f"{arm['peak_rss_mb'] / 1024:>7.2f}Gi {interval.value:>8.4f} "
                     f"[{interval.low:.4f}, {interval.high:.4f}] {achieved:>13.1f} "
                     f"{100 * share:>8.1f}%")
    lines.append("")
    for name, arm in arms.items():
        if name == "reference":
            continue
        paired = paired_bootstrap(refs, ref["hyps"], arm["hyps"])
        ratio = table[name]["samples_per_s"] / table["reference"]["samples_per_s"]
        table[name] |= {"throughput_ratio": ratio, "paired_cer_vs_reference": paired.to_dict()}
        lines += [f"{name} / reference: throughput {ratio:.2f}x (target >= 3x), peak RSS "
                  f"{arm['peak_rss_mb'] / ref['peak_rss_mb']:.2f}x, validation CER delta "
                  f"{paired.delta:+.4f} [{paired.low:+.4f}, {paired.high:+.4f}] (95% paired "
                  "bootstrap)"]
    lines += [f"feature preparation is outside samples/s for all arms (reference: "
              f"{ref['prep_s']:.1f} s of 30-s features; whisper-ja: cached log-mel)",
              "model FLOPs counted per sample (fwd+bwd): " + ", ".join(
                  f"{k} frames {v / 1e9:.1f} GFLOP" for k, v in sorted(flops.items())),
              "arms finished at: " + ", ".join(f"{n} {a.get('finished')}"
                                               for n, a in arms.items())]
    print("\n".join(lines))
    return {"settings": vars(args) | {"out": str(args.out)}, "matmul_peak_gflops": peak,
            "arms": table, "flops_per_sample": flops, "synthetic_speech": True}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.out = args.out.resolve()  # manifests hold paths relative to their folder
    args.out.mkdir(parents=True, exist_ok=True)
    if args.arm:
        child(args)
        return 0
    make_corpus(args)
    peak = matmul_peak()
    selected = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = sorted(set(selected) - set(ARMS))
    if unknown:
        raise SystemExit(f"--arms: unknown {unknown}; choose from {list(ARMS)}")
    arms = {}
    for arm in ARMS:
        path = args.out / f"arm-{arm}.json"
        if arm in selected:
            print(f"--- running {arm} ---", flush=True)
            command = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]),
                       "--arm", arm, "--out", str(args.out)]
            subprocess.run(command, check=True,
                           env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        elif not path.is_file():
            continue
        arms[arm] = json.loads(path.read_text())
    if "reference" not in arms:
        raise SystemExit("no reference arm: run with --arms reference first")
    frames = sorted({f for arm in arms.values() for f in arm["context_frames"]})
    result = report(args, arms, peak, flops_per_sample(args, frames))
    (args.out / "train_throughput.json").write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
