"""Fixtures of the serving tests: loopback servers (tiny and real models) and evaluate runs.

Every server binds 127.0.0.1 on a free port and is stopped when its fixture ends.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.serve.support import start, write_run
from whisper_ja.inference.backends.hf import HfBackend
from whisper_ja.inference.engine import Engine as InferenceEngine
from whisper_ja.inference.options import DecodingOptions, GuardSettings
from whisper_ja.model import LoadedWhisper
from whisper_ja.serve.engine import Engine
from whisper_ja.serve.settings import LimitsConfig


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


def _engine(loaded: LoadedWhisper, **options) -> Engine:
    """What `whisper-ja serve` runs, on a model already in memory (transformers backend)."""
    return Engine(InferenceEngine(HfBackend(loaded), DecodingOptions(**options), "test"))


@pytest.fixture(scope="session")
def tiny_engine(tiny_whisper) -> Engine:
    # No fallback: random weights fail every confidence test and would be re-decoded 5 times.
    return _engine(tiny_whisper, max_new_tokens=6, guards=GuardSettings(fallback=False))


@pytest.fixture(scope="session")
def base_engine(whisper_base) -> Engine:
    """What `whisper-ja serve` runs by default: Whisper's timestamps after VAD."""
    return _engine(whisper_base, max_new_tokens=64)


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
