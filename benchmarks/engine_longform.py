"""Issue 26: long audio through ``whisper-ja transcribe`` against stock faster-whisper.

On the SYNTHETIC long-audio sets of :mod:`heldout_longform` (``dev``, ``heldout``), in one run
on one machine, these arms (``--arms`` picks; names as in the table):

- ``transcribe``: ``whisper-ja transcribe`` with no flags (untouched model), through the
  Python front door (:func:`engine_arms.whisper_ja_default`);
- ``transcribe --adapter``: the same with the demo's LoRA adapter (``demo_out/train``);
- ``faster-whisper``: stock faster-whisper (int8, VAD, greedy unless ``--fw-beam``) in-process on
  ``whisper-ja export --to ct2 --quantization int8`` of the untouched model: the reference;
- ``faster-whisper (adapter export)``: the same on the adapter's merged export;
- optional: ``transcribe batched`` (``longform.mode=batched``), ``transcribe --backend ct2``,
  ``transcribe --backend ct2 batched`` (on the int8 export) and ``transcribe --beams 5``.

Per arm: CER, deleted characters (deletions / reference characters, from the edit alignment),
segment-start F1 at ±0.5 s (:mod:`whisper_ja.evaluation.longform`'s metric), characters over
the noise-only stretches, wall time (model loading and export not timed; one untimed warm-up
per arm) and its ratio to faster-whisper's. With ``--repeats N`` every recording is decoded N
times by every arm, the arms' order rotating per recording and round, and the median round
is reported. The CER difference to faster-whisper has a paired 95% bootstrap interval over
sentences: each reference sentence owns the edits aligned to its characters (insertions go to
the sentence before them), so the sentences' counts add up to the recording's. With several
sets, a last table pools their sentences (``--pool RESULTS.json`` prints it for a saved run).

    .venv/bin/python benchmarks/engine_longform.py --sets dev heldout --repeats 2
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import torch
from engine_arms import (
    LongArm,
    ct2_export,
    faster_whisper_model,
    faster_whisper_placement,
    stock_faster_whisper,
    whisper_ja_beams,
    whisper_ja_default,
    whisper_ja_mode,
)
from heldout_longform import DEFAULT_EXCLUDE, ROOT, SETS, build_set, describe

from whisper_ja.audio.io import load_audio
from whisper_ja.data.manifest import Utterance, read_manifest
from whisper_ja.evaluation.longform import score_file, summarize
from whisper_ja.inference.timestamps import Segment
from whisper_ja.text.bootstrap import paired_bootstrap_counts
from whisper_ja.text.metrics import ErrorCounts
from whisper_ja.text.normalize import normalize

REFERENCE = "faster-whisper"
BEFORE_ENGINE = importlib.util.find_spec("whisper_ja.inference.engine") is None
"""A checkout from before the engine (``PYTHONPATH=OLD/src``): its front door is measured."""
DEFAULT_ARMS = ("transcribe", "transcribe --adapter", REFERENCE,
                "faster-whisper (adapter export)")
OPTIONAL_ARMS = ("transcribe batched", "transcribe --backend ct2",
                 "transcribe --backend ct2 batched", "transcribe --beams 5")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=["dev"], choices=list(SETS))
    parser.add_argument("--model", default="openai/whisper-base")
    parser.add_argument("--adapter", type=Path, default=Path("demo_out/train"))
    parser.add_argument("--arms", nargs="+", default=list(DEFAULT_ARMS), metavar="NAME",
                        help=f"of {[*DEFAULT_ARMS, *OPTIONAL_ARMS]}")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="torch and CTranslate2 threads")
    parser.add_argument("--fw-beam", type=int, default=1, help="faster-whisper beam size")
    parser.add_argument("--exclude", type=Path, nargs="*", default=list(DEFAULT_EXCLUDE),
                        help="as heldout_longform.py (keys the cached sets)")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/engine_longform"))
    parser.add_argument("--label", default="", help="tag of this run's output files")
    parser.add_argument("--pool", type=Path, default=None, metavar="RESULTS.json",
                        help="only print the pooled table of a saved run's sets")
    return parser.parse_args(argv)


def sentence_counts(reference: Utterance, text: str, normalizer: str = "default",
                    ) -> list[ErrorCounts]:
    """The recording's character edits, split by the reference sentence each belongs to."""
    refs = [normalize(s.text, normalizer) for s in reference.segments]
    owner = [i for i, r in enumerate(refs) for _ in r]
    hyp = list(normalize(text, normalizer))
    tally = np.zeros((len(refs), 4), dtype=np.int64)  # hits, subs, dels, ins
    if not hyp:
        for i in owner:
            tally[i, 2] += 1
    else:
        out = jiwer.process_words([list("".join(refs))], [hyp],  # type: ignore[list-item]
                                  reference_transform=jiwer.Compose([]),
                                  hypothesis_transform=jiwer.Compose([]))
        column = {"equal": 0, "substitute": 1, "delete": 2}
        for chunk in out.alignments[0]:
            if chunk.type == "insert":
                at = max(0, min(chunk.ref_start_idx - 1, len(owner) - 1))
                tally[owner[at], 3] += chunk.hyp_end_idx - chunk.hyp_start_idx
                continue
            for i in range(chunk.ref_start_idx, chunk.ref_end_idx):
                tally[owner[i], column[chunk.type]] += 1
    return [ErrorCounts(substitutions=int(s), deletions=int(d), insertions=int(n),
                        hits=int(h), reference_length=int(h + s + d))
            for h, s, d, n in tally]


