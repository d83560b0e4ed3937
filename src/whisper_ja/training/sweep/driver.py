"""``whisper-ja sweep``: which LoRA rank is worth its memory?

Every rank is trained on the same data, with the same seed and step budget (and optionally a
full fine-tune as the reference); each run is then evaluated on the validation and test
manifests. One table and one plot show trainable parameters, peak memory, time per step and CER
with 95% bootstrap intervals, and the sweep names the **smallest rank whose CER lies within the
interval of the best rank**.

The settings are those of ``whisper-ja train`` (so a training YAML is a valid ``--config``) plus
the sweep's own (``--ranks``, ``--targets``, ``--full-reference``, ``--test``). Each run trains
in its own process, so that its peak memory is its own. Runs live in ``OUT/rank-R`` (and
``OUT/full``); an interrupted sweep run again skips finished runs and resumes a half-finished
one through train's resume.

Example:
    ``whisper-ja sweep --config configs/cpu_lora.yaml --ranks 8 32 128 --test test.jsonl``
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from whisper_ja.audio.specaugment import SpecAugmentConfig
from whisper_ja.config import ConfigError, config_to_dict, field, load_config, save_config
from whisper_ja.data.manifest import read_manifest, write_manifest
from whisper_ja.errors import SweepError
from whisper_ja.evaluation.runner import EvaluateConfig, evaluate
from whisper_ja.model.device import DEVICE_HELP, check_device
from whisper_ja.model.quantize import QuantizeBase
from whisper_ja.text.labels import LabelSettings
from whisper_ja.training.gate import GateSettings
from whisper_ja.training.run_checks import RESULT_NEUTRAL_SETTINGS, changed_settings
from whisper_ja.training.settings import (
    WHISPER_LINEAR_MODULES,
    DataSection,
    EfficiencySection,
    LoraSection,
    OptimSection,
    RunSection,
    TrainConfig,
)
from whisper_ja.training.sweep.report import SweepRow, select_rank, write_sweep_report

__all__ = ["SweepConfig", "SweepError", "SweepResult", "evaluate_cer", "sweep",
           "train_in_subprocess"]

log = logging.getLogger(__name__)

_TRAIN_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_NOT_PASSED_ON = {"out", "resume", "mode"}
"""TrainConfig fields the sweep sets itself for each run."""


def _as_in_train(name: str) -> Any:
    """The field ``name`` of TrainConfig, same default and help (defaults live there only)."""
    f = _TRAIN_FIELDS[name]
    return field(f.default, help=f.metadata["help"], default_factory=f.default_factory)


def _split(items: Sequence[int | str]) -> list[str]:
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def _split_ints(items: Sequence[int | str]) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in _split(items))
    except ValueError as err:
        raise ConfigError(f"ranks: expected whole numbers, got {list(items)}") from err


@dataclass(frozen=True)
class SweepConfig:
    """Settings of ``whisper-ja sweep``: the sweep's own, then those of ``whisper-ja train``."""

    # int | str: the CLI also takes "--ranks 8,32,128"; __post_init__ makes them ints.
    ranks: tuple[int | str, ...] = field((8, 32, 128), help="LoRA ranks to train, e.g. "
                                         "8,32,128,256 or 8 32 128 256")
    targets: tuple[str, ...] = field(
        (), help=f"LoRA target modules for every run, of {WHISPER_LINEAR_MODULES} "
                 "(empty: lora.target_modules)")
    alpha_per_rank: float = field(
        2.0, help="LoRA alpha = this x rank, so every rank gets the same update scale "
                  "alpha/rank; 0 = lora.alpha for all ranks")
    full_reference: bool = field(False, help="also fine-tune all weights, as the reference")
    full_lr: float | None = field(
        None, help="learning rate of the full fine-tune (empty: train's default for full; "
                   "optim.lr is meant for the LoRA runs)")
    untouched: bool = field(True, help="also evaluate the untouched model, as a reference row")
    test: tuple[Path, ...] = field((), help="test manifest(s) for the test CER column")
    select_on: Literal["validation", "test"] = field(
        "validation", help="split whose CER picks the best rank and its interval")
    eval_context: Literal["auto", "dynamic", "full"] = field(
        "auto", help="encoder input when evaluating (evaluate's --context): auto = as each "
                     "model was trained; dynamic = shortened for every row, untouched included")
    eval_bf16: bool = field(False, help="evaluate under bf16 autocast (faster on bf16 CPUs)")
    eval_device: str = field("auto", help="where the evaluations decode: " + DEVICE_HELP)
    out: Path = field(Path("runs/sweep"), help="sweep folder: a sub-folder per run, the table "
                      "(sweep.md, sweep.csv, sweep.json) and the plot (sweep.png)")
    resume: bool = field(True, help="skip finished runs and resume a half-finished one; "
                         "false: refuse an out folder that already holds runs")
    mode: Literal["lora", "full"] = field(
        "lora", help="must stay lora (accepted so that a train YAML can be used as --config); "
                     "use --full-reference for a full fine-tune")
    model: str = _as_in_train("model")
    freeze_encoder: bool = _as_in_train("freeze_encoder")
    gradient_checkpointing: bool = _as_in_train("gradient_checkpointing")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = _as_in_train("precision")
    seed: int = _as_in_train("seed")
    data: DataSection = _as_in_train("data")
    lora: LoraSection = _as_in_train("lora")
    specaugment: SpecAugmentConfig = _as_in_train("specaugment")
    optim: OptimSection = _as_in_train("optim")
    efficiency: EfficiencySection = _as_in_train("efficiency")
    run: RunSection = _as_in_train("run")
    quantize_base: QuantizeBase = _as_in_train("quantize_base")
    labels: LabelSettings = _as_in_train("labels")
    gate: GateSettings = _as_in_train("gate")

    def __post_init__(self) -> None:
        check_device(self.eval_device, "eval_device")
        object.__setattr__(self, "ranks", _split_ints(self.ranks))
        object.__setattr__(self, "targets", tuple(_split(self.targets)))
        if not self.ranks:
            raise ConfigError("ranks: name at least one LoRA rank")
        if any(int(r) < 1 for r in self.ranks) or len(set(self.ranks)) != len(self.ranks):
            raise ConfigError(f"ranks: expected distinct ranks >= 1, got {list(self.ranks)}")
        unknown = [t for t in self.targets if t not in WHISPER_LINEAR_MODULES]
        if unknown:
            raise ConfigError(f"targets: unknown module(s) {unknown}; "
                              f"Whisper has {list(WHISPER_LINEAR_MODULES)}")
        if self.alpha_per_rank < 0:
            raise ConfigError(f"alpha_per_rank: must be >= 0, got {self.alpha_per_rank}")
        if self.alpha_per_rank and self.lora.rslora:
            # alpha = k x rank under alpha/sqrt(rank) scaling would grow the update as
            # sqrt(rank): the opposite of what rank-stabilized scaling is for.
            raise ConfigError("alpha_per_rank: with lora.rslora, set alpha_per_rank: 0 so that "
                              "every rank shares lora.alpha (scale alpha/sqrt(rank))")
        if self.mode != "lora":
            raise ConfigError("mode: a sweep trains LoRA ranks; add the full fine-tune with "
                              "--full-reference instead of mode: full")
        if self.select_on == "validation" and not self.data.validation:
            raise ConfigError("select_on: validation needs data.validation manifests "
                              "(or choose --select-on test)")
        if self.select_on == "test" and not self.test:
            raise ConfigError("select_on: test needs --test manifests")
        for name in self.run_names():
            self.train_config(name)  # every run's TrainConfig validates before any work

    def run_names(self) -> list[str]:
        """Sub-folder names of the training runs, smallest rank first."""
        names = [f"rank-{r}" for r in sorted(int(r) for r in self.ranks)]
        return names + (["full"] if self.full_reference else [])

    def train_config(self, name: str) -> TrainConfig:
        """The TrainConfig of run ``name`` (``rank-R`` or ``full``), resume on."""
        values = {k: v for k, v in config_to_dict(self).items()
                  if k in _TRAIN_FIELDS and k not in _NOT_PASSED_ON}
        values.update(out=str(self.out / name), resume=True)
        if name == "full":
            values["mode"] = "full"
            # optim.lr is tuned for LoRA (a 100x larger rate than full fine-tuning wants).
            values["optim"]["lr"] = self.full_lr
        else:
            rank = int(name.removeprefix("rank-"))
            values["mode"] = "lora"
            values["lora"]["rank"] = rank
            if self.targets:
                values["lora"]["target_modules"] = list(self.targets)
            if self.alpha_per_rank:
                values["lora"]["alpha"] = self.alpha_per_rank * rank
        return load_config(TrainConfig, base=values)


