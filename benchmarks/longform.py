"""Long-form transcription: whisper-ja against faster-whisper on the same model and recordings.

One model, one long-form set, seven ways of running it, side by side in one run:

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
  transformers arms);
- ``faster-whisper float32``: faster-whisper's ``transcribe`` (VAD on) on that unquantized
  export, the like-for-like reference of the float32 arm.

All greedy, Japanese forced, the same CPU threads. The recordings are made by
``make-longform`` from SYNTHETIC speech (Open JTalk voices reading Tatoeba sentences): pauses of
0.2-1.5 s and a noise-only stretch. Prints CER, boundary F1 (segment starts at ±0.5 s), median
start error, characters over the noise and wall time relative to faster-whisper; model loading
and export are not timed, one warm-up file per arm is not timed. With ``--repeats N`` every arm
runs N rounds, interleaved (the arm order rotates each round), and its wall time is the median
round: on a machine shared with other work, arms run one after the other see different loads.

    .venv/bin/python benchmarks/longform.py --sentences 24 --max-seconds 90 --repeats 3
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
    parser.add_argument("--repeats", type=int, default=1,
                        help="timed rounds per arm, interleaved; the median is reported")
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


Arm = Callable[[np.ndarray], Iterable[Any]]


def run_arms(arms: dict[str, Arm], audios: list[np.ndarray], repeats: int,
             ) -> dict[str, tuple[list[list[Any]], list[float]]]:
    """Segments of every recording and each round's wall time, per arm.

    One untimed warm-up per arm first; then ``repeats`` rounds, each running every arm over
    every recording, the arm order rotated by one each round so that no arm always runs
    first (or last) under a changing load.
    """
    for transcribe in arms.values():
        list(transcribe(audios[0][: 16000 * 5]))
    names = list(arms)
    out: dict[str, tuple[list[list[Any]], list[float]]] = {}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            segments = [list(arms[name](audio)) for audio in audios]
            seconds = time.perf_counter() - start
            out.setdefault(name, (segments, []))[1].append(seconds)
            print(f"  round {round_ + 1}: {name} {seconds:.1f} s", flush=True)
    return out


def make_arms(args: argparse.Namespace, ct2: str, ct2_float32: str) -> dict[str, Arm]:
    """Every arm by name (the transformers model loads only when one of its arms runs)."""
    from whisper_ja.inference.decoding import DecodeOptions
    from whisper_ja.inference.faster_longform import ct2_segments, faster_whisper_batched
    from whisper_ja.inference.longform import LongformOptions, transcribe_segments
    from whisper_ja.inference.pause_split import PauseSettings
    from whisper_ja.inference.vad import VadSettings
    from whisper_ja.model import load_model

    options = DecodeOptions(max_new_tokens=224, batch_size=8)
    vad = VadSettings() if args.max_gap is None else VadSettings(max_gap_s=args.max_gap)
    batched = LongformOptions(mode="batched", pauses=PauseSettings(split=False, snap_s=0.0)
                              if args.no_pauses else PauseSettings())
    on_transformers = {"whisper-ja sequential", "whisper-ja batched"}
    loaded = (load_model(args.model, adapter=args.adapter)
              if not args.arms or on_transformers & set(args.arms) else None)
    threads, quantized = args.threads, args.compute_type
    return {
        "whisper-ja sequential": lambda a: transcribe_segments(
            a, loaded.model, loaded.processor, LongformOptions(), options),
        "whisper-ja batched": lambda a: transcribe_segments(
            a, loaded.model, loaded.processor, batched, options, vad),
        "faster-whisper": lambda a: ct2_segments(
            a, ct2, LongformOptions(), options, compute_type=quantized, cpu_threads=threads),
        "faster-whisper batched": lambda a: faster_whisper_batched(
            a, ct2, LongformOptions(mode="batched"), options, compute_type=quantized,
            cpu_threads=threads),
        "whisper-ja ct2 batched": lambda a: ct2_segments(
            a, ct2, batched, options, vad, compute_type=quantized, cpu_threads=threads),
        "faster-whisper float32": lambda a: ct2_segments(
            a, ct2_float32, LongformOptions(), options, compute_type="float32",
            cpu_threads=threads),
        "whisper-ja ct2 batched float32": lambda a: ct2_segments(
            a, ct2_float32, batched, options, vad, compute_type="float32",
            cpu_threads=threads),
    }


def table(results: dict[str, Any], title: str) -> str:
    """The Markdown table: wall time against faster-whisper at both precisions when run."""
    references = [name for name in ("faster-whisper", "faster-whisper float32")
                  if name in results] or [next(iter(results))]
    lines = [title, "",
             "| system | CER | boundary F1 | segments | start error (median ms) | "
             "chars over noise | wall s (rounds) | "
             + " | ".join(f"wall time vs {name}" for name in references) + " |",
             "|---" * (7 + len(references)) + "|"]
    for name, r in results.items():
        error = r["start_error_median_ms"]
        ratios = " | ".join(f"{r['wall_s'] / results[ref]['wall_s']:.2f}" for ref in references)
        rounds = ", ".join(f"{w:.1f}" for w in r["wall_rounds_s"])
        lines.append(f"| {name} | {r['cer']:.4f} ({r['cer_low']:.3f}-{r['cer_high']:.3f}) | "
                     f"{r['boundary_f1']:.3f} | {r['segments']} / {r['reference_segments']} | "
                     f"{'-' if error is None else f'{error:.0f}'} | {r['chars_over_noise']} | "
                     f"{r['wall_s']:.1f} ({rounds}) | {ratios} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from whisper_ja.audio.io import load_audio
    from whisper_ja.evaluation.longform import score_file, summarize
    from whisper_ja.export.writer import ExportConfig, export_model

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    utts = recordings(args)
    audios = [load_audio(u.audio) for u in utts]
    hours = sum(a.size for a in audios) / 16000 / 3600
    results: dict[str, Any] = {}
    timed: dict[str, list[list[list[Any]]]] = {}
    with tempfile.TemporaryDirectory(prefix="ct2-", dir=args.out) as ct2_dir:
        ct2, ct2_float32 = str(Path(ct2_dir) / "model"), str(Path(ct2_dir) / "float32")
        export_model(ExportConfig(model=args.model, adapter=args.adapter, to="ct2",
                                  out=Path(ct2), quantization=args.compute_type))
        # Unquantized too: both ct2 paths at the precision of the transformers arms.
        export_model(ExportConfig(model=args.model, adapter=args.adapter, to="ct2",
                                  out=Path(ct2_float32)))
        arms = make_arms(args, ct2, ct2_float32)
        unknown = sorted(set(args.arms or ()) - set(arms))
        if unknown:
            raise SystemExit(f"--arms: unknown {unknown}; choose from {sorted(arms)}")
        chosen = {name: arm for name, arm in arms.items() if not args.arms or name in args.arms}
        for name, (segments, rounds) in run_arms(chosen, audios, args.repeats).items():
            scores = [score_file(u, s) for u, s in zip(utts, segments, strict=True)]
            results[name] = {**summarize(scores, 200), "wall_s": float(np.median(rounds)),
                             "wall_rounds_s": rounds}
            # every segment, so arms meant to agree (float32 ct2 and transformers) can be diffed
            timed[name] = [[[s.start, s.end, s.text] for s in found] for found in segments]
            print(f"{name}: CER {results[name]['cer']:.4f}, F1 "
                  f"{results[name]['boundary_f1']:.3f}, {results[name]['wall_s']:.1f} s",
                  flush=True)
    text = table(results, f"Long-form, SYNTHETIC speech: {len(utts)} recordings, "
                          f"{hours * 60:.1f} min, {sum(len(u.segments) for u in utts)} "
                          f"sentences; {args.model}"
                          f"{' + ' + str(args.adapter) if args.adapter else ''}; "
                          f"{args.threads} threads; median of {args.repeats} interleaved "
                          "round(s)")
    print(text)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    (args.out / "results.md").write_text(text + "\n", "utf-8")
    (args.out / "segments.json").write_text(json.dumps(timed, ensure_ascii=False, indent=1)
                                            + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