def make_arms(args: argparse.Namespace, ct2: Path, ct2_adapter: Path | None,
              ) -> dict[str, LongArm]:
    """The chosen arms, loaded (model loading is never timed)."""
    adapter = args.adapter if args.adapter.is_dir() else None
    makers = {
        "transcribe": lambda: whisper_ja_default(args.model),
        "transcribe --adapter": lambda: whisper_ja_default(args.model, adapter),
        REFERENCE: lambda: stock_faster_whisper(
            faster_whisper_model(ct2, threads=args.threads), args.fw_beam),
        "faster-whisper (adapter export)": lambda: stock_faster_whisper(
            faster_whisper_model(_needed(ct2_adapter), threads=args.threads), args.fw_beam),
        "transcribe batched": lambda: whisper_ja_mode(args.model, ct2, "transformers",
                                                      "batched"),
        "transcribe --backend ct2": lambda: whisper_ja_mode(args.model, ct2, "ct2",
                                                            "sequential"),
        "transcribe --backend ct2 batched": lambda: whisper_ja_mode(args.model, ct2, "ct2",
                                                                    "batched"),
        "transcribe --beams 5": lambda: whisper_ja_beams(args.model, 5),
    }
    unknown = sorted(set(args.arms) - set(makers))
    if unknown:
        raise SystemExit(f"--arms: unknown {unknown}; choose from {list(makers)}")
    needs_adapter = {"transcribe --adapter", "faster-whisper (adapter export)"}
    if adapter is None and needs_adapter & set(args.arms):
        raise SystemExit(f"--adapter {args.adapter}: no such folder (run `make demo`)")
    return {name: makers[name]() for name in args.arms}


def _needed(ct2_adapter: Path | None) -> Path:
    """The adapter's export, which :func:`make_arms` checked exists before any arm loads."""
    if ct2_adapter is None:
        raise SystemExit("the adapter's CTranslate2 export is missing")
    return ct2_adapter


@dataclass
class Decoded:
    """Every arm's segments per recording and its wall time per round."""

    segments: dict[str, list[list[Any]]]
    rounds: dict[str, list[float]]


def run_arms(arms: dict[str, LongArm], audios: list[np.ndarray], repeats: int) -> Decoded:
    """Each recording by every arm, ``repeats`` times, the arms' order rotating."""
    names = list(arms)
    segments: dict[str, list[list[Any]]] = {n: [] for n in names}
    rounds: dict[str, list[float]] = {n: [0.0] * repeats for n in names}
    turn = 0
    for round_ in range(repeats):
        for index, audio in enumerate(audios):
            shift = turn % len(names)
            turn += 1
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                found = list(arms[name](audio))
                rounds[name][round_] += time.perf_counter() - start
                if round_ == 0:
                    segments[name].append(found)
            print(f"  round {round_ + 1}, recording {index + 1}/{len(audios)}: " + ", ".join(
                f"{n} {rounds[n][round_]:.0f} s" for n in names), flush=True)
    return Decoded(segments, rounds)


