"""``whisper-ja demo`` (what ``make demo`` runs): the paper's experiment end to end, offline.

Steps, each skipped when a re-run with the same ``--out`` and settings finds it finished:

1. synthesize a small Japanese corpus (SYNTHETIC speech: Open JTalk and Kokoro voices reading
   sentences of several text sources: Tatoeba, numbers, dates, money, names, addresses, long
   ones), the unseen-domain check set (a text source never trained on, long clips, voices never
   heard in training), the English retention set and English clips to mix into training;
2. split the corpus so that test sentences, and at least one test voice, never occur in
   training; join the training clips into recordings of up to 8 s (the encoder's context
   floor) with each sentence's exact times, so one encoder pass trains on several sentences
   and half the labels teach Whisper's timestamps; a tenth of the clips into recordings of up
   to 28 s instead, so the adapter keeps decoding a whole 30 s window;
3. evaluate the untouched model on the test split (at the 8 s context floor), as it is
   deployed: a float32 CTranslate2 export decoded by whisper-ja's batched ct2 path, guards on
   (``--backend transformers`` decodes with transformers instead);
4. fine-tune it with LoRA (CPU recipe: bf16 autocast where supported, dynamic context,
   SpecAugment, English mixed in, timestamped and prompted labels mixed in), with the
   versatility gate judging, on the unseen-domain and English sets, every validation that
   could become the kept adapter (each judged on a temporary float32 CTranslate2 snapshot);
   the kept adapter is the best one that passes;
5. evaluate the adapted model (its export) on the same test split, compared utterance by
   utterance with 3;
6. join test utterances into long recordings (pauses, a noise-only stretch) and transcribe them
   with both exports as long audio is deployed (Silero VAD, Whisper's timestamps, batched
   windows): CER, boundary F1 and the share of windows with well-formed timestamps;
7. print the rows before and after (test split, unseen-domain check, English retention, long
   audio, with paired intervals), the gate's verdict, the test split's detail table, and where
   the reports and plots are.

Every number printed is measured in this run. With hub access the same runs on another model:
``whisper-ja demo --model openai/whisper-tiny --out demo_tiny``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from whisper_ja.audio.constants import FRAMES_PER_SECOND
from whisper_ja.audio.features import ContextPolicy
from whisper_ja.commands import make_longform as make_longform_command
from whisper_ja.commands import split as split_command
from whisper_ja.commands.steps import ResumableSteps
from whisper_ja.config import ConfigError, config_to_dict, field, load_config
from whisper_ja.data.english import (
    synthesize_english_training_set,
    synthesize_retention_set,
)
from whisper_ja.data.longform import LongformSettings, pack_by_voice
from whisper_ja.data.manifest import read_manifest, write_manifest
from whisper_ja.data.split import SplitConfig
from whisper_ja.data.synth import synthesize_corpus
from whisper_ja.data.unseen import UNSEEN_VOICES, UnseenConfig, make_unseen_set
from whisper_ja.data.voices import parse_voice
from whisper_ja.evaluation.before_after import format_summary
from whisper_ja.evaluation.runner import EvaluateConfig, evaluate
from whisper_ja.inference.options import DecodingOptions, RuntimeSettings
from whisper_ja.model.device import DEVICE_HELP, check_device, describe_machine
from whisper_ja.training.loop import train
from whisper_ja.training.settings import WHISPER_LINEAR_MODULES, TrainConfig

__all__ = ["DemoConfig", "Settings", "run"]

log = logging.getLogger(__name__)

# Sized by measurement (docs/versatility.md): the smallest recipe found that meets the
# versatility targets. On 2 CPU cores without bf16 (fp32 LoRA step ~6.5 s on an AVX2 EPYC) the
# 80-step run of joined recordings took 21.4 min and its best checkpoint was step 40 (one
# epoch). 32 steps (0.8 epoch) kept every target in fp32, 24 lost the long-audio boundary gain
# (F1 +1.4 points, not significant), hence 32 steps and one validation; the untouched model is
# evaluated at the 8 s context floor instead of 30 s. Open JTalk synthesizes ~10x faster than
# Kokoro, so training speech is Open JTalk's Mei at five pitches; the held-out test voices add
# an unseen pitch and an unseen engine (Kokoro).
TRAIN_VOICES = ("openjtalk:-4", "openjtalk:-2", "openjtalk:0", "openjtalk:+2", "openjtalk:+4")
TEST_VOICES = ("openjtalk:+1", "kokoro:jf_alpha")


@dataclass(frozen=True)
class DemoConfig:
    """Settings of ``whisper-ja demo``."""

    model: str = field("openai/whisper-base", help="model to adapt (offline: whisper-base)")
    out: Path = field(Path("demo_out"), help="output folder; re-running resumes in it")
    utterances: int = field(600, help="synthetic utterances read by the training voices "
                            "(split into train, validation and test)")
    voices: tuple[str, ...] = field(TRAIN_VOICES, help="voices of the main corpus "
                                    "(whisper-ja synth specs)")
    test_voices: tuple[str, ...] = field(TEST_VOICES, help="voices never heard in training: "
                                         "they read test sentences only")
    test_voice_utterances: int = field(40, help="utterances read by the test-only voices")
    test_seen_voices: int = field(60, help="test utterances read by training voices "
                                  "(their sentences are still never seen in training)")
    validation: int = field(30, help="validation utterances (early stopping)")
    unseen: int = field(30, help="utterances of the unseen-domain check set (gate check a)")
    unseen_voices: tuple[str, ...] = field(UNSEEN_VOICES, help="voices of the unseen-domain "
                                           "check, never heard in training")
    english_clips: int = field(60, help="English clips mixed into training against forgetting "
                               "(0 = none)")
    retention: int = field(30, help="English retention clips judged by the gate (check b)")
    pack_seconds: float = field(
        ContextPolicy().min_frames / FRAMES_PER_SECOND,
        help="join training clips into recordings of up to this many seconds (default: the "
             "8 s context floor, which every clip fills anyway), each sentence's times kept; "
             "0 = train on the clips as they are")
    long_share: float = field(
        0.1, help="share of the training clips joined instead into recordings of up to "
                  "long_seconds, timestamps included, so the adapted model still decodes a "
                  "whole 30 s window to its end (long audio is decoded in 30 s windows)")
    long_seconds: float = field(28.0, help="longest of those recordings (s; at most 30)")
    timestamp_probability: float = field(0.5, help="share of training labels with Whisper's "
                                         "timestamp tokens (so timestamps survive)")
    condition_on_prev: float = field(0.2, help="share of training labels prompted with the "
                                     "previous text (as long-form decoding prompts)")
    steps: int = field(32, help="LoRA optimizer steps (early stopping may end sooner)")
    batch_size: int = field(8, help="training batch size")
    lr: float = field(1e-3, help="peak learning rate")
    lora_rank: int = field(16, help="LoRA rank")
    lora_encoder_layers: int = field(0, help="adapt only the top N encoder layers (0 = all): "
                                     "a cheaper backward pass")
    freeze_encoder: bool = field(False, help="adapt the decoder only (no encoder adapters): "
                                 "steps ~2x cheaper, but on the demo's data it broke English "
                                 "(docs/versatility.md)")
    validate_every: int = field(32, help="validate every N steps (the best adapter that "
                                "passes the gate is kept)")
    longform_sentences: int = field(40, help="test utterances joined into long recordings "
                                    "(up to 90 s) for the long-audio row (0 = no such row)")
    eval_batch_size: int = field(16, help="utterances decoded together when evaluating")
    precision: Literal["auto", "fp32", "bf16"] = field(
        "auto", help="training precision: auto = bf16 autocast where the CPU (AVX512-bf16) or "
        "GPU has it, else fp32; fp32 trains as a machine without bf16 does")
    backend: Literal["ct2", "transformers"] = field(
        "ct2", help="what decodes the evaluations and the gate's check sets: float32 "
        "CTranslate2 exports (as deployed; ~2x faster on a CPU than transformers, same "
        "transcripts to float rounding, benchmarks/decode_speed.py) or transformers")
    max_new_tokens: int = field(128, help="longest transcript in tokens (evaluation and "
                                "validation)")
    bootstrap: int = field(1000, help="bootstrap resamples for confidence intervals")
    seed: int = field(0, help="seed of synthesis, split and training")
    fresh: bool = field(False, help="delete earlier results in --out and start over")
    progress: bool = field(True, help="show progress bars")
    device: str = field("auto", help="where the before/after evaluations decode: "
                        + DEVICE_HELP + " (training picks the GPU by itself when present)")

    def __post_init__(self) -> None:
        check_device(self.device)
        if not self.test_voices:
            raise ConfigError("test_voices: at least one voice must be held out of training")
        shared = sorted(set(self.voices) & set(self.test_voices))
        if shared:
            raise ConfigError(f"test_voices: {shared} also in voices (heard in training)")
        if self.utterances < self.test_seen_voices + self.validation + 10:
            raise ConfigError(f"utterances: {self.utterances} leaves under 10 for training "
                              f"after {self.test_seen_voices} test and {self.validation} "
                              "validation utterances")
        shared = sorted(set(self.unseen_voices) & (set(self.voices) | set(self.test_voices)))
        if shared:
            raise ConfigError(f"unseen_voices: {shared} also read the main or test corpus")
        if self.pack_seconds < 0:
            raise ConfigError(f"pack_seconds: must be >= 0, got {self.pack_seconds}")
        if not 0 < self.long_seconds <= 30:
            raise ConfigError(f"long_seconds: must be in (0, 30], got {self.long_seconds}")
        for name in ("timestamp_probability", "condition_on_prev", "long_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name}: must be within 0..1, got {getattr(self, name)}")
        for name in ("steps", "batch_size", "lora_rank", "validate_every", "eval_batch_size",
                     "test_voice_utterances", "validation", "max_new_tokens", "unseen",
                     "retention"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")


def _synthesize(config: DemoConfig) -> None:
    """The Japanese corpora (main, held-out voices, unseen-domain check), then English."""
    corpus = synthesize_corpus(config.out / "corpus", size=config.utterances, seed=config.seed,
                               voices=config.voices, progress=config.progress)
    # A different seed: other sentences (any shared one is pulled into test by the split).
    test_voices = synthesize_corpus(config.out / "corpus_test_voices",
                                    size=config.test_voice_utterances, seed=config.seed + 1,
                                    voices=config.test_voices, progress=config.progress)
    make_unseen_set(UnseenConfig(out=config.out / "unseen", size=config.unseen,
                                 seed=config.seed, voices=config.unseen_voices,
                                 exclude=(corpus, test_voices), progress=config.progress))
    synthesize_retention_set(config.out / "english_retention", seed=config.seed,
                             progress=config.progress)
    if config.english_clips:
        synthesize_english_training_set(config.out / "english_train", config.english_clips,
                                        seed=config.seed, progress=config.progress)


def _held_out_speakers(config: DemoConfig) -> list[str]:
    """Speaker ids (as written in manifests) of the voices heard only in the test split."""
    return [parse_voice(spec).name for spec in config.test_voices]


def _split(config: DemoConfig, held_out: list[str]) -> None:
    """Split so that no test sentence and no test-only voice occurs in train or validation."""
    manifests = (config.out / "corpus" / "manifest.jsonl",
                 config.out / "corpus_test_voices" / "manifest.jsonl")
    total = len(read_manifest(*manifests))
    forced = len(read_manifest(manifests[1]))
    test = forced + config.test_seen_voices
    ratios = (float(total - test - config.validation), float(config.validation), float(test))
    split_dir = config.out / "split"
    split_command.run(SplitConfig(manifests=manifests, out=split_dir, ratios=ratios,
                                  seed=config.seed,
                          test_speakers=tuple(held_out)))
    report = json.loads((split_dir / "split_report.json").read_text(encoding="utf-8"))
    # The split checks itself; the demo refuses to go on with a leaky one.
    if report["text_overlap"] or report.get("test_speakers_outside_test"):
        raise RuntimeError(f"split of {split_dir} leaks: {report['text_overlap']} "
                           f"{report.get('test_speakers_outside_test')}")


def _training_manifests(config: DemoConfig) -> list[Path]:
    """The Japanese and English training manifests, as split and synthesized."""
    english = [config.out / "english_train" / "manifest.jsonl"] if config.english_clips else []
    return [config.out / "split" / "train.jsonl", *english]


def _packed(manifest: Path) -> Path:
    return manifest.parent.parent / f"{manifest.parent.name}_packed" / "manifest.jsonl"


def _pack(config: DemoConfig) -> None:
    """Join each training manifest's clips into recordings of up to ``pack_seconds``.

    whisper-ja's ``pack_by_voice``: clips of one voice in a seeded random order, each trimmed
    to its speech, 0.2-0.6 s pauses, every sentence's start and end written as ``segments``.
    A seeded ``long_share`` of the clips makes recordings of up to ``long_seconds`` instead:
    trained only on 8 s, an adapter stops early in the 30 s windows of long audio.
    """
    short = LongformSettings(max_seconds=config.pack_seconds, min_pause=0.2, max_pause=0.6,
                             seed=config.seed)
    long = dataclasses.replace(short, max_seconds=config.long_seconds)
    for manifest in _training_manifests(config):
        clips = read_manifest(manifest)
        chosen = random.Random(config.seed).sample(range(len(clips)),
                                                   round(config.long_share * len(clips)))
        longs = [clips[i] for i in sorted(chosen)]
        rest = [c for i, c in enumerate(clips) if i not in set(chosen)]
        target = _packed(manifest)
        records = [*pack_by_voice(rest, target.parent / "audio", short,
                                  prefix=f"packed-{manifest.parent.name}"),
                   *pack_by_voice(longs, target.parent / "audio", long,
                                  prefix=f"long-{manifest.parent.name}")]
        write_manifest(target, records)
        print(f"[demo] joined {len(clips)} clips of {manifest} into {len(records)} "
              f"recordings of up to {config.pack_seconds:g} s ({len(longs)} clips into "
              f"recordings of up to {config.long_seconds:g} s)")


def _adapter_dir(train_dir: Path) -> Path:
    """The adapter ``train`` left at the top of its output folder (best by validation CER)."""
    if not (train_dir / "adapter_config.json").is_file():
        raise RuntimeError(f"{train_dir}: no adapter_config.json; did training finish?")
    return train_dir


def _train(config: DemoConfig) -> None:

    split = config.out / "split"
    train_manifests = [str(_packed(m) if config.pack_seconds else m)
                       for m in _training_manifests(config)]
    settings: dict[str, Any] = {
        "model": config.model, "mode": "lora", "out": str(config.out / "train"),
        "precision": config.precision, "seed": config.seed, "freeze_encoder": config.freeze_encoder,
        "resume": True,  # an interrupted demo continues from its last checkpoint
        "data": {"train": train_manifests, "validation": [str(split / "validation.jsonl")],
                 "timestamp_probability": config.timestamp_probability,
                 "condition_on_prev": config.condition_on_prev},
        # The versatility gate: the kept adapter is the best one whose unseen-domain CER,
        # English WER and language ID stay within budget of the untouched model.
        "gate": {"unseen": [str(config.out / "unseen" / "manifest.jsonl")],
                 "retention": [str(config.out / "english_retention" / "manifest.jsonl")],
                 "limit": max(config.unseen, config.retention),
                 "bootstrap": config.bootstrap, "backend": config.backend,
                 "compute_type": _PRECISION[config.backend]},
        # LoRA dropout costs ~20% of a CPU step; SpecAugment and early stopping regularize.
        "lora": {"rank": config.lora_rank, "alpha": 2.0 * config.lora_rank, "dropout": 0.0,
                 "target_modules": list(WHISPER_LINEAR_MODULES),
                 "encoder_layers": config.lora_encoder_layers},
        "optim": {"lr": config.lr, "batch_size": config.batch_size, "max_steps": config.steps,
                  "warmup_steps": max(1, config.steps // 10)},
        # validate_at_start: the untouched model is a candidate, kept if every adapter drifts.
        "run": {"validate_every": config.validate_every, "validate_at_start": True,
                "patience": 2, "save_every": config.validate_every, "tensorboard": False,
                "progress": config.progress, "val_max_new_tokens": config.max_new_tokens},
    }
    train(load_config(TrainConfig, base=settings))


_PRECISION = {"ct2": "float32", "transformers": "auto"}
"""Compute type of each decoding backend: float32 CTranslate2 gives transformers' transcripts
to float rounding (int8 moved the untouched model's boundaries, F1 0.88 -> 0.70)."""


def _runtime(config: DemoConfig, context: Literal["auto", "dynamic"] = "auto"
             ) -> RuntimeSettings:
    """Where the demo decodes: CTranslate2 (a cached conversion) or transformers."""
    return RuntimeSettings(backend=config.backend, device=config.device, context=context,
                           compute_type=_PRECISION[config.backend])


def _evaluate(config: DemoConfig, name: str, adapter: Path | None = None) -> None:
    """Evaluate the untouched (``adapter`` None) or the adapted model on the test split."""
    after = adapter is not None
    evaluate(EvaluateConfig(
        manifest=config.out / "split" / "test.jsonl", model=config.model, adapter=adapter,
        out=config.out / name, label=f"{config.model} + LoRA" if after
        else f"{config.model} (untouched)",
        # The untouched model at the 8 s context floor: as good as 30 s (performance facts)
        # and ~2x faster; the adapted one decodes with the context it was trained with.
        runtime=_runtime(config, "auto" if after else "dynamic"),
        decoding=DecodingOptions(batch_size=config.eval_batch_size,
                                 max_new_tokens=config.max_new_tokens),
        compare=config.out / "eval_before" if after else None,
        train_run=config.out / "train" if after else None,
        bootstrap=config.bootstrap, seed=config.seed, progress=config.progress))


def _evaluate_longform(config: DemoConfig, adapter: Path) -> None:
    """Both models on long recordings joined from test utterances (never trained on).

    Decoded as ``transcribe`` decodes long audio by default (the engine's default long-form
    settings), on the same backend as the evaluations.
    """
    folder = config.out / "longform"
    make_longform_command.run(make_longform_command.Settings(
        manifests=(config.out / "split" / "test.jsonl",), out=folder,
        limit=config.longform_sentences,
        # Pauses of 0.7-2 s and two noise stretches: patterns the training recordings (0.2-0.6 s
        # pauses, no noise) never had, so the row measures long audio, not the training format.
        recording=LongformSettings(max_seconds=90.0, min_pause=0.7, max_pause=2.0,
                                   noise_stretches=2, seed=config.seed)))
    evaluate(EvaluateConfig(
        manifest=folder / "manifest.jsonl", model=config.model, adapter=adapter,
        baseline=config.model, runtime=_runtime(config), out=config.out / "eval_longform",
        suite="longform", decoding=DecodingOptions(batch_size=config.eval_batch_size),
        bootstrap=config.bootstrap, seed=config.seed, progress=config.progress))


def _read(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


Settings = DemoConfig
"""The settings of ``whisper-ja demo``."""


def run(config: DemoConfig) -> int:
    """Entry point of ``whisper-ja demo``: run (or resume) every step and print the table."""
    steps = ResumableSteps(config.out, "demo", {
        k: v for k, v in config_to_dict(config).items() if k not in ("out", "fresh", "progress")},
        fresh=config.fresh)
    held_out = _held_out_speakers(config)
    steps.run("synthesize", lambda: _synthesize(config))
    steps.run("split", lambda: _split(config, held_out))
    if config.pack_seconds:
        steps.run("join training clips", lambda: _pack(config))
    steps.run("evaluate untouched", lambda: _evaluate(config, "eval_before"))
    steps.run("train", lambda: _train(config))
    adapter = _adapter_dir(config.out / "train")
    steps.run("evaluate fine-tuned", lambda: _evaluate(config, "eval_after", adapter))
    if config.longform_sentences:
        steps.run("evaluate long audio", lambda: _evaluate_longform(config, adapter))
    # Times as measured when each step ran (a resumed demo shows the earlier run's times).
    seconds = {name: float(value) for name, value in steps.state["done"].items()}
    summary_file = config.out / "train" / "summary.json"
    text = format_summary(_read(config.out / "eval_before" / "report.json"),
                          _read(config.out / "eval_after" / "report.json"), out=config.out,
                          held_out=held_out, seconds=seconds,
                          train_summary=_read(summary_file) if summary_file.is_file() else None,
                          longform=_read(config.out / "eval_longform" / "report.json")
                          if config.longform_sentences else None,
                          machine=describe_machine())
    (config.out / "demo_summary.md").write_text(text, encoding="utf-8")
    print("\n" + text)
    return 0
