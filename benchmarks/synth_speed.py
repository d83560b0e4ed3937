"""Synthesis speed per engine: audio seconds produced per wall-clock second.

Each voice reads the same Tatoeba sentences (after one warm-up sentence, so that model loading,
e.g. Kokoro assembling its ONNX file, is not counted), including the resampling to 16 kHz that
``whisper-ja synth`` does. All voices are measured in the same run, side by side. CPU seconds
(all threads) are printed too: on a shared machine wall time mostly measures the neighbours.

With ``--corpus N``, it also renders an N-utterance corpus of the given voices with
``synthesize_corpus`` in fresh folders, in interleaved rounds: all in one process (Kokoro's
ONNX session on every core) against the default pool of one-thread worker processes.

    python benchmarks/synth_speed.py --sentences 10 --json speed.json
    python benchmarks/synth_speed.py --sentences 0 --corpus 40 --rounds 2 \
        --voices openjtalk:+1 kokoro:jf_alpha
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

import soxr

from whisper_ja.data.manifest import read_manifest
from whisper_ja.data.synth import synthesize_corpus
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


CORPUS_ARMS = {"one process": 1, "pool of one-thread workers": 0}
"""``workers`` of each corpus arm (0 = the default: one process per core)."""


def measure_corpus(voices: list[str], size: int, rounds: int, seed: int
                   ) -> list[dict[str, float | str | int]]:
    """Render the same corpus with each arm, rounds interleaved; the median wall time each."""
    walls: dict[str, list[float]] = {arm: [] for arm in CORPUS_ARMS}
    audio_seconds = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(rounds):
            arms = list(CORPUS_ARMS)
            for arm in arms[round_index % 2:] + arms[:round_index % 2]:  # alternate who starts
                out = Path(tmp) / "corpus"
                start = time.perf_counter()
                manifest = synthesize_corpus(out, size=size, seed=seed, voices=tuple(voices),
                                             workers=CORPUS_ARMS[arm], progress=False)
                walls[arm].append(time.perf_counter() - start)
                audio_seconds = sum(u.duration for u in read_manifest(manifest))
                shutil.rmtree(out)
    return [{"arm": arm, "utterances": size, "audio_s": round(audio_seconds, 1),
             "wall_s": round(sorted(w)[len(w) // 2], 1), "rounds": rounds,
             "walls_s": ", ".join(f"{x:.1f}" for x in w)} for arm, w in walls.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=10, help="sentences per voice")
    parser.add_argument("--voices", nargs="+", default=list(DEFAULT))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", type=int, default=0,
                        help="also render a corpus of this many utterances per arm")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (--corpus)")
    parser.add_argument("--json", default="", help="also write the results here")
    args = parser.parse_args()
    texts = [s.text for s in random.Random(args.seed).sample(load_sentences(), args.sentences + 1)]
    rows: list[dict[str, float | str | int]] = []
    if args.sentences:
        rows = [measure(spec, texts) for spec in args.voices]
    print(f"{'voice':<30} {'audio s':>8} {'wall s':>7} {'cpu s':>7} {'audio s/wall s':>15} "
          f"{'RTF':>6}")
    for row in rows:
        print(f"{row['voice']:<30} {row['audio_s']:>8} {row['wall_s']:>7} {row['cpu_s']:>7} "
              f"{row['audio_s_per_wall_s']:>15} {row['real_time_factor']:>6}")
    corpus = measure_corpus(args.voices, args.corpus, args.rounds, args.seed) if args.corpus else []
    for row in corpus:
        print(f"corpus, {row['arm']:<27} {row['utterances']} utt. {row['audio_s']} audio s: "
              f"{row['wall_s']} s (median of {row['walls_s']})")
    if corpus:
        ratio = float(corpus[0]["wall_s"]) / float(corpus[1]["wall_s"])
        print(f"pool speed-up over one process: {ratio:.2f}x")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"voices": rows, "corpus": corpus}, handle, indent=2)


if __name__ == "__main__":
    main()
