"""Load on ``whisper-ja serve`` over loopback against ``transcribe``'s path in one process.

One model, one set of clips, one machine, one run:

- ``in-process``: the clips decoded by the server's engine called directly, once all together
  (the throughput ceiling) and once one clip at a time (the latency floor). With
  ``--timestamps model`` that is ``transcribe``'s own long-form path (VAD, Whisper's timestamps,
  one file at a time); with ``--timestamps windows`` (default) the windows of all clips are
  decoded in batches of ``--max-batch``, as ``transcribe`` did before long-form landed;
- ``server``: the same model behind ``whisper_ja.serve`` on 127.0.0.1 (a free port), with
  ``--clients`` concurrent clients each sending ``--requests`` requests (multipart uploads of the
  WAV files, as the OpenAI client sends them), cycling through the clips.

The load is bounded in count (clients x requests) and in time (``--max-seconds``: no request
starts after it), and only ever targets the loopback server this script starts and stops.
Prints throughput (requests/s, audio seconds per second), p50/p95 latency, failed requests
(must be 0), the largest batch the server formed, whether the server's transcripts equal the
in-process ones, and the process's resident memory before loading, after loading and after the
load. Clips: Open JTalk voices (**SYNTHETIC** speech) reading fixed sentences.

    .venv/bin/python benchmarks/serve_load.py --clients 4 --requests 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import soundfile as sf

from whisper_ja.audio.constants import SAMPLE_RATE
from whisper_ja.audio.io import load_audio
from whisper_ja.model import load_model
from whisper_ja.serve.app import create_app
from whisper_ja.serve.engine import RequestOptions, TransformersEngine
from whisper_ja.serve.server import BackgroundServer
from whisper_ja.serve.settings import LimitsConfig, ServeConfig
from whisper_ja.text import cer

SENTENCES = (
    "今日はとても良い天気です。", "私は毎朝コーヒーを飲みます。", "駅までの道を教えてください。",
    "この本はとても面白かった。", "明日の会議は午後三時からです。", "彼女は東京に住んでいます。",
    "電車が遅れて申し訳ありません。", "週末は家族と山に登りました。",
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="openai/whisper-base")
    parser.add_argument("--clips", type=int, default=8, help="distinct clips (<= 8)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=3, help="requests per client")
    parser.add_argument("--max-seconds", type=float, default=300.0,
                        help="no request starts after this many seconds of load")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--timestamps", choices=("windows", "model"), default="windows",
                        help="the engine's mode: windows batches uploads together; model is "
                             "transcribe's long-form path (VAD, timestamps), one upload at a time")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.clips <= len(SENTENCES):
        parser.error(f"--clips must be in 1..{len(SENTENCES)}")
    if not (1 <= args.clients <= 32 and 1 <= args.requests <= 50):
        parser.error("--clients must be in 1..32 and --requests in 1..50 (a bounded load)")
    return args


def rss_mb() -> float:
    """Resident memory of this process now (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def synthesize(folder: Path, count: int) -> list[tuple[Path, str]]:
    # Lazy: Open JTalk loads its dictionary on import.
    import pyopenjtalk

    clips = []
    for i, text in enumerate(SENTENCES[:count]):
        wave, rate = pyopenjtalk.tts(text)
        path = folder / f"clip{i}.wav"
        sf.write(path, (np.asarray(wave) / 32768.0).astype(np.float32), int(rate))
        clips.append((path, text))
    return clips


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def in_process(engine: TransformersEngine, audios: list[np.ndarray]) -> dict[str, Any]:
    engine.transcribe(audios[:1], RequestOptions())  # warm-up, not timed
    start = time.perf_counter()
    together = engine.transcribe(audios, RequestOptions())
    batch_seconds = time.perf_counter() - start
    singles = []
    for audio in audios:
        start = time.perf_counter()
        engine.transcribe([audio], RequestOptions())
        singles.append(time.perf_counter() - start)
    return {"texts": [r.text for r in together], "batch_seconds": batch_seconds,
            "single_p50_s": statistics.median(singles), "single_p95_s": percentile(singles, 0.95)}


def load(url: str, clips: list[tuple[Path, str]], args: argparse.Namespace,
         ) -> dict[str, Any]:
    deadline = time.monotonic() + args.max_seconds
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        with httpx.Client(base_url=url, timeout=args.max_seconds + 120) as http:
            for k in range(args.requests):
                if time.monotonic() > deadline:
                    return
                path, _ = clips[(index * args.requests + k) % len(clips)]
                start = time.perf_counter()
                try:
                    response = http.post("/v1/audio/transcriptions", data={"model": "whisper-1"},
                                         files={"file": (path.name, path.read_bytes())})
                    ok = response.status_code == 200
                    text = response.json().get("text", "") if ok else response.text[:200]
                except httpx.HTTPError as err:
                    ok, text = False, repr(err)
                with lock:
                    results.append({"clip": path.name, "ok": ok, "text": text,
                                    "seconds": time.perf_counter() - start})

    start = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        list(pool.map(client, range(args.clients)))
    return {"results": results, "wall_seconds": time.perf_counter() - start}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    memory = {"start_mb": rss_mb()}
    with tempfile.TemporaryDirectory() as tmp:
        clips = synthesize(Path(tmp), args.clips)
        audios = [load_audio(p) for p, _ in clips]
        seconds_of = {p.name: a.size / SAMPLE_RATE for (p, _), a in zip(clips, audios, strict=True)}
        engine = TransformersEngine(load_model(args.model), batch_size=args.max_batch,
                                    timestamps=args.timestamps)
        memory["loaded_mb"] = rss_mb()
        base = in_process(engine, audios)
        memory["after_in_process_mb"] = rss_mb()
        config = ServeConfig(model_id="bench", limits=LimitsConfig(max_batch=args.max_batch))
        with BackgroundServer(create_app(config, engine)) as server:
            run = load(server.url, clips, args)
            health = httpx.get(server.url + "/health").json()
        memory["after_load_mb"] = rss_mb()
    done = [r for r in run["results"] if r["ok"]]
    latencies = [r["seconds"] for r in done]
    expected = {p.name: t for (p, _), t in zip(clips, base["texts"], strict=True)}
    refs = {p.name: ref for p, ref in clips}
    audio_seconds = sum(seconds_of[r["clip"]] for r in done)
    figures = {
        "synthetic": True, "timestamps": args.timestamps, "clips": len(clips),
        "clients": args.clients,
        "requests_per_client": args.requests, "sent": len(run["results"]),
        "failed": len(run["results"]) - len(done),
        "server": {"wall_s": round(run["wall_seconds"], 2),
                   "requests_per_s": round(len(done) / run["wall_seconds"], 3),
                   "audio_s_per_s": round(audio_seconds / run["wall_seconds"], 3),
                   "p50_s": round(percentile(latencies, 0.5), 2) if latencies else None,
                   "p95_s": round(percentile(latencies, 0.95), 2) if latencies else None,
                   "largest_batch": health["largest_batch"], "batches": health["batches"]},
        "in_process": {"all_clips_batched_s": round(base["batch_seconds"], 2),
                       "clips_per_s": round(len(clips) / base["batch_seconds"], 3),
                       "audio_s_per_s": round(sum(seconds_of.values()) / base["batch_seconds"],
                                              3),
                       "one_clip_p50_s": round(base["single_p50_s"], 2),
                       "one_clip_p95_s": round(base["single_p95_s"], 2)},
        "same_text_as_in_process": sum(r["text"] == expected[r["clip"]] for r in done),
        "server_cer": round(cer([refs[r["clip"]] for r in done], [r["text"] for r in done]).rate,
                            4) if done else None,
        "memory_mb": {k: round(v, 1) for k, v in memory.items()},
    }
    print(json.dumps(figures, indent=2, ensure_ascii=False))
    if args.out is not None:
        args.out.write_text(json.dumps(figures, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
