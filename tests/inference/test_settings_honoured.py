"""Every decoding setting is honoured on every path, or refused by name: never ignored.

Each setting is driven through each path (clips, sequential long-form, batched long-form, the
server's adapter) on both backends (transformers and CTranslate2, tiny random models), and the
test checks what reached the model: the requests its backend received (beams, token limit,
language, temperatures, seeds, prompts, the repetition stop), the batches it encoded, the
alignments it was asked for. Settings whose effect is a decision rather than a request (the
silence rule, retries, VAD) are checked on a scripted backend in ``test_longform.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from whisper_ja.config import ConfigError, load_config
from whisper_ja.inference.backend import GenerateRequest
from whisper_ja.inference.engine import Engine, load_engine
from whisper_ja.inference.options import DecodingOptions, RuntimeSettings
from whisper_ja.serve.engine import Engine as ServeEngine
from whisper_ja.serve.engine import RequestOptions

PATHS = ["clips", "sequential", "batched", "serve"]


class Spy:
    """Records what an engine's backend is asked to do."""

    def __init__(self, engine: Engine) -> None:
        self.requests: list[GenerateRequest] = []
        self.batches: list[int] = []
        self.aligned = 0
        backend: Any = engine.backend
        generate, encode, align = backend.generate, backend.encode, backend.align

        def spy_generate(encoded: Any, rows: Any, request: GenerateRequest) -> Any:
            self.requests.append(request)
            return generate(encoded, rows, request)

        def spy_encode(audios: Any, policy: Any = None) -> Any:
            self.batches.append(len(audios))
            return encode(audios, policy)

        def spy_align(*args: Any) -> Any:
            self.aligned += 1
            return align(*args)
        backend.generate, backend.encode, backend.align = spy_generate, spy_encode, spy_align


@pytest.fixture(scope="module", params=["transformers", "ct2"])
def loaded(request, tiny_whisper_dir, tiny_ct2) -> Engine:
    model = str(tiny_ct2 if request.param == "ct2" else tiny_whisper_dir)
    return load_engine(model, None, RuntimeSettings(backend=request.param),
                       DecodingOptions())


def _audio(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.3 * rng.standard_normal(round(seconds * 16000))).astype(np.float32)


def _run(engine: Engine, options: DecodingOptions, path: str) -> Spy:
    """Decode three clips along ``path`` with ``options``; what the backend saw."""
    mode = "batched" if path == "batched" else "sequential"
    options = dataclasses.replace(options, longform=dataclasses.replace(
        options.longform, mode=mode, vad=False))
    engine = dataclasses.replace(engine, options=options)
    spy = Spy(engine)
    audios = [_audio(2.0 + i, seed=i) for i in range(3)]
    try:
        if path == "clips":
            engine.decode_clips(audios)
        elif path == "serve":
            ServeEngine(engine).transcribe(audios, RequestOptions(
                language=options.language, temperature=options.temperature,
                prompt=options.initial_prompt, words=options.longform.word_timestamps))
        else:
            list(engine.transcribe(np.concatenate(audios)).segments)
    finally:
        # the backend is shared by the module's tests: drop the spies
        for name in ("generate", "encode", "align"):
            vars(engine.backend).pop(name, None)
    return spy


def _first(spy: Spy) -> GenerateRequest:
    return spy.requests[0]


# Settings are driven in three groups (settings that do not interact share a run, so each path
# and backend decodes three times, not once per setting); every check names its setting.
GROUPS: dict[str, tuple[list[str], dict[str, Callable[[Spy], bool]]]] = {
    "requests": (
        ["beams=3", "max_new_tokens=7", "language=en", "initial_prompt=テスト",
         "guards.max_ngram=4", "guards.seed=5", "batch_size=1", "guards.fallback=false"],
        {"beams": lambda s: _first(s).beams == 3,
         "max_new_tokens": lambda s: {r.max_new_tokens for r in s.requests} == {7},
         "language": lambda s: {r.language for r in s.requests} == {"en"},
         "initial_prompt": lambda s: bool(_first(s).prompt),
         "guards.max_ngram": lambda s: {r.stop_repeats for r in s.requests} == {4},
         "guards.seed": lambda s: {r.seed for r in s.requests} == {5},
         "batch_size": lambda s: set(s.batches) == {1}}),
    # every text fails the thresholds: the fallback samples at exactly the given temperatures
    "fallback": (
        ["temperature=0.3", "guards.temperatures=[0.2,1.0]",
         "guards.compression_ratio_threshold=0.01", "guards.logprob_threshold=0",
         "no_speech_threshold=null", "max_new_tokens=6"],
        {"temperature": lambda s: _first(s).temperature == 0.3,
         "guards.temperatures": lambda s: {r.temperature for r in s.requests} == {0.3, 1.0},
         "guards.compression_ratio_threshold": lambda s: len(s.requests) > 1}),
    "guards off": (
        ["guards.repetition=false", "guards.fallback=false",
         "guards.compression_ratio_threshold=0.01", "guards.logprob_threshold=0",
         "max_new_tokens=6"],
        {"guards.repetition": lambda s: {r.stop_repeats for r in s.requests} == {0},
         "guards.fallback": lambda s: {r.temperature for r in s.requests} == {0.0}}),
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("group", list(GROUPS))
def test_each_setting_reaches_the_model_on_each_path(loaded, path, group):
    overrides, checks = GROUPS[group]
    spy = _run(loaded, load_config(DecodingOptions, overrides=overrides), path)
    assert spy.requests, "nothing was decoded"
    if path == "serve":  # the server's batches are its queue's (limits.max_batch)
        checks = {k: v for k, v in checks.items() if k != "batch_size"}
    ignored = [name for name, holds in checks.items() if not holds(spy)]
    assert not ignored, f"ignored on {path}: {ignored} ({spy.requests[:3]})"


@pytest.mark.parametrize("path", ["sequential", "batched", "serve"])
def test_word_timestamps_ask_the_model_for_alignments(loaded, path):
    quick = ["max_new_tokens=6", "guards.fallback=false"]
    options = load_config(DecodingOptions, overrides=["longform.word_timestamps=true", *quick])
    plain = _run(loaded, load_config(DecodingOptions, overrides=quick), path)
    timed = _run(loaded, options, path)
    assert plain.aligned == 0 < timed.aligned


def test_a_language_the_model_lacks_is_refused_by_name(loaded):
    with pytest.raises(ConfigError, match="language"):
        loaded.decode_clips([_audio(1.0)], language="xx")


@pytest.mark.parametrize(("backend", "setting"), [
    ("ct2", "dtype=float16"), ("transformers", "compute_type=int8")])
def test_a_setting_of_the_other_backend_is_refused_by_name(backend, setting):
    with pytest.raises(ConfigError, match=setting.split("=")[0]):
        load_config(RuntimeSettings, overrides=[f"backend={backend}", setting])