def _as_segment(item: Any) -> Segment:
    """faster-whisper's segments scored as whisper-ja's (start, end, text)."""
    if isinstance(item, Segment):
        return item
    return Segment(float(item.start), float(item.end), str(item.text).strip())


def arm_counts(utts: list[Utterance], segments: list[list[Segment]]) -> list[ErrorCounts]:
    """One arm's edits on a set, per reference sentence."""
    return [c for u, s in zip(utts, segments, strict=True)
            for c in sentence_counts(u, "".join(x.text for x in s))]


def score_set(utts: list[Utterance], decoded: Decoded,
              ) -> tuple[dict[str, Any], dict[str, list[ErrorCounts]]]:
    """Per arm: the longform suite's summary, wall times and paired CI; its sentence counts."""
    results: dict[str, Any] = {}
    counts: dict[str, list[ErrorCounts]] = {}
    for name, found in decoded.segments.items():
        segments = [[_as_segment(s) for s in f] for f in found]
        scores = [score_file(u, s) for u, s in zip(utts, segments, strict=True)]
        counts[name] = arm_counts(utts, segments)
        results[name] = {**summarize(scores, 1000), "wall_s": float(np.median(
            decoded.rounds[name])), "wall_rounds_s": decoded.rounds[name],
            "hypotheses": [score.hypothesis for score in scores]}
    for name, result in results.items():
        if REFERENCE in counts and name != REFERENCE:
            paired = paired_bootstrap_counts(counts[REFERENCE], counts[name], "cer", 2000, 0)
            result["cer_vs_reference"] = {"delta": paired.delta, "low": paired.low,
                                          "high": paired.high, "sentences": paired.n_utterances}
        if REFERENCE in results:
            result["wall_ratio"] = result["wall_s"] / results[REFERENCE]["wall_s"]
    return results, counts


def _difference(delta: float, low: float, high: float) -> str:
    """A CER difference and its interval, in points."""
    return f"{100 * delta:+.2f} ({100 * low:+.2f}...{100 * high:+.2f})"


def pooled_table(counts: dict[str, list[ErrorCounts]], sets: Sequence[str]) -> str:
    """CER and deletions of every arm over all the sets' sentences, paired CI to the reference."""
    first = next(iter(counts.values()), [])
    lines = [f"**Pooled** over {', '.join(sets)}: {len(first)} sentences, "
             f"{sum(c.reference_length for c in first)} characters", "",
             "| arm | CER | deleted chars | CER - faster-whisper (paired 95% CI, sentences) |",
             "|---" * 4 + "|"]
    for name, found in counts.items():
        total: ErrorCounts = sum(found, ErrorCounts())
        diff = "-"
        if REFERENCE in counts and name != REFERENCE:
            paired = paired_bootstrap_counts(counts[REFERENCE], found, "cer", 2000, 0)
            diff = _difference(paired.delta, paired.low, paired.high)
        lines.append(f"| {name} | {100 * total.errors / total.reference_length:.2f}% | "
                     f"{100 * total.deletions / total.reference_length:.2f}% | {diff} |")
    return "\n".join(lines)


def pool_saved(path: Path, exclude: Sequence[Path]) -> str:
    """The pooled table of a saved run (its segments, the sets' cached manifests)."""
    saved = json.loads(path.read_text("utf-8"))["sets"]
    counts: dict[str, list[ErrorCounts]] = {}
    for name, found in saved.items():
        utts = read_manifest(build_set(SETS[name], ROOT, exclude))
        for arm, files in found["segments"].items():
            segments = [[Segment(a, b, text) for a, b, text in f] for f in files]
            counts.setdefault(arm, []).extend(arm_counts(utts, segments))
    return pooled_table(counts, list(saved))


