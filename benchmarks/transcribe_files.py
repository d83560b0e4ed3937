"""Issue 26: many short files through ``whisper-ja transcribe`` against stock faster-whisper.

40 short SYNTHETIC files (3-10 s; Tatoeba sentences of 16-29 characters, so none of the long
sets' sentences, none of the demo's training sentences; four Open JTalk pitches the demo never
uses: Open JTalk renders in a fraction of Kokoro's time on a shared CPU) are transcribed, in
one run on one machine, by:

- ``transcribe``: ``whisper-ja transcribe FILE...`` with no flags through its Python front door
  (:func:`engine_arms.whisper_ja_default_files`), start-up (model loading) included;
- ``faster-whisper``: stock faster-whisper (``WhisperModel``, int8, VAD, greedy unless
  ``--fw-beam``), ``model.transcribe`` per file, on ``whisper-ja export --to ct2
  --quantization int8`` of the same model, model loading included.

One untimed warm-up per arm (two files: caches, lazy imports); then ``--repeats`` rounds, the
arms' order alternating, the median round reported. CER per arm and the paired 95% bootstrap
interval (files resampled) of the CER difference.

    .venv/bin/python benchmarks/transcribe_files.py --repeats 3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import subprocess
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from engine_arms import (
    ct2_export,
    faster_whisper_model,
    faster_whisper_placement,
    stock_faster_whisper,
    whisper_ja_default_files,
)
from engine_longform import BEFORE_ENGINE, machine_line
from heldout_longform import DEFAULT_EXCLUDE

from whisper_ja.data import tatoeba
from whisper_ja.data.manifest import Utterance, read_manifest
from whisper_ja.data.split import text_key
from whisper_ja.data.synth import SynthConfig, synthesize_sentences
from whisper_ja.data.text_sources import SourceSentence
from whisper_ja.text.bootstrap import interval_from_counts, paired_bootstrap_counts
from whisper_ja.text.metrics import ErrorCounts, char_counts
from whisper_ja.text.normalize import normalize

VOICES = ("openjtalk:-3", "openjtalk:+5", "openjtalk:-1.5", "openjtalk:+3.5")
DEV_VOICES = ("openjtalk:-4.5", "openjtalk:+0.5", "kokoro:jf_gongitsune", "kokoro:jm_kumo")
"""``--dev``: a set to look at (other voices, seed and sentences); the default set is reported."""
ROOT = Path("runs/benchmarks/transcribe_files")
FilesArm = Callable[[Sequence[Path]], list[str]]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--model", default="openai/whisper-base")
    parser.add_argument("--adapter", type=Path, default=None, help="LoRA adapter (both arms)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch and CTranslate2 threads")
    parser.add_argument("--fw-beam", type=int, default=1, help="faster-whisper beam size")
    parser.add_argument("--exclude", type=Path, nargs="*", default=list(DEFAULT_EXCLUDE))
    parser.add_argument("--out", type=Path, default=ROOT)
    parser.add_argument("--label", default="")
    parser.add_argument("--dev", action="store_true",
                        help="the set to look at: other voices, seed and sentences")
    return parser.parse_args(argv)


def build_files(count: int, root: Path, exclude: Sequence[Path], dev: bool = False,
                ) -> list[Utterance]:
    """``count`` synthetic clips of 3-10 s (cached; extra candidates cover dropped ones).

    ``dev``: the set to look at, its sentences after the reported set's in the same shuffle.
    """
    voices, seed = (DEV_VOICES, 41) if dev else (VOICES, 40)
    parts = [count, voices, sorted(map(str, exclude))]
    key = hashlib.sha1(json.dumps(parts + ["dev"] if dev else parts).encode()).hexdigest()[:12]
    folder = root / f"files-{'dev-' if dev else ''}{key}"
    if (folder / "manifest.jsonl").is_file():
        cached = read_manifest(folder / "manifest.jsonl")
        if len(cached) >= count:
            return cached[:count]
    refused = "\n".join(text_key(u.text) for u in read_manifest(*exclude)) if exclude else ""
    pool = [s for s in tatoeba.load_sentences(min_chars=16, max_chars=29)
            if not (refused and text_key(s.text) in refused)]
    random.Random(40).shuffle(pool)
    chosen = pool[2 * count:4 * count] if dev else pool[:2 * count]
    sentences = [SourceSentence(str(s.id), s.text, "tatoeba", s.id) for s in chosen]
    config = SynthConfig(out=folder, size=len(sentences), seed=seed, voices=voices,
                         speed_range=(0.9, 1.1), sources=("tatoeba",), min_seconds=3.0,
                         max_seconds=10.0, progress=False)
    utts = read_manifest(synthesize_sentences(config, sentences))
    if len(utts) < count:
        raise SystemExit(f"only {len(utts)} of {count} clips are 3-10 s long")
    return utts[:count]


def faster_whisper_files(ct2: Path, threads: int, beam: int) -> FilesArm:
    """Stock faster-whisper over the files, model loading included."""
    def run(paths: Sequence[Path]) -> list[str]:
        transcribe = stock_faster_whisper(faster_whisper_model(ct2, threads=threads), beam)
        return ["".join(s.text.strip() for s in transcribe(str(p))) for p in paths]

    return run


def timed_rounds(arms: dict[str, FilesArm], paths: list[Path], repeats: int,
                 ) -> tuple[dict[str, list[str]], dict[str, list[float]]]:
    """Each arm's texts (first round) and wall time per round, the order alternating."""
    for arm in arms.values():  # untimed warm-up: lazy imports, caches, conversions
        arm(paths[:2])
    names = list(arms)
    texts: dict[str, list[str]] = {}
    rounds: dict[str, list[float]] = {n: [] for n in names}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            found = arms[name](paths)
            rounds[name].append(time.perf_counter() - start)
            texts.setdefault(name, found)
            print(f"  round {round_ + 1}: {name} {rounds[name][-1]:.1f} s", flush=True)
    return texts, rounds


