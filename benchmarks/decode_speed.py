"""Decoding speed and CER of every whisper-ja decoding path against stock faster-whisper.

One model, one set of clips, one machine, one run; the arms are interleaved (the clips are cut
into rounds, every arm decodes each round, the order of the arms rotating from round to round),
so a machine whose load changes during the run slows every arm alike:

- ``hf-30s``: transformers, waveform padded to 30 s, length-sorted batches (``evaluate``'s path
  for a stock model);
- ``hf-dynamic``: transformers with dynamic context (the batch's longest clip rounded up to
  100 frames, floor 800);
- ``hf-dynamic-int8``: the same with ``torch.ao.quantization.quantize_dynamic`` int8 linear
  layers (``whisper_ja.inference.quantize``);
- ``hf-dynamic-static``: ``hf-dynamic`` with transformers' static KV cache
  (``generation_config.cache_implementation = "static"``: preallocated key/value tensors
  instead of growing ones; no ``torch.compile``);
- ``fw-stock``: stock faster-whisper int8 on the same weights (``whisper-ja export --to ct2
  --quantization int8``), one clip at a time, features padded to 30 s, as users run it;
- ``ct2-dynamic``: whisper-ja's CTranslate2 path on that folder (batches of 8, dynamic context
  with the floor): ``whisper_ja.inference.ct2_clips.transcribe_audio_ct2``;
- ``ct2-dynamic-float32``: the same path on a float32 export, decoded in float32 (what the demo
  and ``evaluate --backend ct2 --compute-type float32`` measure with);
- ``hf-dynamic-beam`` / ``hf-dynamic-beam-single``: ``hf-dynamic`` with beam search
  (``--beams``, 5 by default as in faster-whisper and OpenAI's CLI), batched beams (``--batch-size``
  clips x beams rows per ``generate`` call) against one clip at a time;
- ``fw-stock-beam`` / ``ct2-dynamic-beam``: stock faster-whisper and whisper-ja's CTranslate2 path
  with the same beam width (faster-whisper's own default is 5); the beam arms run only when
  named in ``--arms``;
- ``student-hf-dynamic`` / ``student-ct2-dynamic``: a student made by ``whisper-ja distill``
  (``--student FOLDER [FOLDER ...]``; with several, each arm's name ends in ``@FOLDER-NAME``),
  with transformers and exported to CTranslate2 int8; each is also compared with its teacher
  on the same backend (``hf-dynamic`` / ``ct2-dynamic``, whose ``--model`` must be the student's
  teacher): speed-up and the paired CER difference.

Greedy unless an arm says beam, Japanese forced, the same CPU threads everywhere. Prints the
real-time factor (decoding seconds per audio second; model loading and export not counted, one
warm-up round not timed), CER with its 95 % bootstrap interval, loops, each arm's speed-up over
``fw-stock`` and the paired CER difference against it. Clips from ``--manifest`` (here:
SYNTHETIC speech made by ``whisper-ja synth``).

    .venv/bin/python benchmarks/decode_speed.py --manifest runs/issue18/test.jsonl \\
        --student runs/issue18/student2 --out runs/issue18/bench
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

ARMS = ("hf-30s", "hf-dynamic", "hf-dynamic-int8", "hf-dynamic-static", "fw-stock",
        "ct2-dynamic", "ct2-dynamic-float32", "student-hf-dynamic", "student-ct2-dynamic")
BEAM_ARMS = ("hf-dynamic-beam", "hf-dynamic-beam-single", "fw-stock-beam", "ct2-dynamic-beam")
"""Beam-search arms: slow, so run only when named."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, required=True, help="test manifest")
    parser.add_argument("--model", default="openai/whisper-base")
    parser.add_argument("--student", type=Path, nargs="+", default=[],
                        help="`whisper-ja distill` output(s) (student arms skipped without)")
    parser.add_argument("--clips", type=int, default=80, help="first N clips (0 = all)")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for every arm")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS + BEAM_ARMS)
    parser.add_argument("--beams", type=int, default=5, help="beam width of the beam arms")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/decode_speed"))
    return parser.parse_args(argv)


