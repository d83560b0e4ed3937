"""GPU training step on a large-v3-turbo-shaped Whisper: whisper-ja's arms vs the HF recipe.

A randomly initialised model in large-v3-turbo's shape (d_model 1280, 32 encoder + 4 decoder
layers, 20 heads, 128 mel bands, 51,866 tokens: about 809M parameters) with the real large-v3
tokenizer (built offline, ``whisper_ja.model.openai_tokenizer``), trained on batches of 16 clips
of 3-8 s (noise audio, Japanese sentences as labels: throughput and memory only, no quality).
Four arms, each in its own process so that peak GPU memory is its own:

- ``lora-bf16``: ``whisper_ja.training.loop.train``, LoRA, bf16 autocast, its defaults
  (dynamic audio context, cached features, length-grouped batches);
- ``full-bf16``: the same, every weight trained;
- ``lora-4bit``: LoRA on a frozen NF4 base (``quantize_base=4bit``, bitsandbytes);
- ``hf-recipe``: the Hugging Face recipe at the same LoRA settings: feature extractor padding
  every clip to 30 s, ``Seq2SeqTrainer``, bf16.

It prints samples/s, peak GPU memory and the ratio whisper-ja / HF recipe. On a machine without
a CUDA GPU it says so and exits 0. About 3-5 minutes on one H100/H200-class GPU.

    .venv/bin/python benchmarks/gpu_train_step.py [--steps 12] [--out runs/gpu_train_step]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

ARMS = ("lora-bf16", "full-bf16", "lora-4bit", "hf-recipe")
TURBO_SHAPE = {"d_model": 1280, "encoder_layers": 32, "decoder_layers": 4, "heads": 20}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/gpu_train_step"))
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per arm")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)  # child process
    return parser.parse_args(argv)


def build_inputs(args: argparse.Namespace) -> None:
    """The random turbo-shaped model folder and a manifest of 3-8 s clips (once)."""
    import soundfile as sf

    from whisper_ja.data.domain import builtin_sentences
    from whisper_ja.data.manifest import Utterance, write_manifest
    from whisper_ja.model.generations import GENERATIONS, random_whisper

    model_dir = args.out / "model"
    if not (model_dir / "config.json").is_file():
        loaded = random_whisper(GENERATIONS["v3"], **TURBO_SHAPE)
        params = sum(p.numel() for p in loaded.model.parameters())
        print(f"model: large-v3-turbo shape, {params / 1e6:.0f}M parameters (random weights)")
        loaded.model.save_pretrained(model_dir)
        loaded.processor.save_pretrained(model_dir)
        loaded.processor.feature_extractor.save_pretrained(model_dir)
    rng = np.random.default_rng(0)
    sentences = [*builtin_sentences("medical"), *builtin_sentences("technical")]
    clips = args.out / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    utterances = []
    for i in range(args.batch_size * args.steps):
        duration = float(rng.uniform(3.0, 8.0))
        path = clips / f"c{i}.wav"
        if not path.is_file():
            sf.write(path, rng.normal(0, 0.05, int(duration * 16000)).astype(np.float32), 16000)
        utterances.append(Utterance(f"c{i}", str(path), sentences[i % len(sentences)],
                                    duration, "synthetic"))
    write_manifest(args.out / "train.jsonl", utterances)


def run_whisper_ja(args: argparse.Namespace) -> dict[str, Any]:
    from whisper_ja.config import load_config
    from whisper_ja.training.loop import TrainConfig, train

    mode = "full" if args.arm == "full-bf16" else "lora"
    overrides = [f"model={args.out / 'model'}", f"out={args.out / args.arm}", f"mode={mode}",
                 "precision=bf16", f"data.train=[{args.out / 'train.jsonl'}]",
                 f"optim.batch_size={args.batch_size}", f"optim.max_steps={args.steps}",
                 f"lora.rank={args.rank}", f"lora.alpha={2 * args.rank}",
                 "run.validate_every=0", "run.validate_at_start=false", "run.save_every=0",
                 "run.tensorboard=false", "run.progress=false", "specaugment.enabled=false"]
    if args.arm == "lora-4bit":
        overrides.append("quantize_base=4bit")
    summary = train(load_config(TrainConfig, overrides=overrides)).summary
    return {"train_s": float(summary["train_time_s"]), "samples": int(summary["samples_seen"])}


def run_hf_recipe(args: argparse.Namespace) -> dict[str, Any]:
    """The Hugging Face recipe: 30 s padding, ``Seq2SeqTrainer``, the same LoRA and batch."""
    from peft import LoraConfig, get_peft_model
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

    from whisper_ja.audio.io import load_audio
    from whisper_ja.data.manifest import read_manifest
    from whisper_ja.model import load_model

    loaded = load_model(args.out / "model", device="cpu")
    processor = loaded.processor
    model = get_peft_model(loaded.model, LoraConfig(
        r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.05,
        target_modules=["q_proj", "v_proj"], bias="none"))
    rows = []
    for utt in read_manifest(args.out / "train.jsonl"):
        features = processor.feature_extractor(load_audio(utt.audio), sampling_rate=16000)
        rows.append({"input_features": features.input_features[0],
                     "labels": processor.tokenizer(utt.text).input_ids[1:]})

    def collate(batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        longest = max(len(r["labels"]) for r in batch)
        labels = torch.full((len(batch), longest), -100, dtype=torch.long)
        for i, r in enumerate(batch):
            labels[i, :len(r["labels"])] = torch.tensor(r["labels"])
        return {"input_features": torch.tensor(np.stack([r["input_features"] for r in batch])),
                "labels": labels}

    training_args = Seq2SeqTrainingArguments(
        output_dir=str(args.out / args.arm), per_device_train_batch_size=args.batch_size,
        max_steps=args.steps, learning_rate=1e-3, bf16=True, save_strategy="no",
        eval_strategy="no", report_to=[], remove_unused_columns=False, label_names=["labels"],
        dataloader_num_workers=0, logging_steps=args.steps)
    trainer = Seq2SeqTrainer(model=model, args=training_args, train_dataset=rows,
                             data_collator=collate)
    output = trainer.train()
    return {"train_s": float(output.metrics["train_runtime"]),
            "samples": args.steps * args.batch_size}


def child(args: argparse.Namespace) -> None:
    torch.cuda.reset_peak_memory_stats()
    started = time.monotonic()
    result = (run_hf_recipe if args.arm == "hf-recipe" else run_whisper_ja)(args)
    result["wall_s"] = time.monotonic() - started
    result["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    (args.out / f"arm-{args.arm}.json").write_text(json.dumps(result))


def report(args: argparse.Namespace, results: dict[str, dict[str, Any]]) -> str:
    reference = results.get("hf-recipe")
    lines = [f"GPU: {torch.cuda.get_device_name(0)}; batch {args.batch_size} of 3-8 s clips, "
             f"{args.steps} steps, LoRA r={args.rank} on q,v",
             f"{'arm':<10} {'samples/s':>10} {'peak GPU MiB':>13} {'x HF recipe':>12}"]
    for name, arm in results.items():
        rate = arm["samples"] / arm["train_s"]
        ratio = rate / (reference["samples"] / reference["train_s"]) if reference else float("nan")
        lines.append(f"{name:<10} {rate:>10.1f} {arm['peak_gpu_mib']:>13.0f} {ratio:>12.2f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_train_step: no CUDA GPU is visible on this machine; nothing measured "
              "(run it where a GPU is available).")
        return 0
    if args.arm:
        child(args)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    build_inputs(args)
    results: dict[str, dict[str, Any]] = {}
    for arm in args.arms.split(","):
        command = [sys.executable, __file__, "--arm", arm, "--out", str(args.out),
                   "--steps", str(args.steps), "--batch-size", str(args.batch_size),
                   "--rank", str(args.rank)]
        done = subprocess.run(command, check=False)
        path = args.out / f"arm-{arm}.json"
        if done.returncode != 0 or not path.is_file():
            print(f"arm {arm} failed (exit {done.returncode})")
            continue
        results[arm] = json.loads(path.read_text())
    text = report(args, results)
    print(text)
    (args.out / "report.txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
