"""Model cards (README.md) for exported models, in the Hugging Face ``model-index`` format.

The card is assembled from what a whisper-ja run leaves behind: the training folder's
``config.yaml`` and ``summary.json`` (written by ``whisper-ja train``) and, optionally, an
evaluation ``report.json`` (written by ``whisper-ja evaluate``). The YAML front matter follows the
hub's model-index schema (task ``automatic-speech-recognition``, a dataset, metrics ``cer`` and
``wer``), so the hub renders the evaluation table and leaderboards can read it.

The report and training files are read tolerantly (a missing key leaves a row out and the card
says so) because they are written by other commands whose outputs may grow; nothing here can
make an export fail except an unreadable file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from whisper_ja.audio.constants import FRAMES_PER_SECOND
from whisper_ja.audio.features import ContextPolicy
from whisper_ja.errors import ModelCardError

__all__ = [
    "CardInfo",
    "EvalRow",
    "ModelCardError",
    "TrainingInfo",
    "find_training_info",
    "read_eval_report",
    "render_model_card",
]

TRAINING_FILES = ("config.yaml", "summary.json")
_CER_KEYS = ("cer", "CER", "cer_rate")
_WER_KEYS = ("wer", "WER", "wer_rate")
# Summary entries only useful for debugging a run, not to a reader of the card.
_NOISE = frozenset({"replica_checksums"})
# Where an evaluation report may keep its overall numbers, most specific first.
_OVERALL_KEYS = ("overall", "metrics", "summary", "results", "total")


@dataclass(frozen=True)
class TrainingInfo:
    """What ``whisper-ja train`` recorded about a run.

    Attributes:
        folder: The training output folder the files came from.
        config: Parsed ``config.yaml`` (empty if absent).
        summary: Parsed ``summary.json`` (empty if absent).
    """

    folder: Path
    config: dict[str, Any]
    summary: dict[str, Any]


@dataclass(frozen=True)
class EvalRow:
    """One line of the evaluation table.

    Attributes:
        dataset: Name of the evaluated manifest / corpus.
        split: Split name (``test`` unless the report says otherwise).
        cer: Character error rate as a fraction (0.123 = 12.3 %), or None if not reported.
        wer: Word error rate as a fraction, or None.
        cer_low: Lower end of the CER's 95 % confidence interval, if reported.
        cer_high: Upper end of that interval.
        utterances: Number of utterances scored, or None.
        synthetic: Whether the data is synthetic speech (labelled as such in the card).
    """

    dataset: str
    split: str = "test"
    cer: float | None = None
    wer: float | None = None
    cer_low: float | None = None
    cer_high: float | None = None
    utterances: int | None = None
    synthetic: bool = False


@dataclass(frozen=True)
class CardInfo:
    """Everything a model card shows.

    Attributes:
        name: Model name (the output folder's name by default).
        base_model: Base model id or path.
        export_format: ``hf`` or ``ct2``.
        adapter: The merged LoRA adapter folder, if any.
        quantization: CTranslate2 weight type, if any.
        dynamic_context: The model was fine-tuned on shortened encoder input.
        training: Training run information, if found.
        evaluation: Rows of the evaluation table.
        normalizer: Text normalizer used for scoring, if known.
        context: The context policy recorded in the export (``whisper_ja.json``), if any.
    """

    name: str
    base_model: str
    export_format: str
    adapter: str | None = None
    quantization: str | None = None
    dynamic_context: bool = False
    training: TrainingInfo | None = None
    evaluation: tuple[EvalRow, ...] = ()
    normalizer: str | None = None
    context: ContextPolicy | None = None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelCardError(f"{path}: cannot read JSON: {err}") from err
    if not isinstance(data, dict):
        raise ModelCardError(f"{path}: expected a JSON object at the top level")
    return data


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ModelCardError(f"{path}: cannot read YAML: {err}") from err
    if not isinstance(data, dict):
        raise ModelCardError(f"{path}: expected a mapping at the top level")
    return data


def find_training_info(*folders: Path | None) -> TrainingInfo | None:
    """Find ``config.yaml`` / ``summary.json`` of a training run.

    Each folder is searched, then its parent (an adapter may sit in a subfolder of the run,
    e.g. ``run/best``); the first folder holding either file wins.

    Args:
        folders: Candidate folders (adapter folder, model folder); None entries are skipped.

    Returns:
        The parsed files, or None when no candidate holds them.
    """
    for folder in folders:
        if folder is None:
            continue
        for candidate in (folder, folder.parent):
            if any((candidate / name).is_file() for name in TRAINING_FILES):
                config_path, summary_path = (candidate / n for n in TRAINING_FILES)
                return TrainingInfo(
                    folder=candidate,
                    config=_read_yaml(config_path) if config_path.is_file() else {},
                    summary=_read_json(summary_path) if summary_path.is_file() else {},
                )
    return None


def _number(value: Any) -> float | None:
    """A metric value from a number, or a mapping holding one (``{"rate": ...}``, ...)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        for key in ("rate", "value", "mean", "estimate", "point"):
            if key in value:
                return _number(value[key])
    return None


def _metric(section: Mapping[str, Any], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        if key in section and (found := _number(section[key])) is not None:
            return found
    return None


def _overall_section(report: Mapping[str, Any]) -> Mapping[str, Any]:
    for key in _OVERALL_KEYS:
        if isinstance(report.get(key), Mapping):
            return report[key]
    return report


def _first_text(report: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = report.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _interval(section: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[float | None, ...]:
    for key in keys:
        entry = section.get(key)
        if isinstance(entry, Mapping):
            return _number(entry.get("low")), _number(entry.get("high"))
    return None, None


def _row(section: Mapping[str, Any], dataset: str, split: str, synthetic: bool,
         ) -> EvalRow | None:
    cer, wer = _metric(section, _CER_KEYS), _metric(section, _WER_KEYS)
    if cer is None and wer is None:
        return None
    count = _number(section.get("utterances", section.get("n_utterances", section.get("n"))))
    low, high = _interval(section, _CER_KEYS)
    return EvalRow(dataset=dataset, split=split, cer=cer, wer=wer, cer_low=low, cer_high=high,
                   utterances=int(count) if count is not None else None, synthetic=synthetic)


def read_eval_report(path: Path) -> tuple[tuple[EvalRow, ...], str | None]:
    """Read the CER/WER of a ``whisper-ja evaluate`` ``report.json``.

    The overall row comes from ``overall`` (``cer``/``wer`` as ``{"rate", "low", "high"}``, as
    :mod:`whisper_ja.evaluation.report` writes them, or plain numbers); one row per corpus follows
    when
    ``by_corpus`` lists more than one.

    Args:
        path: The report file.

    Returns:
        The evaluation rows and the normalizer name, if stated.

    Raises:
        ModelCardError: the file is unreadable or holds neither a CER nor a WER.
    """
    report = _read_json(path)
    manifest = _first_text(report, ("manifest", "dataset", "test_manifest"))
    dataset = Path(manifest).stem if manifest else "unnamed test set"
    split = _first_text(report, ("split",)) or "test"
    by_corpus: Mapping[str, Any] = report.get("by_corpus") or {}
    if not isinstance(by_corpus, Mapping):
        by_corpus = {}
    synthetic = bool(report.get("synthetic")) or "synth" in dataset.lower()
    overall = _row(_overall_section(report), dataset, split, synthetic)
    if overall is None:
        raise ModelCardError(f"{path}: no overall 'cer' or 'wer' found in the report")
    rows = [overall]
    if len(by_corpus) > 1:
        rows += [r for name, section in by_corpus.items() if isinstance(section, Mapping)
                 and (r := _row(section, f"{dataset} / {name}", split,
                                "synth" in name.lower())) is not None]
    normalizer = _first_text(report, ("normalizer", "normalizer_preset"))
    return tuple(rows), normalizer


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value) or "—"
    text = "—" if value is None or value == "" else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(rows: list[tuple[str, Any]], header: tuple[str, str]) -> list[str]:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| `{key}` | {_cell(value)} |" for key, value in rows]
    return lines


def _front_matter(info: CardInfo) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "language": ["ja"],
        "library_name": "transformers" if info.export_format == "hf" else "ctranslate2",
        "pipeline_tag": "automatic-speech-recognition",
        "base_model": info.base_model,
        "tags": ["whisper", "whisper-ja", "japanese", "automatic-speech-recognition"]
        + (["lora"] if info.adapter else [])
        + (["ctranslate2", "faster-whisper"] if info.export_format == "ct2" else []),
    }
    if info.base_model.startswith("openai/whisper"):
        meta["license"] = "mit"  # OpenAI's Whisper weights are MIT; other bases: unknown
    if info.evaluation:
        results = []
        for row in info.evaluation:
            metrics = [{"type": kind, "name": kind.upper() + (" (synthetic speech)"
                                                              if row.synthetic else ""),
                        "value": round(100 * value, 2)}
                       for kind, value in (("cer", row.cer), ("wer", row.wer))
                       if value is not None]
            results.append({
                "task": {"type": "automatic-speech-recognition",
                         "name": "Automatic Speech Recognition"},
                "dataset": {"name": row.dataset, "type": row.dataset, "split": row.split},
                "metrics": metrics,
            })
        meta["model-index"] = [{"name": info.name, "results": results}]
    return meta


def _usage(info: CardInfo) -> list[str]:
    if info.export_format == "hf":
        return ["```python", "from transformers import pipeline", "",
                'asr = pipeline("automatic-speech-recognition", model="PATH_OR_REPO")',
                'print(asr("audio.wav")["text"])  # Japanese is forced in generation_config.json',
                "```", "",
                "transformers' pipeline decodes with beam search (5 beams) unless told otherwise; "
                "pass `generate_kwargs={\"num_beams\": 1}` to decode greedily as whisper-ja's "
                "evaluation does by default."]
    return ["```python", "from faster_whisper import WhisperModel", "",
            'model = WhisperModel("PATH_OR_REPO", compute_type="int8")  # or "float32"',
            'segments, _ = model.transcribe("audio.wav", language="ja", beam_size=1)',
            'print("".join(s.text for s in segments))',
            "```", "",
            "or `whisper-ja transcribe --backend ct2 --model PATH audio.wav`."]


def _context_notes(info: CardInfo) -> list[str]:
    lines: list[str] = []
    if info.dynamic_context:
        lines += ["This model was fine-tuned with **dynamic encoder context**: its encoder saw "
                  "log-mel input cut to the batch's longest clip (with a floor), not always "
                  "30 s. whisper-ja decodes it the same way (the saved config flag "
                  "`whisper_ja_dynamic_context: true` turns it on when the model is loaded); "
                  "plain transformers pipelines pad every input to 30 s, which may cost some "
                  "of the fine-tuning gain.", ""]
    policy = info.context
    if policy is not None and policy.dynamic:
        lines += [f"Recorded context policy (`whisper_ja.json`): the longest clip of a batch "
                  f"rounded up to {policy.bucket_frames} mel frames, never fewer than "
                  f"{policy.min_frames} ({policy.min_frames / FRAMES_PER_SECOND:g} s).", ""]
    if info.export_format == "ct2":
        lines += ["**Stock faster-whisper always decodes with a 30 s context** (log-mel "
                  "features padded to 3000 frames), whatever the model was fine-tuned with, "
                  "and so does `whisper-ja transcribe --backend ct2` (faster-whisper's "
                  "long-form pipeline). For short clips, "
                  "`whisper_ja.inference.ct2_clips.transcribe_audio_ct2` decodes this folder "
                  "with CTranslate2 in batches at the recorded context instead, returning "
                  "faster-whisper segments."
                  + (" For this dynamic-context model stock faster-whisper may lose some of "
                     "the fine-tuning gain: evaluate it before relying on it."
                     if info.dynamic_context else ""), ""]
    return lines


def _training_lines(training: TrainingInfo | None) -> list[str]:
    if training is None:
        return ["## Training", "", "No training record (`config.yaml` / `summary.json`) was "
                "found next to the model or adapter.", ""]
    config_rows = list(_flatten(training.config))
    data_rows = [(k, v) for k, v in config_rows if k.split(".")[0] == "data"]
    setting_rows = [(k, v) for k, v in config_rows if k.split(".")[0] != "data"]
    summary_rows = [(k, v) for k, v in _flatten(training.summary) if k not in _NOISE]
    synthetic = any("synth" in str(v).lower() for _, v in data_rows + summary_rows)
    lines = ["## Training data", ""]
    if synthetic:
        lines += ["The training data includes **synthetic speech** (whisper-ja's offline "
                  "Japanese voices): results on it are labelled synthetic.", ""]
    lines += _table(data_rows, ("data setting", "value")) if data_rows else [
        "The training configuration names no `data` section."]
    lines += ["", "## Training settings", "",
              f"From `{training.folder.name}/config.yaml` (whisper-ja `train`).", ""]
    lines += _table(setting_rows, ("setting", "value")) if setting_rows else ["(none recorded)"]
    if summary_rows:
        lines += ["", "### Run summary", "", "From `summary.json`.", ""]
        lines += _table(summary_rows, ("quantity", "value"))
    return [*lines, ""]


def _evaluation_lines(info: CardInfo) -> list[str]:
    lines = ["## Evaluation", ""]
    if not info.evaluation:
        return [*lines, "No evaluation report was given at export time "
                "(`whisper-ja export --eval-report report.json`).", ""]
    lines += ["| test set | split | utterances | CER % (95 % CI) | WER % |",
              "|---|---|---|---|---|"]
    for row in info.evaluation:
        label = row.dataset + (" (synthetic speech)" if row.synthetic else "")
        cer = f"{100 * row.cer:.2f}" if row.cer is not None else "—"
        if row.cer_low is not None and row.cer_high is not None:
            cer += f" ({100 * row.cer_low:.2f}–{100 * row.cer_high:.2f})"
        wer = f"{100 * row.wer:.2f}" if row.wer is not None else "—"
        count = str(row.utterances) if row.utterances is not None else "—"
        lines.append(f"| {_cell(label)} | {row.split} | {count} | {cer} | {wer} |")
    lines += ["", "Scored by whisper-ja (CER on characters without spaces"
              + (f", normalizer `{info.normalizer}`" if info.normalizer else "") + ")."]
    if info.export_format == "ct2":
        lines += ["These figures come from whisper-ja's transformers decoding of the same "
                  "weights; see the note on context above."]
    return [*lines, ""]


def render_model_card(info: CardInfo) -> str:
    """The README.md text of an exported model: YAML front matter, then markdown.

    Args:
        info: What to show.

    Returns:
        The card, ending with a newline.
    """
    front = yaml.safe_dump(_front_matter(info), allow_unicode=True, sort_keys=False)
    how = ("LoRA adapter `" + Path(info.adapter).name + "` merged into the weights"
           if info.adapter else "weights as trained")
    fmt = ("transformers (safetensors)" if info.export_format == "hf"
           else f"CTranslate2 ({info.quantization or 'float32'} weights)")
    lines = [f"# {info.name}", "",
             f"Japanese speech recognition with Whisper, adapted from `{info.base_model}` with "
             f"whisper-ja ({how}). Format: {fmt}. Decoding is forced to "
             "Japanese transcription without timestamps "
             "(`<|startoftranscript|><|ja|><|transcribe|><|notimestamps|>`).", "",
             "## Usage", "", *_usage(info), "", *_context_notes(info),
             *_training_lines(info.training), *_evaluation_lines(info)]
    return f"---\n{front}---\n\n" + "\n".join(lines).rstrip() + "\n"