@dataclass(frozen=True)
class SweepResult:
    """A finished sweep: its rows, the best and the recommended run, and its files."""

    rows: list[SweepRow]
    best: str | None
    recommended: str | None
    files: dict[str, Path]


TrainFn = Callable[[TrainConfig], dict[str, Any]]
"""Trains one run and returns its ``summary.json`` content."""
EvaluateFn = Callable[[str, Path | None, Path, Path], dict[str, Any]]
"""``(model, adapter, manifest, out) -> {"rate", "low", "high"}``: CER with its interval."""


def train_in_subprocess(config: TrainConfig) -> dict[str, Any]:
    """Run ``whisper-ja train`` for ``config`` in a child process; return its summary.

    A fresh process per run makes the peak memory in ``summary.json`` that run's own (the
    process's peak RSS never goes down).

    Raises:
        SweepError: training exited with an error.
    """
    config.out.mkdir(parents=True, exist_ok=True)
    path = config.out / "sweep_train_config.yaml"
    save_config(config, path)
    command = [sys.executable, "-m", "whisper_ja.cli", "train", "--config", str(path)]
    log.info("sweep: %s", shlex.join(command))
    code = subprocess.run(command, check=False).returncode
    if code != 0:
        raise SweepError(f"training run {config.out} failed (exit code {code}); run the "
                         "sweep again to resume it")
    return _read_json(config.out / "summary.json")


