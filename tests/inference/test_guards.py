"""The guarded window decode (guards, fallback, silence rule) on a scripted backend."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.inference.fake_backend import EOT, FakeBackend, speech, ts
from whisper_ja.inference.backend import Generated, GenerateRequest
from whisper_ja.inference.guards import (
    compression_ratio,
    cut_repeat,
    decode_windows,
    is_looping,
    tail_repeat,
    trim_tail_repeat,
)
from whisper_ja.inference.options import DecodingOptions, GuardSettings

LOOP = (1, 2, 3) * 10  # a three-token unit, ten times back to back
GOOD = (5, 6, 7, 8, 9, 10)


def _backend(greedy: tuple[int, ...], sampled: tuple[int, ...] = GOOD, *,
             logprob: float = -0.2, no_speech: float = 0.01) -> FakeBackend:
    def script(_: np.ndarray, request: GenerateRequest) -> Generated:
        ids = greedy if request.temperature == 0 else sampled
        return Generated(ids, logprob, no_speech)
    return FakeBackend(script)


def _decode(backend: FakeBackend, options: DecodingOptions | None = None, **kwargs):
    encoded = backend.encode([speech(2.0)])
    return decode_windows(backend, encoded, [0], options or DecodingOptions(),
                          timestamps=False, **kwargs)[0]


def test_repeats_are_found_at_the_tail_and_cut_to_one_copy():
    assert tail_repeat([4, *LOOP]) == 3
    assert trim_tail_repeat([4, *LOOP]) == ([4, 1, 2, 3], True)
    assert tail_repeat(GOOD) == 0
    assert is_looping(LOOP) and not is_looping(GOOD)


def test_cut_repeat_ignores_timestamps_and_drops_what_follows_the_first_copy():
    ids = [ts(0.0), *LOOP[:6], ts(1.0), ts(1.0), *LOOP[6:], ts(3.0)]
    kept, cut = cut_repeat(ids, EOT)
    assert cut
    assert [t for t in kept if t < EOT] == [1, 2, 3]
    assert cut_repeat([ts(0.0), *GOOD, ts(1.0)], EOT) == ([ts(0.0), *GOOD, ts(1.0)], False)


def test_a_loop_is_cut_and_replaced_by_the_fallback():
    backend = _backend(LOOP)
    result = _decode(backend)
    assert result.looped_first and not result.looped
    assert result.ids == GOOD and result.temperature == 0.2
    assert [r.temperature for r in backend.requests] == [0.0, 0.2]


def test_a_loop_is_kept_over_samples_under_the_log_probability_threshold():
    # every temperature fails: a sample read at -2.5 is no transcript, the cut loop is kept
    # (flagged, so long-form decoding decodes the window again in pieces)
    def script(_: np.ndarray, request: GenerateRequest) -> Generated:
        if request.temperature == 0:
            return Generated(LOOP, -0.2, 0.01)
        return Generated(GOOD, -2.5, 0.01)
    result = _decode(FakeBackend(script), DecodingOptions(no_speech_threshold=None))
    assert result.looped and result.ids == LOOP[:3] and result.temperature == 0.0
    # a sample that failed on its compression ratio alone is still preferred to the loop
    def repetitive(_: np.ndarray, request: GenerateRequest) -> Generated:
        if request.temperature == 0:
            return Generated(LOOP, -0.2, 0.01)
        return Generated(GOOD, -0.5, 0.01)
    strict = DecodingOptions(no_speech_threshold=None, guards=GuardSettings(
        compression_ratio_threshold=0.01))
    chosen = _decode(FakeBackend(repetitive), strict)
    assert chosen.ids == GOOD and not chosen.looped


def test_a_loop_the_caller_can_split_is_not_sampled_and_comes_back_flagged():
    backend = _backend(LOOP)
    result = _decode(backend, splittable=lambda _: True)
    assert result.looped and result.looped_first and result.temperature == 0.0
    assert [r.temperature for r in backend.requests] == [0.0]
    # a row that merely fails the log-probability threshold is sampled as before
    unsure = _backend(GOOD, logprob=-1.5)
    _decode(unsure, DecodingOptions(no_speech_threshold=None), splittable=lambda _: True)
    assert [r.temperature for r in unsure.requests] == [0.0, *GuardSettings().temperatures]


def test_without_the_repetition_guard_the_loop_is_kept_whole():
    backend = _backend(LOOP)
    settings = GuardSettings(repetition=False, fallback=False)
    result = _decode(backend, DecodingOptions(guards=settings))
    assert result.ids == LOOP and result.looped
    assert len(backend.requests) == 1


def test_the_temperatures_setting_is_the_fallbacks_sequence():
    backend = _backend(GOOD, GOOD, logprob=-3.0)  # every attempt unconfident
    guards = GuardSettings(temperatures=(0.3, 0.9), seed=7)
    _decode(backend, DecodingOptions(guards=guards, no_speech_threshold=None))
    assert [r.temperature for r in backend.requests] == [0.0, 0.3, 0.9]
    assert {r.seed for r in backend.requests} == {7}


@pytest.mark.parametrize(("guards", "retried"), [
    (GuardSettings(), False),
    (GuardSettings(compression_ratio_threshold=0.01), True),  # every text "repetitive"
    (GuardSettings(logprob_threshold=0.0), True),  # every text "unconfident"
])
def test_thresholds_decide_whether_the_fallback_runs(guards, retried):
    backend = _backend(GOOD)
    _decode(backend, DecodingOptions(guards=guards, no_speech_threshold=None))
    assert (len(backend.requests) > 1) is retried


def test_the_silence_rule_drops_the_window_without_sampling():
    backend = _backend(GOOD, logprob=-2.0, no_speech=0.9)
    result = _decode(backend)
    assert result.silent and len(backend.requests) == 1
    loud = _decode(_backend(GOOD, logprob=-2.0, no_speech=0.9),
                   DecodingOptions(no_speech_threshold=None))
    assert not loud.silent


def test_the_prompt_goes_above_half_temperature_and_a_first_temperature_is_honoured():
    backend = _backend(GOOD, logprob=-3.0)
    _decode(backend, DecodingOptions(no_speech_threshold=None), prompt=(4, 5))
    prompts = {r.temperature: r.prompt for r in backend.requests}
    assert prompts[0.0] == (4, 5) and prompts[0.4] == (4, 5) and prompts[0.6] == ()
    sampled = _backend(GOOD)
    _decode(sampled, DecodingOptions(temperature=0.5))
    assert sampled.requests[0].temperature == 0.5


def test_beams_language_and_token_limit_reach_the_backend():
    backend = _backend(GOOD)
    options = dataclasses.replace(DecodingOptions(), beams=3, language="en", max_new_tokens=50)
    _decode(backend, options)
    request = backend.requests[0]
    assert (request.beams, request.language, request.max_new_tokens) == (3, "en", 50)


def test_compression_ratio_of_repetitive_text_is_high():
    assert compression_ratio("あいうえお" * 20) > 2.4 > compression_ratio("今日は良い天気です")