def table(results: dict[str, Any], title: str) -> str:
    """The Markdown table of one set."""
    lines = [title, "", "| arm | CER | deleted chars | segment-start F1 (±0.5 s) | segments | "
             "chars over noise | wall s (rounds) | wall vs faster-whisper | "
             "CER - faster-whisper (paired 95% CI, sentences) |", "|---" * 9 + "|"]
    for name, r in results.items():
        rounds = ", ".join(f"{w:.0f}" for w in r["wall_rounds_s"])
        ratio = f"{r['wall_ratio']:.2f}x" if "wall_ratio" in r else "-"
        delta = r.get("cer_vs_reference")
        diff = _difference(delta["delta"], delta["low"], delta["high"]) if delta else "-"
        lines.append(f"| {name} | {100 * r['cer']:.2f}% | {100 * r['deletion_rate']:.2f}% | "
                     f"{r['boundary_f1']:.2f} | {r['segments']} / {r['reference_segments']} | "
                     f"{r['chars_over_noise']} | {r['wall_s']:.0f} ({rounds}) | {ratio} | "
                     f"{diff} |")
    return "\n".join(lines)


def machine_line() -> str:
    """CPU model, AVX-512 / bf16 flags and cores, for the README."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    name = next((line.split(":", 1)[1].strip() for line in model.splitlines()
                 if line.startswith("Model name")), platform.processor())
    return (f"{name}, AVX-512 {'yes' if ' avx512f' in flags else 'no'}, AVX-512 bf16 "
            f"{'yes' if 'avx512_bf16' in flags else 'no'}, {torch.get_num_threads()} "
            f"threads of {len(os.sched_getaffinity(0))} cores, load average "
            f"{os.getloadavg()[0]:.1f} at the start (other work on the machine shows here)")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.pool is not None:
        print(pool_saved(args.pool, args.exclude))
        return 0
    commit = subprocess.run(["git", "log", "-1", "--format=%h", "--", "src"], capture_output=True,
                            text=True).stdout.strip()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    manifests = {name: build_set(SETS[name], ROOT, args.exclude) for name in args.sets}
    ct2 = ct2_export(args.model, None, args.out)
    ct2_adapter = (ct2_export(args.model, args.adapter, args.out)
                   if "faster-whisper (adapter export)" in args.arms else None)
    arms = make_arms(args, ct2, ct2_adapter)
    warm = load_audio(read_manifest(manifests[args.sets[0]])[0].audio)[: 16000 * 30]
    for arm in arms.values():  # one untimed warm-up per arm (lazy loads, caches)
        list(arm(warm))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    texts, everything = [], {}
    pooled: dict[str, list[ErrorCounts]] = {}
    for name, manifest in manifests.items():
        utts = read_manifest(manifest)
        print(describe(manifest), flush=True)
        decoded = run_arms(arms, [load_audio(u.audio) for u in utts], args.repeats)
        results, counts = score_set(utts, decoded)
        for arm_name, found in counts.items():
            pooled.setdefault(arm_name, []).extend(found)
        minutes = sum(u.duration for u in utts) / 60
        texts.append(table(results, f"**{name}** set (SYNTHETIC speech): {len(utts)} "
                                    f"recordings, {minutes:.1f} min, "
                                    f"{sum(len(u.segments) for u in utts)} sentences; "
                                    f"median of {args.repeats} interleaved round(s)"))
        everything[name] = {"results": results, "segments": {
            arm: [[[s.start, s.end, s.text] for s in map(_as_segment, f)] for f in found]
            for arm, found in decoded.segments.items()}}
        print(texts[-1], flush=True)
    adapter = (f", adapter {args.adapter}" if {"transcribe --adapter",
                                                "faster-whisper (adapter export)"} & set(arms)
               else "")
    placement = " ".join(faster_whisper_placement())
    header = (f"{stamp}; {machine_line()}; {args.model}{adapter}; "
              f"faster-whisper {placement}, VAD, beam {args.fw_beam}; whisper-ja "
              f"{'before the engine (inference.transcribe)' if BEFORE_ENGINE else 'engine'}, "
              f"src at {commit or '?'} when the run started")
    if len(manifests) > 1:
        texts.append(pooled_table(pooled, list(manifests)))
    text = header + "\n\n" + "\n\n".join(texts)
    print(text)
    tag = f"-{args.label}" if args.label else ""
    (args.out / f"results{tag}.md").write_text(text + "\n", "utf-8")
    (args.out / f"results{tag}.json").write_text(json.dumps(
        {"header": header, "args": {k: str(v) for k, v in vars(args).items()},
         "sets": everything}, indent=1, ensure_ascii=False) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