def export_ct2(model: str, out: Path, quantization: str = "int8") -> Path:
    """``whisper-ja export --to ct2 --quantization Q`` of ``model`` (cached in ``out``)."""
    from whisper_ja.export.writer import ExportConfig, export_model

    if not (out / "model.bin").is_file():
        export_model(ExportConfig(model=model, to="ct2", out=out, quantization=quantization))
    return out


def hf_arm(model: Any, processor: Any, batch_size: int, dynamic: bool, beams: int = 1,
           ) -> Callable[[list[np.ndarray]], list[Any]]:
    """transformers decoding in length-sorted batches (30 s or dynamic context)."""
    from whisper_ja.audio.constants import HOP_LENGTH
    from whisper_ja.audio.features import ContextPolicy, context_frames
    from whisper_ja.inference.decoding import DecodeOptions, decode_audio

    policy = ContextPolicy()

    def run(audios: list[np.ndarray]) -> list[Any]:
        order = sorted(range(len(audios)), key=lambda i: audios[i].size)
        results: list[Any] = [None] * len(audios)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            longest = max(math.ceil(audios[i].size / HOP_LENGTH) for i in rows)
            options = DecodeOptions(batch_size=batch_size, num_beams=beams,
                                    context_frames=context_frames(longest, policy)
                                    if dynamic else None)
            for i, result in zip(rows, decode_audio(model, processor, [audios[i] for i in rows],
                                                    options, progress=False), strict=True):
                results[i] = result
        return results
    return run


def stock_arm(folder: Path, threads: int, beams: int = 1,
              ) -> Callable[[list[np.ndarray]], list[Any]]:
    """Stock faster-whisper: one clip at a time, 30 s, as ``WhisperModel.transcribe`` runs."""
    from whisper_ja.inference.decoding import DecodeResult
    from whisper_ja.inference.faster import load_faster_whisper

    model = load_faster_whisper(str(folder), "int8", threads)

    def run(audios: list[np.ndarray]) -> list[Any]:
        out = []
        for audio in audios:
            segments, _ = model.transcribe(
                audio, language="ja", beam_size=beams, temperature=0.0, without_timestamps=True,
                condition_on_previous_text=False, vad_filter=False)
            out.append(DecodeResult("".join(s.text for s in segments).strip(), (), False))
        return out
    return run


def ct2_arm(folder: Path, threads: int, batch_size: int, compute_type: str = "int8",
            beams: int = 1) -> Callable[[list[np.ndarray]], list[Any]]:
    """whisper-ja's CTranslate2 path, dynamic context with the floor, batched."""
    from whisper_ja.inference.ct2_clips import Ct2Options, transcribe_audio_ct2
    from whisper_ja.inference.decoding import DecodeResult

    options = Ct2Options(context="dynamic", batch_size=batch_size, cpu_threads=threads,
                         compute_type=compute_type, beam_size=beams)

    def run(audios: list[np.ndarray]) -> list[Any]:
        return [DecodeResult(c.text, (), c.looped)
                for c in transcribe_audio_ct2(audios, folder, options)]
    return run


