"""Fixtures of the serving tests: loopback servers (tiny and real models) and evaluate runs.

Every server binds 127.0.0.1 on a free port and is stopped when its fixture ends.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
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
from whisper_ja.serve.engine import TransformersEngine
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


@pytest.fixture(scope="session")
def eval_runs(clips_manifest, tmp_path_factory) -> tuple[Path, Path]:
    """Run A (untouched: errors everywhere, clip2 looped) and B (fine-tuned: clip0, clip1 fixed,
    clip3 worse)."""
    root = tmp_path_factory.mktemp("eval_runs")
    a = write_run(root / "before", clips_manifest, "untouched", {
        "clip0": "今日はとても良い天気でした。", "clip1": "私は毎朝コーヒーをのみます。",
        "clip2": "駅までの道を道を道を道を教えて", "clip3": "この本はとても面白かった。"},
        looped={"clip2"})
    b = write_run(root / "after", clips_manifest, "fine-tuned", {
        "clip2": "駅までの道を教えてください。", "clip3": "この本は面白い。"})
    return a, b


def start(engine, **settings) -> BackgroundServer:
    limits = settings.pop("limits", LimitsConfig())
    app = create_app(ServeConfig(model_id=settings.pop("model_id", "test-model"), limits=limits,
                                 **settings), engine)
    return BackgroundServer(app)


@pytest.fixture(scope="session")
def tiny_engine(tiny_whisper) -> TransformersEngine:
    return TransformersEngine(tiny_whisper, max_new_tokens=6)


@pytest.fixture(scope="session")
def base_engine(whisper_base) -> TransformersEngine:
    return TransformersEngine(whisper_base, max_new_tokens=64)


@pytest.fixture(scope="module")
def tiny_server(tiny_engine, eval_runs):
    """The tiny random model behind a server with a 1 MB upload limit and the explorer."""
    with start(tiny_engine, explore=eval_runs,
               limits=LimitsConfig(max_upload_mb=1.0, request_timeout_s=60)) as server:
        yield server


@pytest.fixture(scope="module")
def base_server(base_engine):
    """Real offline whisper-base (exact text matters) with a 1 MB upload limit."""
    with start(base_engine, model_id="whisper-base-ja",
               limits=LimitsConfig(max_upload_mb=1.0, request_timeout_s=120)) as server:
        yield server
