"""Helpers of the serving tests: WAV bytes, evaluate folders, loopback servers."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

from whisper_ja.data.manifest import read_manifest
from whisper_ja.evaluation.plots import plot_groups
from whisper_ja.evaluation.report import (
    COUNT_KEYS,
    METRICS,
    HypothesisRecord,
    build_report,
    write_hypotheses,
    write_report,
)
from whisper_ja.serve.app import create_app
from whisper_ja.serve.engine import EngineResult
from whisper_ja.serve.server import BackgroundServer
from whisper_ja.serve.settings import LimitsConfig, ServeConfig
from whisper_ja.text.metrics import utterance_counts

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
"""Screenshots of the browser tests (git-ignored)."""


def wav_bytes(audio: np.ndarray, rate: int, fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format=fmt)
    return buffer.getvalue()


def _records(manifest: Path, hyps: dict[str, str], looped: set[str]) -> list[HypothesisRecord]:
    utts = read_manifest(manifest)
    refs = [u.text for u in utts]
    texts = [hyps.get(u.id, u.text) for u in utts]
    counts = {m: utterance_counts(refs, texts, m) for m in METRICS}
    return [HypothesisRecord(
        id=u.id, ref=u.text, hyp=texts[i], cer=float(counts["cer"][i].rate),
        looped=u.id in looped, corpus=u.corpus, speaker=u.speaker or f"voice{i % 2}",
        duration=u.duration,
        counts={m: {k: int(getattr(counts[m][i], k)) for k in COUNT_KEYS} for m in METRICS})
        for i, u in enumerate(utts)]


def write_run(folder: Path, manifest: Path, label: str, hyps: dict[str, str],
              looped: set[str] = frozenset()) -> Path:
    """An evaluate output folder as `whisper-ja evaluate` writes it (hyps given, not decoded)."""
    records = _records(manifest, hyps, set(looped))
    folder.mkdir(parents=True, exist_ok=True)
    write_hypotheses(folder / "hypotheses.jsonl", records)
    report = build_report(records, meta={"label": label, "manifest": str(manifest),
                                         "normalizer": "default"}, n_resamples=50)
    report["plots"] = plot_groups(report, folder)
    write_report(report, folder)
    return folder


class EchoEngine:
    """A model-free engine: an empty transcript per upload (for what needs no decoding)."""

    backend = "fake"
    supports_words = False
    supports_temperature = False

    def languages(self) -> frozenset[str]:
        return frozenset({"ja"})

    def transcribe(self, audios, options, *, cancelled=None) -> list[EngineResult]:
        return [EngineResult((), a.size / 16000, "ja", 0.0) for a in audios]


def start(engine, **settings) -> BackgroundServer:
    limits = settings.pop("limits", LimitsConfig())
    app = create_app(ServeConfig(model_id=settings.pop("model_id", "test-model"), limits=limits,
                                 **settings), engine)
    return BackgroundServer(app)