def report(utts: list[Utterance], texts: dict[str, list[str]],
           rounds: dict[str, list[float]], title: str) -> tuple[str, dict[str, object]]:
    """The Markdown table and the JSON-ready results."""
    counts = {name: [char_counts(normalize(u.text), normalize(t))
                     for u, t in zip(utts, found, strict=True)] for name, found in texts.items()}
    reference = "faster-whisper"
    lines = [title, "", "| arm | CER (95% CI) | deleted chars | wall s (rounds) | "
             "wall vs faster-whisper | CER - faster-whisper (paired 95% CI, files) |",
             "|---" * 6 + "|"]
    results: dict[str, object] = {}
    for name, found in counts.items():
        cer = interval_from_counts(found, "cer", 2000, 0)
        total: ErrorCounts = sum(found, ErrorCounts())
        wall = float(np.median(rounds[name]))
        ratio = wall / float(np.median(rounds[reference]))
        paired = (paired_bootstrap_counts(counts[reference], found, "cer", 2000, 0)
                  if name != reference else None)
        diff = (f"{100 * paired.delta:+.2f} ({100 * paired.low:+.2f}...{100 * paired.high:+.2f})"
                if paired else "-")
        lines.append(f"| {name} | {100 * cer.value:.2f}% ({100 * cer.low:.1f}-"
                     f"{100 * cer.high:.1f}) | "
                     f"{100 * total.deletions / total.reference_length:.2f}%"
                     f" | {wall:.1f} ({', '.join(f'{r:.1f}' for r in rounds[name])}) | "
                     f"{ratio:.2f}x | {diff} |")
        results[name] = {"cer": cer.value, "cer_low": cer.low, "cer_high": cer.high,
                         "wall_s": wall, "wall_rounds_s": rounds[name], "wall_ratio": ratio,
                         "cer_vs_reference": paired.to_dict() if paired else None,
                         "texts": texts[name]}
    return "\n".join(lines), results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    utts = build_files(args.files, args.out, args.exclude, args.dev)
    paths = [Path(u.audio) for u in utts]
    ct2 = ct2_export(args.model, args.adapter, args.out.parent / "engine_longform")
    arms: dict[str, FilesArm] = {
        "transcribe": lambda p: whisper_ja_default_files(p, args.model, args.adapter),
        "faster-whisper": faster_whisper_files(ct2, args.threads, args.fw_beam),
    }
    commit = subprocess.run(["git", "log", "-1", "--format=%h", "--", "src"], capture_output=True,
                            text=True).stdout.strip()
    texts, rounds = timed_rounds(arms, paths, args.repeats)
    seconds = sum(u.duration for u in utts)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    placement = " ".join(faster_whisper_placement())
    title = (f"{stamp}; {machine_line()}; {len(utts)} SYNTHETIC {'dev ' if args.dev else ''}"
             f"files, {seconds:.0f} s of audio ({min(u.duration for u in utts):.1f}-"
             f"{max(u.duration for u in utts):.1f} s); {args.model}"
             f"{' + ' + str(args.adapter) if args.adapter else ''}; "
             f"faster-whisper {placement}, VAD, "
             f"beam {args.fw_beam}; start-up included; median of {args.repeats} rounds; "
             f"whisper-ja {'before the engine' if BEFORE_ENGINE else 'engine'}, src at "
             f"{commit or '?'} when the run started")
    text, results = report(utts, texts, rounds, title)
    print(text)
    tag = ("-dev" if args.dev else "") + (f"-{args.label}" if args.label else "")
    (args.out / f"results{tag}.md").write_text(text + "\n", "utf-8")
    (args.out / f"results{tag}.json").write_text(json.dumps(
        {"title": title, "results": results, "ids": [u.id for u in utts]}, indent=1,
        ensure_ascii=False) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
