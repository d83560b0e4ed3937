"""Does `train` start as fast, in as little memory, on 1 million clips as on 10,000?

Simulated corpora: JSONL manifests of 10,000 / 1,000,000 (/ 10,000,000 with --big) rows whose
clips reuse four SYNTHETIC audio files (Open JTalk), so the audio is not the cost, only the
corpus size; and WebDataset shard folders of the same sizes (one 10,000-clip shard hard-linked
as often as needed, listed in index.json). Each run is ``whisper-ja train`` in its own process
with DEFAULT settings except the model (tiny random by default), the output folder and
``run.log_every=1`` (so the first step is seen in log.jsonl). The benchmark samples the RSS of
the training process and of its DataLoader workers every 0.1 s and stops the run at its first
logged step. It reports time to the first step and peak RSS. ``--memory`` adds the in-memory
path (``data.streaming=never``) at 10,000 rows for comparison.

    .venv/bin/python benchmarks/corpus_scale.py [--rows 10000 1000000] [--big] [--memory]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf

from whisper_ja.audio.io import resample
from whisper_ja.data.manifest import Utterance
from whisper_ja.data.shards import write_shards
from whisper_ja.model.device import cpu_has_bf16

TEXTS = ("今日はとても良い天気ですね。", "駅の近くに新しいパン屋ができたそうです。",
         "会議の資料は昨日のうちに全員へ送っておきました。", "この本はとても面白かった。")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--big", action="store_true", help="also 10,000,000 rows")
    parser.add_argument("--memory", action="store_true",
                        help="also the in-memory path (data.streaming=never) at the first size")
    parser.add_argument("--no-shards", action="store_true", help="manifests only")
    parser.add_argument("--model", default="", help="model folder (default: tiny random)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per run")
    parser.add_argument("--small", type=int, default=0, metavar="ROWS",
                        help="instead: whole runs on a small manifest (the demo's size), "
                             "in memory vs streamed, wall time and time per step")
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps of --small")
    return parser.parse_args(argv)


def make_audio(folder: Path) -> list[tuple[Path, str, float]]:
    import pyopenjtalk  # imported here: only the clip synthesis needs it

    clips = []
    for number, text in enumerate(TEXTS):
        wave, rate = pyopenjtalk.tts(text)
        audio = resample(np.asarray(wave, dtype=np.float32) / 32768.0, int(rate))
        path = folder / f"clip{number}.flac"
        sf.write(path, audio, 16000)
        clips.append((path, text, round(len(audio) / 16000, 3)))
    return clips


def write_rows(path: Path, rows: int, clips: list[tuple[Path, str, float]]) -> None:
    """``rows`` manifest lines reusing ``clips``, written in blocks (flat memory)."""
    with path.open("w", encoding="utf-8") as handle:
        for start in range(0, rows, 100_000):
            handle.write("".join(
                Utterance(f"sim/{i:09d}", str(clips[i % 4][0]), clips[i % 4][1],
                          clips[i % 4][2], "synthetic").to_json() + "\n"
                for i in range(start, min(rows, start + 100_000))))


def shard_folder(base: Path, rows: int, unit: Path) -> Path:
    """``rows`` clips as hard links of the 10,000-clip shard ``unit``, with their index."""
    folder = base / f"shards-{rows}"
    folder.mkdir()
    index = json.loads((unit.parent / "index.json").read_text())
    per = index["shards"][0]["clips"]
    entries = []
    for number in range(rows // per):
        os.link(unit, folder / f"shard-{number:06d}.tar")
        entries.append({**index["shards"][0], "name": f"shard-{number:06d}.tar"})
    (folder / "index.json").write_text(json.dumps({"shards": entries, "clips": rows}))
    return folder


def first_step(model: str, data: Path, out: Path, extra: Sequence[str], timeout: float
               ) -> dict[str, float]:
    """Run ``train`` until its first logged step: seconds and peak RSS (GB)."""
    started = time.monotonic()
    run = subprocess.Popen(
        [sys.executable, "-m", "whisper_ja.cli", "train", f"model={model}", f"out={out}",
         f"data.train=[{data}]", "run.log_every=1", "run.progress=false", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    main_peak = tree_peak = worker_peak = 0
    log = out / "log.jsonl"
    try:
        process = psutil.Process(run.pid)
        while time.monotonic() - started < timeout and run.poll() is None:
            try:
                main = process.memory_info().rss
                workers = [c.memory_info().rss for c in process.children(recursive=True)]
            except psutil.Error:
                break
            main_peak, tree_peak = max(main_peak, main), max(tree_peak, main + sum(workers))
            worker_peak = max([worker_peak, *workers])
            if log.is_file() and '"loss"' in log.read_text(encoding="utf-8"):
                break
            time.sleep(0.1)
        seconds = time.monotonic() - started
    finally:
        for child in psutil.Process(run.pid).children(recursive=True):
            child.kill()
        run.kill()
        _, err = run.communicate()
    if not (log.is_file() and '"loss"' in log.read_text(encoding="utf-8")):
        raise RuntimeError(f"no first step for {data}: {err[-2000:]}")
    return {"s": seconds, "main": main_peak / 1e9, "worker": worker_peak / 1e9,
            "tree": tree_peak / 1e9}


def tiny_model(folder: Path) -> str:
    from whisper_ja.model import tiny_random_whisper  # imported here: only without --model

    tiny = tiny_random_whisper(seed=0)
    tiny.model.save_pretrained(folder)
    tiny.processor.save_pretrained(folder)
    return str(folder)


def small_runs(args: argparse.Namespace) -> None:
    """Whole runs on ``args.small`` rows: the in-memory path against the streamed one."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        model = args.model or tiny_model(base / "model")
        manifest = base / "small.jsonl"
        write_rows(manifest, args.small, make_audio(base))
        print(f"\n| {args.small} rows, {args.steps} steps | wall time (s) | train loop (s) | "
              "time per step (s) |\n|---|---|---|---|")
        for mode in ("never", "always"):
            out = base / f"out-{mode}"
            started = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", "whisper_ja.cli", "train", f"model={model}",
                 f"out={out}", f"data.train=[{manifest}]", f"data.streaming={mode}",
                 f"optim.max_steps={args.steps}", "run.progress=false",
                 # a short encoder input, so the step's compute does not hide the data path
                 "efficiency.context.min_frames=0"],
                capture_output=True, text=True, timeout=args.timeout, check=False)
            if done.returncode:
                raise RuntimeError(done.stderr[-2000:])
            summary = json.loads((out / "summary.json").read_text())
            print(f"| data.streaming={mode} | {time.monotonic() - started:.1f} | "
                  f"{summary['train_time_s']:.1f} | {summary['time_per_step_s']:.3f} |",
                  flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.small:
        small_runs(args)
        return
    sizes = [*args.rows, *([10_000_000] if args.big else [])]
    results: list[tuple[str, int, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        model = args.model or tiny_model(base / "model")
        clips = make_audio(base)
        unit = None
        if not args.no_shards:
            utts = (Utterance(f"sim/{i:09d}", str(clips[i % 4][0]), clips[i % 4][1],
                              clips[i % 4][2], "synthetic") for i in range(10_000))
            write_shards(utts, base / "unit", 10_000)
            unit = base / "unit" / "shard-000000.tar"
        for rows in sizes:
            manifest = base / f"m{rows}.jsonl"
            write_rows(manifest, rows, clips)
            arms = [("jsonl, defaults", manifest, [])]
            if args.memory and rows == sizes[0]:
                arms.append(("jsonl, data.streaming=never", manifest,
                             ["data.streaming=never"]))
            if unit is not None:
                arms.append(("shards, defaults", shard_folder(base, rows, unit), []))
            for name, data, extra in arms:
                out = base / f"out-{len(results)}"
                results.append((name, rows, first_step(model, data, out, extra, args.timeout)))
                print(name, rows, results[-1][2], flush=True)
            manifest.unlink()
    report(results)


def report(results: list[tuple[str, int, dict[str, float]]]) -> None:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.machine())
    print(f"\n{cpu}, {os.cpu_count()} cores, CPU bf16: {'yes' if cpu_has_bf16() else 'no'}; "
          "SYNTHETIC clips reused")
    print("| data | rows | time to first step (s) | peak RSS, training process (GB) | "
          "peak RSS, largest worker (GB) |")
    print("|---|---|---|---|---|")
    for name, rows, r in results:
        print(f"| {name} | {rows:,} | {r['s']:.1f} | {r['main']:.2f} | {r['worker']:.2f} |")


if __name__ == "__main__":
    main()
