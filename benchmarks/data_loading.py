"""Data-loading throughput of streamed training: clips per second per CPU core, stage by stage.

What a DataLoader worker does for each clip, timed on one thread (one worker = one core):
reading and decoding the audio (16 kHz FLAC, as ReazonSpeech ships it), log-mel features (80
bands: whisper-base..large-v2; 128: large-v3 and large-v3-turbo), SpecAugment and collation (per
batch of 16), and the whole streamed reader end to end (a WebDataset tar shard read, labels
tokenized, features, collated: :class:`whisper_ja.training.stream.ClipStream`). From the end-to-end
rate it derives the cores needed to keep one GPU fed at a given training rate.

Clips are SYNTHETIC speech (Open JTalk, ~5 s each: ReazonSpeech's clips average about 5 s);
only their length matters here.

    .venv/bin/python benchmarks/data_loading.py [--clips 64] [--gpu-clips-per-s 50 100 200]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from transformers import WhisperFeatureExtractor

from whisper_ja.audio.features import ContextPolicy, context_frames, log_mel
from whisper_ja.audio.io import load_audio, resample
from whisper_ja.audio.specaugment import SpecAugmentConfig, spec_augment
from whisper_ja.data.collate import Example, collate
from whisper_ja.data.manifest import Utterance
from whisper_ja.data.shards import write_shards
from whisper_ja.data.stream_sources import plan_sources
from whisper_ja.data.timestamps import LabelMix
from whisper_ja.model.device import cpu_has_bf16
from whisper_ja.model.openai_tokenizer import offline_whisper_processor
from whisper_ja.text.labels import LabelSettings
from whisper_ja.training.stream import ClipStream, Featurizer, Labeler, ReaderPlan

SENTENCES = ("今日はとても良い天気ですね。明日も晴れるといいのですが。",
             "駅の近くに新しいパン屋ができたそうです。週末に行ってみます。",
             "会議の資料は昨日のうちに全員へ送っておきました。",
             "この本はとても面白かったので、友人にも勧めました。")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=64, help="clips timed per stage")
    parser.add_argument("--gpu-clips-per-s", type=float, nargs="+", default=[50, 100, 200],
                        help="training rates of one GPU to size the cores for (assumptions)")
    return parser.parse_args(argv)


def make_clips(folder: Path, count: int) -> list[Utterance]:
    """``count`` FLAC clips at 16 kHz of synthetic speech, ~5 s each (four voices' texts)."""
    import pyopenjtalk  # imported here: only the benchmark's clip synthesis needs it

    files = []
    for number, text in enumerate(SENTENCES):
        wave, rate = pyopenjtalk.tts(text)
        audio = resample(np.asarray(wave, dtype=np.float32) / 32768.0, int(rate))
        path = folder / f"clip{number}.flac"
        sf.write(path, audio, 16000)
        files.append((path, text, len(audio) / 16000))
    return [Utterance(f"c{i}", str(files[i % 4][0]), files[i % 4][1], files[i % 4][2], "synth")
            for i in range(count)]


def rate(what: Callable[[], object], items: int) -> float:
    """Items per second of ``what`` (best of 3 runs)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        what()
        best = min(best, time.perf_counter() - started)
    return items / best


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        utts = make_clips(folder, args.clips)
        seconds = float(np.mean([u.duration for u in utts]))
        audio = [load_audio(u.audio) for u in utts]
        rates: dict[str, float] = {"read + decode FLAC": rate(
            lambda: [load_audio(u.audio) for u in utts], len(utts))}
        for mels in (80, 128):
            extractor = WhisperFeatureExtractor(feature_size=mels)
            rates[f"log-mel {mels}"] = rate(lambda e=extractor: [log_mel(a, e) for a in audio],
                                            len(audio))
        processor = offline_whisper_processor()  # large-v3's: 128 mel bands, its tokenizer
        extractor, tokenizer = processor.feature_extractor, processor.tokenizer
        policy = ContextPolicy()
        collate_fn = partial(collate, frames=partial(context_frames, policy=policy))
        examples = [Example(u.id, u.text, log_mel(a, extractor),
                            tuple(tokenizer(u.text)["input_ids"]))
                    for u, a in zip(utts, audio, strict=True)]
        batches = [examples[i:i + 16] for i in range(0, len(examples), 16)]
        rates["collate (batches of 16)"] = rate(lambda: [collate_fn(b) for b in batches],
                                                len(examples))
        padded = [collate_fn(b) for b in batches]
        augment = SpecAugmentConfig(enabled=True)
        generator = torch.Generator().manual_seed(0)
        rates["SpecAugment (batches of 16)"] = rate(
            lambda: [spec_augment(b["input_features"], b["lengths"], augment, generator)
                     for b in padded], len(examples))
        write_shards(iter(utts), folder / "shards", 1000)
        rates["streamed reader end to end (128 mels)"] = rate(
            lambda: _read_all(folder / "shards", tokenizer, extractor, collate_fn), len(utts))
    report(rates, seconds, args.gpu_clips_per_s)


def _read_all(shards: Path, tokenizer: object, extractor: WhisperFeatureExtractor,
              collate_fn: Callable[[list[Example]], dict[str, torch.Tensor]]) -> int:
    plan = ReaderPlan(seed=0, epoch=0, rank=0, world=1, workers=0, slot_order=(0,), skip={},
                      done=frozenset(), weights={}, shuffle_buffer=100, batch_size=16,
                      max_duration=0.0, boundaries=(2.0, 4.0, 6.0, 8.0, 10.0))
    labeler = Labeler(tokenizer, LabelSettings(), LabelMix(0.0, 0.0, 0), 448, 0.0)
    stream = ClipStream(plan_sources([shards], 1, 1 << 22), plan, labeler,
                        Featurizer(extractor, None, 0), collate_fn)
    return sum(len(item.ids) for item in stream)


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def report(rates: dict[str, float], seconds: float, gpu_rates: Sequence[float]) -> None:
    cpu = _cpu_name()
    print(f"\nclips of {seconds:.1f} s (SYNTHETIC speech); one thread; {cpu}; "
          f"CPU bf16: {'yes' if cpu_has_bf16() else 'no'}")
    print(f"{'stage':<40} {'clips/s/core':>12}")
    for stage, value in rates.items():
        print(f"{stage:<40} {value:>12.1f}")
    end_to_end = rates["streamed reader end to end (128 mels)"]
    print("\ncores (DataLoader workers) to feed one GPU, from the end-to-end rate; the GPU "
          "rates are ASSUMPTIONS, not measured here (no GPU; gpu_train_step.py gives the real "
          "one):")
    for gpu in gpu_rates:
        print(f"  GPU training at {gpu:>5.0f} clips/s -> {gpu / end_to_end:5.1f} cores "
              "(+SpecAugment in the training process)")


if __name__ == "__main__":
    main()