def build_arms(args: argparse.Namespace, work: Path) -> dict[str, Callable[..., list[Any]]]:
    from whisper_ja.inference.quantize import quantize_linear_int8
    from whisper_ja.model import load_model
    from whisper_ja.model.context import enable_dynamic_context

    arms: dict[str, Callable[..., list[Any]]] = {}
    wanted = set(args.arms)
    if wanted & {"hf-30s", "hf-dynamic"}:
        base = load_model(args.model)
        enable_dynamic_context(base.model)  # 30 s input stays bit-identical (tests/model)
        arms["hf-30s"] = hf_arm(base.model, base.processor, args.batch_size, dynamic=False)
        arms["hf-dynamic"] = hf_arm(base.model, base.processor, args.batch_size, dynamic=True)
    if "hf-dynamic-static" in wanted:
        static = load_model(args.model)
        enable_dynamic_context(static.model)
        static.model.generation_config.cache_implementation = "static"
        arms["hf-dynamic-static"] = hf_arm(static.model, static.processor, args.batch_size,
                                           dynamic=True)
    if "hf-dynamic-int8" in wanted:
        quant = load_model(args.model)
        enable_dynamic_context(quant.model)
        arms["hf-dynamic-int8"] = hf_arm(quantize_linear_int8(quant.model), quant.processor,
                                         args.batch_size, dynamic=True)
    if wanted & {"fw-stock", "ct2-dynamic"}:
        folder = export_ct2(args.model, work / "model-ct2-int8")
        arms["fw-stock"] = stock_arm(folder, args.threads)
        arms["ct2-dynamic"] = ct2_arm(folder, args.threads, args.batch_size)
    if wanted & set(BEAM_ARMS):
        arms.update(beam_arms(args, work))
    if "ct2-dynamic-float32" in wanted:
        folder = export_ct2(args.model, work / "model-ct2-float32", quantization="float32")
        arms["ct2-dynamic-float32"] = ct2_arm(folder, args.threads, args.batch_size,
                                              compute_type="float32")
    for path in args.student:
        tag = f"@{path.name}" if len(args.student) > 1 else ""
        student = load_model(path)
        arms[f"student-hf-dynamic{tag}"] = hf_arm(student.model, student.processor,
                                                  args.batch_size, dynamic=True)
        folder = export_ct2(str(path), work / f"student-ct2-int8{tag.replace('@', '-')}")
        arms[f"student-ct2-dynamic{tag}"] = ct2_arm(folder, args.threads, args.batch_size)
    return {name: arm for name, arm in arms.items() if name.partition("@")[0] in wanted}


def beam_arms(args: argparse.Namespace, work: Path) -> dict[str, Callable[..., list[Any]]]:
    """The beam-search arms: transformers batched and one clip at a time, both ct2 paths."""
    from whisper_ja.model import load_model
    from whisper_ja.model.context import enable_dynamic_context

    beam = load_model(args.model)
    enable_dynamic_context(beam.model)
    folder = export_ct2(args.model, work / "model-ct2-int8")
    return {
        "hf-dynamic-beam": hf_arm(beam.model, beam.processor, args.batch_size, dynamic=True,
                                  beams=args.beams),
        "hf-dynamic-beam-single": hf_arm(beam.model, beam.processor, 1, dynamic=True,
                                         beams=args.beams),
        "fw-stock-beam": stock_arm(folder, args.threads, beams=args.beams),
        "ct2-dynamic-beam": ct2_arm(folder, args.threads, args.batch_size, beams=args.beams),
    }


def run_interleaved(arms: dict[str, Callable[..., list[Any]]], audios: list[np.ndarray],
                    rounds: int) -> tuple[dict[str, list[Any]], dict[str, float]]:
    """Every arm on every round of clips, the arm order rotating; seconds summed per arm."""
    names = list(arms)
    for name in names:  # warm-up on two clips, not timed
        arms[name](audios[:2])
    results: dict[str, list[Any]] = {name: [] for name in names}
    seconds = dict.fromkeys(names, 0.0)
    bounds = np.linspace(0, len(audios), rounds + 1).astype(int)
    for r in range(rounds):
        chunk = audios[bounds[r]:bounds[r + 1]]
        for name in names[r % len(names):] + names[:r % len(names)]:
            began = time.perf_counter()
            results[name] += arms[name](chunk)
            seconds[name] += time.perf_counter() - began
        print(f"round {r + 1}/{rounds} done", flush=True)
    return results, seconds


