"""Synthesis speed per engine: audio seconds produced per wall-clock second.

Each voice reads the same Tatoeba sentences (after one warm-up sentence, so that model loading,
e.g. Kokoro assembling its ONNX file, is not counted), including the resampling to 16 kHz that
``whisper-ja synth`` does. All voices are measured in the same run, side by side. CPU seconds
(all threads) are printed too: on a shared machine wall time mostly measures the neighbours.

    python benchmarks/synth_speed.py --sentences 10 --json speed.json
"""

from __future__ import annotations

import argparse
import json
import random
import time

import soxr

from whisper_ja.data.tatoeba import load_sentences
from whisper_ja.data.voices import parse_voice, synthesize

DEFAULT = ("openjtalk:0", "openjtalk:+3", "kokoro:jf_alpha", "kokoro:jf_alpha*0.5+jm_kumo*0.5")


def measure(spec: str, texts: list[str]) -> dict[str, float | str | int]:
    voice = parse_voice(spec)
    synthesize(voice, texts[0])  # warm-up: loading is a one-off cost
    audio_seconds = 0.0
    start, cpu_start = time.perf_counter(), time.process_time()
    for text in texts[1:]:
        audio, rate = synthesize(voice, text)
        audio = soxr.resample(audio, rate, 16000)
        audio_seconds += audio.size / 16000
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu_start  # all threads: less sensitive to a busy machine
    return {"voice": voice.name, "engine": voice.engine, "utterances": len(texts) - 1,
            "audio_s": round(audio_seconds, 2), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "audio_s_per_wall_s": round(audio_seconds / wall, 2),
            "real_time_factor": round(wall / audio_seconds, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=10, help="sentences per voice")
    parser.add_argument("--voices", nargs="+", default=list(DEFAULT))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default="", help="also write the results here")
    args = parser.parse_args()
    texts = [s.text for s in random.Random(args.seed).sample(load_sentences(), args.sentences + 1)]
    rows = [measure(spec, texts) for spec in args.voices]
    print(f"{'voice':<30} {'audio s':>8} {'wall s':>7} {'cpu s':>7} {'audio s/wall s':>15} "
          f"{'RTF':>6}")
    for row in rows:
        print(f"{row['voice']:<30} {row['audio_s']:>8} {row['wall_s']:>7} {row['cpu_s']:>7} "
              f"{row['audio_s_per_wall_s']:>15} {row['real_time_factor']:>6}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
