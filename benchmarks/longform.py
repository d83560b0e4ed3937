"""Long-form transcription: whisper-ja against faster-whisper on the same model and recordings.

One model, one long-form set, six ways of running it, side by side in one run:

- ``whisper-ja sequential``: Silero VAD, 30 s windows seeking by the last timestamp,
  previous text as prompt (transformers, float32);
- ``whisper-ja batched``: VAD stretches joined into windows of at most 30 s, decoded together,
  segments cut at sentence pauses and snapped onto speech (``--no-pauses``: not);
- ``faster-whisper``: its ``transcribe`` with ``vad_filter=True`` (the model exported by
  ``whisper-ja export --to ct2``, int8 by default, as users run it);
- ``faster-whisper batched``: its stock ``BatchedInferencePipeline`` (VAD on), the reference;
- ``whisper-ja ct2 batched``: whisper-ja's batched windows and timestamp parsing on CTranslate2
  (``transcribe --backend ct2 longform.mode=batched``), on the same export as faster-whisper;
- ``whisper-ja ct2 batched float32``: the same on an unquantized export (the precision of the
  transformers arms).

All greedy, Japanese forced, the same CPU threads. The recordings are made by
``make-longform`` from SYNTHETIC speech (Open JTalk voices reading Tatoeba sentences): pauses of
0.2-1.5 s and a noise-only stretch. Prints CER, boundary F1 (segment starts at ±0.5 s), median
start error, characters over the noise and wall time relative to faster-whisper; model loading
and export are not timed, one warm-up file per arm is not timed.

    .venv/bin/python benchmarks/longform.py --sentences 24 --max-seconds 90
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="openai/whisper-base")
    parser.add_argument("--adapter", type=Path, default=None, help="LoRA adapter folder")
    parser.add_argument("--sentences", type=int, default=24, help="synthetic sentences used")
    parser.add_argument("--max-seconds", type=float, default=90.0, help="longest recording")
    parser.add_argument("--compute-type", default="int8", help="faster-whisper compute type")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for every arm")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/longform"))
    parser.add_argument("--arms", nargs="+", default=None, metavar="NAME",
                        help="run only these arms (names as in the table; default: all)")
    parser.add_argument("--max-gap", type=float, default=None,
                        help="whisper-ja batched arms: VAD stretches closer than this share a "
                             "window (s; default: VadSettings' own)")
    parser.add_argument("--no-pauses", action="store_true",
                        help="whisper-ja batched arms: no pause pass (segments neither cut at "
                             "sentence pauses nor snapped onto speech)")
    return parser.parse_args(argv)


def recordings(args: argparse.Namespace) -> list[Any]:
    """The long-form set: synthetic sentences joined by ``make_longform``."""
    from whisper_ja.data.longform import LongformSettings, make_longform
    from whisper_ja.data.manifest import read_manifest
    from whisper_ja.data.synth import synthesize_corpus

    manifest = synthesize_corpus(args.out / "synth", size=args.sentences, seed=21,
                                 voices=("openjtalk:0", "openjtalk:+3"), progress=False)
    settings = LongformSettings(max_seconds=args.max_seconds, noise_stretches=1, seed=1)
    return make_longform(read_manifest(manifest), args.out / "audio", settings)


def run_arm(transcribe: Callable[[np.ndarray], Iterable[Any]], audios: list[np.ndarray],
            ) -> tuple[list[list[Any]], float]:
    """Segments of every recording and the wall time (after one untimed warm-up)."""
    list(transcribe(audios[0][: 16000 * 5]))
    start = time.perf_counter()
    segments = [list(transcribe(audio)) for audio in audios]
    return segments, time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    from whisper_ja.audio.io import load_audio
    from whisper_ja.evaluation.longform import score_file, summarize
    from whisper_ja.export.writer import ExportConfig, export_model
    from whisper_ja.inference.decoding import DecodeOptions
    from whisper_ja.inference.faster_longform import ct2_segments, faster_whisper_batched
    from whisper_ja.inference.longform import LongformOptions, transcribe_segments
    from whisper_ja.inference.pause_split import PauseSettings
    from whisper_ja.inference.vad import VadSettings
    from whisper_ja.model import load_model

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    utts = recordings(args)
    audios = [load_audio(u.audio) for u in utts]
    hours = sum(a.size for a in audios) / 16000 / 3600
    loaded = load_model(args.model, adapter=args.adapter)
    options = DecodeOptions(max_new_tokens=224, batch_size=8)
    vad = VadSettings() if args.max_gap is None else VadSettings(max_gap_s=args.max_gap)
    batched = LongformOptions(mode="batched", pauses=PauseSettings(split=False, snap_s=0.0)
                              if args.no_pauses else PauseSettings())
    results: dict[str, Any] = {}
    timed: dict[str, list[list[list[Any]]]] = {}
    with tempfile.TemporaryDirectory(prefix="ct2-", dir=args.out) as ct2_dir:
        ct2, ct2_float32 = str(Path(ct2_dir) / "model"), str(Path(ct2_dir) / "float32")
        export_model(ExportConfig(model=args.model, adapter=args.adapter, to="ct2",
                                  out=Path(ct2), quantization=args.compute_type))
        # Unquantized too: whisper-ja's ct2 path at the precision of the transformers arms.
        export_model(ExportConfig(model=args.model, adapter=args.adapter, to="ct2",
                                  out=Path(ct2_float32)))
        arms: dict[str, Callable[[np.ndarray], Iterable[Any]]] = {
            "whisper-ja sequential": lambda a: transcribe_segments(
                a, loaded.model, loaded.processor, LongformOptions(), options),
            "whisper-ja batched": lambda a: transcribe_segments(
                a, loaded.model, loaded.processor, batched, options, vad),
            "faster-whisper": lambda a: ct2_segments(
                a, ct2, LongformOptions(), options, compute_type=args.compute_type,
                cpu_threads=args.threads),
            "faster-whisper batched": lambda a: faster_whisper_batched(
                a, ct2, LongformOptions(mode="batched"), options,
                compute_type=args.compute_type, cpu_threads=args.threads),
            "whisper-ja ct2 batched": lambda a: ct2_segments(
                a, ct2, batched, options, vad,
                compute_type=args.compute_type, cpu_threads=args.threads),
            "whisper-ja ct2 batched float32": lambda a: ct2_segments(
                a, ct2_float32, batched, options, vad,
                compute_type="float32", cpu_threads=args.threads),
        }
        unknown = sorted(set(args.arms or ()) - set(arms))
        if unknown:
            raise SystemExit(f"--arms: unknown {unknown}; choose from {sorted(arms)}")
        for name, arm in arms.items():
            if args.arms and name not in args.arms:
                continue
            segments, seconds = run_arm(arm, audios)
            scores = [score_file(u, s) for u, s in zip(utts, segments, strict=True)]
            results[name] = {**summarize(scores, 200), "wall_s": seconds}
            # every segment, so arms meant to agree (float32 ct2 and transformers) can be diffed
            timed[name] = [[[s.start, s.end, s.text] for s in found] for found in segments]
            print(f"{name}: CER {results[name]['cer']:.4f}, F1 "
                  f"{results[name]['boundary_f1']:.3f}, {seconds:.1f} s", flush=True)
    against = "faster-whisper" if "faster-whisper" in results else next(iter(results))
    reference = results[against]["wall_s"]
    lines = [f"Long-form, SYNTHETIC speech: {len(utts)} recordings, {hours * 60:.1f} min, "
             f"{sum(len(u.segments) for u in utts)} sentences; {args.model}"
             f"{' + ' + str(args.adapter) if args.adapter else ''}; {args.threads} threads", "",
             "| system | CER | boundary F1 | segments | start error (median ms) | "
             f"chars over noise | wall time vs {against} |", "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        error = r["start_error_median_ms"]
        lines.append(f"| {name} | {r['cer']:.4f} ({r['cer_low']:.3f}-{r['cer_high']:.3f}) | "
                     f"{r['boundary_f1']:.3f} | {r['segments']} / {r['reference_segments']} | "
                     f"{'-' if error is None else f'{error:.0f}'} | {r['chars_over_noise']} | "
                     f"{r['wall_s'] / reference:.2f} ({r['wall_s']:.1f} s) |")
    table = "\n".join(lines)
    print(table)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    (args.out / "results.md").write_text(table + "\n", "utf-8")
    (args.out / "segments.json").write_text(json.dumps(timed, ensure_ascii=False, indent=1)
                                            + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