def report(refs: list[str], results: dict[str, list[Any]], seconds: dict[str, float],
           audio_s: float) -> tuple[list[str], dict[str, Any]]:
    from whisper_ja.text.bootstrap import metric_interval, paired_bootstrap

    lines = [f"{'arm':<34} {'RTF':>7} {'sec':>7} {'CER [95% CI]':>26} {'looped':>6} "
             f"{'vs fw-stock':>11} {'CER - fw-stock [95% CI]':>26}"]
    data: dict[str, Any] = {}
    stock = results.get("fw-stock")
    for name, hyps in results.items():
        texts = [r.text for r in hyps]
        interval = metric_interval(refs, texts)
        row: dict[str, Any] = {"rtf": seconds[name] / audio_s, "seconds": seconds[name],
                               "cer": interval.to_dict(), "looped": sum(r.looped for r in hyps)}
        versus = paired = ""
        if stock is not None and name != "fw-stock":
            diff = paired_bootstrap(refs, [r.text for r in stock], texts)
            row["speedup_vs_fw_stock"] = seconds["fw-stock"] / seconds[name]
            row["cer_minus_fw_stock"] = diff.to_dict()
            versus = f"{row['speedup_vs_fw_stock']:.2f}x"
            paired = f"{diff.delta:+.4f} [{diff.low:+.4f}, {diff.high:+.4f}]"
        data[name] = row
        lines.append(f"{name:<34} {row['rtf']:>7.3f} {seconds[name]:>7.1f} "
                     f"{interval.value:>8.4f} [{interval.low:.4f}, {interval.high:.4f}] "
                     f"{row['looped']:>6} {versus:>11} {paired:>26}")
    lines += _versus_teacher(refs, results, seconds, data)
    return lines, data


TEACHER_ARM = {"student-hf-dynamic": "hf-dynamic", "student-ct2-dynamic": "ct2-dynamic"}
"""The teacher arm each student arm is compared with (same backend, same context policy)."""


def _versus_teacher(refs: list[str], results: dict[str, list[Any]], seconds: dict[str, float],
                    data: dict[str, Any]) -> list[str]:
    """Each student arm against its teacher on the same backend: speed-up, paired CER diff."""
    from whisper_ja.text.bootstrap import paired_bootstrap

    lines = [f"\n{'student arm':<34} {'vs teacher arm':<14} {'speed-up':>8} "
             f"{'CER - teacher [95% paired CI]':>30}"]
    for name, hyps in results.items():
        teacher = TEACHER_ARM.get(name.partition("@")[0])
        if teacher is None or teacher not in results:
            continue
        diff = paired_bootstrap(refs, [r.text for r in results[teacher]],
                                [r.text for r in hyps])
        speedup = seconds[teacher] / seconds[name]
        data[name].update(teacher_arm=teacher, speedup_vs_teacher=speedup,
                          cer_minus_teacher=diff.to_dict())
        lines.append(f"{name:<34} {teacher:<14} {speedup:>7.2f}x "
                     f"{diff.delta:+.4f} [{diff.low:+.4f}, {diff.high:+.4f}]")
    return lines if len(lines) > 1 else []


def main(argv: Sequence[str] | None = None) -> int:
    from whisper_ja.audio.io import load_audio
    from whisper_ja.data.manifest import read_manifest

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    utts = read_manifest(args.manifest)
    utts = utts[:args.clips] if args.clips else utts
    synthetic = all(u.is_synthetic for u in utts)
    audios = [load_audio(u.audio) for u in utts]
    refs = [u.text for u in utts]
    audio_s = sum(a.size for a in audios) / 16000
    args.out.mkdir(parents=True, exist_ok=True)
    # Exports are kept in OUT/models and reused by later runs (export time is not measured).
    arms = build_arms(args, args.out / "models")
    results, seconds = run_interleaved(arms, audios, args.rounds)
    lines, data = report(refs, results, seconds, audio_s)
    head = (f"{'SYNTHETIC speech' if synthetic else 'speech'}: {len(audios)} clips, "
            f"{audio_s:.0f} s of audio, greedy, batch {args.batch_size}, {args.threads} "
            f"threads, {args.rounds} interleaved rounds, model {args.model}"
            + "".join(f", student {path}" for path in args.student))
    print("\n" + head + "\n" + "\n".join(lines))
    (args.out / "decode_speed.json").write_text(json.dumps(
        {"setup": head, "arms": data}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

