"""Transcription speed and CER: transformers at 30 s, dynamic context, faster-whisper int8.

One model, one set of clips, three ways of running it, side by side in one run:

- ``transformers 30 s``: whisper-ja's stock decoding (waveform padded to 30 s), batched;
- ``dynamic``: whisper-ja decoding with dynamic context (encoder on the batch's longest clip,
  rounded up to 100 frames, floor 800), batches of similar length; only when the model was
  fine-tuned with dynamic context, or with ``--force-dynamic``;
- ``faster-whisper int8``: the model exported by ``whisper-ja export --to ct2 --quantization
  int8``, run by ``whisper-ja transcribe --backend ct2``'s code (one file at a time, as
  faster-whisper transcribes; features padded to 30 s).

All greedy, Japanese forced, the same CPU threads. Prints the real-time factor (seconds of
decoding per second of audio, lower is faster; model loading and export not counted, one
warm-up clip per arm not timed) and the CER with its 95 % bootstrap interval. By default the
clips are SYNTHETIC speech (Open JTalk voices reading Tatoeba sentences).

    .venv/bin/python benchmarks/transcribe_speed.py                       # untuned whisper-base
    .venv/bin/python benchmarks/transcribe_speed.py --adapter runs/lora   # a fine-tuned adapter
    .venv/bin/python benchmarks/transcribe_speed.py --manifest test.jsonl --clips 0
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="openai/whisper-base")
    parser.add_argument("--adapter", type=Path, default=None, help="LoRA adapter folder")
    parser.add_argument("--manifest", type=Path, default=None,
                        help="test manifest (default: synthesize --clips Open JTalk clips)")
    parser.add_argument("--clips", type=int, default=24,
                        help="clips to use (0 = the whole manifest)")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/transcribe_speed"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for every arm")
    parser.add_argument("--force-dynamic", action="store_true",
                        help="also run dynamic context on a model not fine-tuned with it")
    return parser.parse_args(argv)


def test_clips(args: argparse.Namespace) -> tuple[list[Path], list[str], bool]:
    """Audio paths, references, and whether the speech is synthetic."""
    from whisper_ja.data.manifest import read_manifest
    from whisper_ja.data.synth import synthesize_corpus

    manifest = args.manifest
    if manifest is None:
        manifest = synthesize_corpus(args.out / "synth", size=args.clips, seed=11,
                                     voices=("openjtalk:0", "openjtalk:+3"), progress=False)
    utts = read_manifest(manifest)
    utts = utts[:args.clips] if args.clips else utts
    synthetic = all(u.corpus == "synthetic" for u in utts) or args.manifest is None
    return [Path(u.audio) for u in utts], [u.text for u in utts], synthetic


def decode_dynamic(model: Any, processor: Any, audios: Sequence[np.ndarray],
                   batch_size: int) -> list[Any]:
    """whisper-ja dynamic-context decoding: batches of similar length, encoder on what they need."""
    from whisper_ja.audio.features import ContextPolicy, context_frames
    from whisper_ja.inference.decoding import DecodeOptions, decode_audio

    policy = ContextPolicy()
    order = sorted(range(len(audios)), key=lambda i: len(audios[i]))
    results: list[Any] = [None] * len(audios)
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        frames = context_frames(-(-max(len(audios[i]) for i in batch) // 160), policy)
        decoded = decode_audio(model, processor, [audios[i] for i in batch],
                               DecodeOptions(context_frames=frames, batch_size=len(batch)),
                               progress=False)
        for i, result in zip(batch, decoded, strict=True):
            results[i] = result
    return results


def timed(run: Callable[[], list[str]]) -> tuple[list[str], float]:
    start = time.perf_counter()
    texts = run()
    return texts, time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    from whisper_ja.audio.io import load_audio
    from whisper_ja.export.writer import ExportConfig, export_model
    from whisper_ja.inference.ct2_clips import transcribe_ct2
    from whisper_ja.inference.decoding import DecodeOptions, decode_audio
    from whisper_ja.inference.faster import load_faster_whisper
    from whisper_ja.model import load_model
    from whisper_ja.model.context import apply_saved_context, enable_dynamic_context
    from whisper_ja.text.bootstrap import metric_interval

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    paths, refs, synthetic = test_clips(args)
    audios = [load_audio(p) for p in paths]
    audio_s = sum(len(a) for a in audios) / 16000

    loaded = load_model(args.model, adapter=args.adapter)
    model = loaded.model.merge_and_unload() if args.adapter else loaded.model
    tuned_dynamic = apply_saved_context(model, args.adapter)
    with tempfile.TemporaryDirectory(prefix="ct2-int8-", dir=args.out) as ct2_dir:
        ct2 = Path(ct2_dir) / "model"
        export_model(ExportConfig(model=args.model, adapter=args.adapter, to="ct2", out=ct2,
                                  quantization="int8"))
        load_faster_whisper(str(ct2), "int8", args.threads)

        def full() -> list[str]:
            options = DecodeOptions(batch_size=args.batch_size)
            return [r.text for r in decode_audio(model, loaded.processor, audios, options,
                                                 progress=False)]

        def dynamic() -> list[str]:
            return [r.text for r in decode_dynamic(model, loaded.processor, audios,
                                                   args.batch_size)]

        def faster() -> list[str]:
            return transcribe_ct2(paths, str(ct2), compute_type="int8",
                                  cpu_threads=args.threads, progress=False)

        # 30 s first; dynamic context leaves 3000-frame decoding bit-identical anyway.
        arms: list[tuple[str, str, Callable[[], list[str]]]] = [
            ("transformers", f"30 s, batch {args.batch_size}", full)]
        if tuned_dynamic or args.force_dynamic:
            enable_dynamic_context(model)
            arms.append(("whisper-ja", f"dynamic, batch {args.batch_size}", dynamic))
        arms.append(("faster-whisper int8", "30 s (features), 1 file", faster))
        rows, report = [], {}
        for backend, context, run in arms:
            warm_up = audios[:1] if backend != "faster-whisper int8" else None
            if warm_up is not None:
                decode_audio(model, loaded.processor, warm_up, progress=False)
            else:
                transcribe_ct2(paths[:1], str(ct2), cpu_threads=args.threads, progress=False)
            texts, seconds = timed(run)
            interval = metric_interval(refs, texts)
            report[f"{backend} / {context}"] = {"rtf": seconds / audio_s, "seconds": seconds,
                                                "cer": interval.to_dict()}
            rows.append(f"{backend:<20} {context:<26} {seconds / audio_s:>6.3f} {seconds:>7.1f} "
                        f"{interval.value:>8.4f} [{interval.low:.4f}, {interval.high:.4f}]")
    if not (tuned_dynamic or args.force_dynamic):
        rows.append("(dynamic context skipped: the model was not fine-tuned with it; "
                    "--force-dynamic runs it anyway)")
    label = "SYNTHETIC speech" if synthetic else "speech"
    print(f"\n{label}: {len(audios)} clips, {audio_s:.0f} s of audio; model {args.model}"
          + (f" + adapter {args.adapter}" if args.adapter else "")
          + f"; greedy, Japanese forced, {args.threads} threads")
    print(f"{'backend':<20} {'context':<26} {'RTF':>6} {'sec':>7} {'CER [95% CI]':>26}")
    print("\n".join(rows))
    (args.out / "transcribe_speed.json").write_text(json.dumps(
        {"synthetic": synthetic, "clips": len(audios), "audio_seconds": audio_s,
         "model": args.model, "adapter": str(args.adapter or ""), "threads": args.threads,
         "arms": report}, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
