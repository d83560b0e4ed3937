"""Decoding speed and CER: 30-second context against dynamic context, side by side.

Decodes the test split written by ``train_throughput.py`` (SYNTHETIC speech) four ways: the
untuned whisper-base and the whisper-ja model fine-tuned there with dynamic context, each with
the standard 30-s encoder input and with dynamic context (the batch's longest clip rounded up to
100 frames, floor 800). Greedy, Japanese forced, batch 8. Prints the real-time factor (decoding
seconds per audio second; lower is faster), CER with its 95% bootstrap interval, clips that
looped, and the paired CER difference dynamic - 30 s for each model.

    .venv/bin/python benchmarks/train_throughput.py   # first: corpus and fine-tuned model
    .venv/bin/python benchmarks/decode_speed.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import decode_dynamic, decode_standard, load_audios  # noqa: E402


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"),
                        help="train_throughput.py's output folder")
    parser.add_argument("--model", default="openai/whisper-base")
    parser.add_argument("--adapter", type=Path, default=None,
                        help="fine-tuned model (default: OUT/whisper-ja)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--min-frames", type=int, default=800)
    parser.add_argument("--bucket-frames", type=int, default=100)
    return parser.parse_args(argv)


def timed(decode: Callable[..., list[Any]], *args: Any) -> tuple[list[Any], float]:
    start = time.monotonic()
    results = decode(*args)
    return results, time.monotonic() - start


def main(argv: Sequence[str] | None = None) -> int:
    from whisper_ja.audio.features import ContextPolicy
    from whisper_ja.model import load_model
    from whisper_ja.model.context import (
        apply_saved_context,
        enable_dynamic_context,
        uses_dynamic_context,
    )
    from whisper_ja.text.bootstrap import metric_interval, paired_bootstrap

    args = parse_args(argv)
    args.out = args.out.resolve()  # manifests hold paths relative to their folder
    adapter = args.adapter or args.out / "whisper-ja"
    test = args.out / "test.jsonl"
    if not test.is_file() or not (adapter / "adapter_config.json").is_file():
        raise SystemExit(f"need {test} and a fine-tuned adapter in {adapter}: run "
                         "benchmarks/train_throughput.py first")
    refs, audios = load_audios(test)
    audio_s = sum(len(a) for a in audios) / 16000
    policy = ContextPolicy(min_frames=args.min_frames, bucket_frames=args.bucket_frames)
    rows, report = [], {}
    for label in ("untuned", "fine-tuned"):
        loaded = load_model(args.model, adapter=None if label == "untuned" else adapter)
        model, processor = loaded.model, loaded.processor
        if label == "untuned":
            enable_dynamic_context(model)  # the user asks for it; 30 s stays bit-identical
        else:
            apply_saved_context(model, adapter)
            # Merged, as deployed: unmerged LoRA layers cost time on every generated token.
            model = model.merge_and_unload()
        if not uses_dynamic_context(model):
            raise SystemExit(f"{label}: dynamic context was not enabled")
        decode_standard(model, processor, audios[:1], 1)  # warm-up, not timed
        full, full_s = timed(decode_standard, model, processor, audios, args.batch_size)
        dyn, dyn_s = timed(decode_dynamic, model, processor, audios, args.batch_size, policy)
        paired = paired_bootstrap(refs, [r.text for r in full], [r.text for r in dyn])
        report[label] = {"paired_dynamic_minus_30s": paired.to_dict()}
        for mode, results, seconds in (("30 s", full, full_s), ("dynamic", dyn, dyn_s)):
            interval = metric_interval(refs, [r.text for r in results])
            loops = sum(r.looped for r in results)
            report[label][mode] = {"rtf": seconds / audio_s, "seconds": seconds,
                                   "cer": interval.to_dict(), "looped": loops}
            rows.append(f"{label:<11} {mode:<8} {seconds / audio_s:>7.3f} {seconds:>7.1f} "
                        f"{interval.value:>8.4f} [{interval.low:.4f}, {interval.high:.4f}] "
                        f"{loops:>6}")
        rows.append(f"{'':<11} dynamic - 30 s CER {paired.delta:+.4f} "
                    f"[{paired.low:+.4f}, {paired.high:+.4f}]; speed-up "
                    f"{full_s / dyn_s:.2f}x")
    print(f"\nSYNTHETIC speech: {len(audios)} test clips, {audio_s:.0f} s of audio, greedy, "
          f"batch {args.batch_size}, {torch.get_num_threads()} threads, dynamic context = "
          f"longest clip rounded to {policy.bucket_frames} frames, floor {policy.min_frames}")
    print(f"{'model':<11} {'context':<8} {'RTF':>7} {'sec':>7} {'CER [95% CI]':>26} {'looped':>6}")
    print("\n".join(rows))
    (args.out / "decode_speed.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