def evaluate_cer(model: str, adapter: Path | None, manifest: Path, out: Path,
                 **settings: Any) -> dict[str, Any]:
    """CER with its 95% interval through ``whisper-ja evaluate`` (writes ``out``).

    ``settings`` are further ``EvaluateConfig`` fields (e.g. ``max_new_tokens``).
    """
    # load_config, not the constructor: settings name fields of the inline decoding/runtime
    # blocks (max_new_tokens, backend...) as users write them.
    report = evaluate(load_config(EvaluateConfig, base={
        "manifest": str(manifest), "model": model, "adapter": str(adapter) if adapter else None,
        "out": str(out), **settings}))
    return dict(report.data["overall"]["cer"])


def _read_json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def _check_same_settings(config: TrainConfig) -> None:
    """Refuse to reuse a run folder trained with other settings (its config.yaml)."""
    saved = config.out / "config.yaml"
    if not saved.is_file():
        return
    old = config_to_dict(load_config(TrainConfig, saved))
    differ = [key for key, _, _ in changed_settings(old, config_to_dict(config))
              if key not in RESULT_NEUTRAL_SETTINGS]
    if differ:
        raise ConfigError(f"out: {config.out} holds a run with other settings "
                          f"({', '.join(differ)}); choose another --out or remove it")


def _combined_manifest(paths: Sequence[Path], out: Path) -> Path | None:
    """One manifest file for evaluate (which takes one), concatenating ``paths``."""
    if not paths:
        return None
    if len(paths) == 1:
        return Path(paths[0])
    target = out / f"{out.name}.jsonl"
    write_manifest(target, read_manifest(*paths))
    return target


def _evaluate_run(name: str, model: str, adapter: Path | None, manifests: dict[str, Path | None],
                  out: Path, evaluate_fn: EvaluateFn) -> dict[str, dict[str, Any] | None]:
    scores: dict[str, dict[str, Any] | None] = {}
    for split, manifest in manifests.items():
        if manifest is None:
            scores[split] = None
            continue
        target = out / f"eval-{split}"
        done = target / "sweep_cer.json"
        if done.is_file():  # resume: this evaluation finished before
            scores[split] = _read_json(done)
            continue
        log.info("sweep: evaluating %s on %s", name, manifest)
        cer = evaluate_fn(model, adapter, manifest, target)
        target.mkdir(parents=True, exist_ok=True)
        done.write_text(json.dumps(cer), encoding="utf-8")
        scores[split] = cer
    return scores


def _train_run(config: SweepConfig, name: str, train_fn: TrainFn) -> dict[str, Any]:
    run_config = config.train_config(name)
    _check_same_settings(run_config)
    summary_path = run_config.out / "summary.json"
    if summary_path.is_file():
        log.info("sweep: %s finished before, skipped", name)
        return _read_json(summary_path)
    log.info("sweep: training %s", name)
    return train_fn(run_config)


def sweep(config: SweepConfig, *, train_fn: TrainFn = train_in_subprocess,
          evaluate_fn: EvaluateFn | None = None, command: str = "") -> SweepResult:
    """Train every run of the sweep, evaluate each, and write the table and plot.

    Args:
        config: The sweep settings.
        train_fn: Trains one run (default: ``whisper-ja train`` in a child process).
        evaluate_fn: Evaluates one model on one manifest (default: ``whisper-ja evaluate``
            with the sweep's ``eval_context`` and ``eval_bf16``).
        command: The command line that started the sweep, recorded in the report.

    Returns:
        The rows, the best run, the recommended (smallest near-best) rank and the files.

    Raises:
        ConfigError: ``resume`` is off and ``out`` already holds runs, or a run folder holds a
            run with other settings.
        SweepError: a training run failed.
    """
    existing = [n for n in config.run_names() if (config.out / n).is_dir()]
    if existing and not config.resume:
        raise ConfigError(f"out: {config.out} already holds runs ({', '.join(existing)}); "
                          "pass --resume to continue the sweep or choose another folder")
    config.out.mkdir(parents=True, exist_ok=True)
    save_config(config, config.out / "sweep_config.yaml")
    eval_dir = config.out / "manifests"
    eval_dir.mkdir(exist_ok=True)
    manifests = {"validation": _combined_manifest(config.data.validation, eval_dir / "validation"),
                 "test": _combined_manifest(config.test, eval_dir / "test")}
    if evaluate_fn is None:
        evaluate_fn = functools.partial(evaluate_cer, context=config.eval_context,
                                        bf16=config.eval_bf16, device=config.eval_device,
                                        progress=config.run.progress)
    rows: list[SweepRow] = []
    if config.untouched:
        scores = _evaluate_run("untouched", config.model, None, manifests,
                               config.out / "untouched", evaluate_fn)
        rows.append(SweepRow.untouched(scores))
    for name in config.run_names():
        summary = _train_run(config, name, train_fn)
        run_dir = config.out / name
        model, adapter = ((str(run_dir), None) if name == "full"
                          else (config.model, run_dir))
        scores = _evaluate_run(name, model, adapter, manifests, run_dir, evaluate_fn)
        rows.append(SweepRow.from_run(name, summary, scores))
    best, recommended = select_rank(rows, config.select_on)
    files = write_sweep_report(rows, config.out, best=best, recommended=recommended,
                               select_on=config.select_on, command=command,
                               synthetic=_synthetic(manifests))
    return SweepResult(rows=rows, best=best, recommended=recommended, files=files)


def _synthetic(manifests: dict[str, Path | None]) -> bool:

    paths = [p for p in manifests.values() if p is not None]
    return any(u.is_synthetic for u in read_manifest(*paths)) if paths else False
