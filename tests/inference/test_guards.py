"""Decoding guards: the repetition stop ends a loop; the fallback decodes again when hot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from whisper_ja.audio.constants import SAMPLE_RATE
from whisper_ja.config import ConfigError
from whisper_ja.inference.decoding import DecodeOptions, decode_audio
from whisper_ja.inference.guards import (
    GuardSettings,
    RepetitionStop,
    compression_ratio,
    guarded_generate,
    stop_at_first_repeat,
    tail_repeat,
    trim_tail_repeat,
)

SOT, EOT = 50258, 50257  # stand-ins for the fake generate below; the real ones come from the
# tokenizer in decode_features.


@pytest.mark.parametrize(("ids", "unit"), [
    ([5] * 8, 1),
    ([9, 5, 5, 5, 5, 5, 5, 5, 5], 1),
    ([1, 2] * 4, 2),
    ([7, 1, 2, 3] + [4, 5, 6] * 3, 3),
    ([5] * 7, 0),            # seven copies of one token: not yet a loop
    ([1, 2] * 3, 0),
    ([1, 2, 3, 4, 5, 6], 0),
    ([4, 5, 6] * 3 + [1], 0),  # the repeat is not at the end
])
def test_tail_repeat(ids: list[int], unit: int) -> None:
    assert tail_repeat(ids) == unit


def test_trim_keeps_one_copy_of_the_repeated_unit() -> None:
    assert trim_tail_repeat([7, 8] + [4, 5, 6] * 5) == ([7, 8, 4, 5, 6], True)
    assert trim_tail_repeat([1, 2, 3]) == ([1, 2, 3], False)


def test_stop_at_first_repeat_ends_where_generation_would_have_stopped() -> None:
    # A repeat in the middle (the text went on after it): cut right after its third copy.
    ids = [7, 8] + [4, 5, 6] * 3 + [9, 10, 11]
    assert stop_at_first_repeat(ids) == [7, 8] + [4, 5, 6] * 3
    assert trim_tail_repeat(stop_at_first_repeat(ids)) == ([7, 8, 4, 5, 6], True)
    assert stop_at_first_repeat([5] * 20) == [5] * 8
    assert stop_at_first_repeat([1, 2, 3, 4, 5, 6, 7, 8, 9]) == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    # Exactly what RepetitionStop leaves: the shortest prefix tail_repeat flags.
    assert tail_repeat(stop_at_first_repeat(ids)) and not any(
        tail_repeat(ids[:end]) for end in range(len(stop_at_first_repeat(ids))))


def test_repetition_stop_forces_end_of_text_on_a_looping_row_only() -> None:
    stop = RepetitionStop(SOT, EOT)
    input_ids = torch.tensor([[SOT, 50266, 11, 12, 13, 11, 12, 13, 11, 12, 13],
                              [SOT, 50266, 11, 12, 13, 14, 15, 16, 17, 18, 19]])
    scores = stop(input_ids, torch.zeros(2, 51865))
    assert int(scores[0].argmax()) == EOT and torch.isinf(scores[0, 11])
    assert torch.all(scores[1] == 0)


def test_compression_ratio_grows_with_repetition() -> None:
    assert compression_ratio("今日は良い天気です。") < 1.5
    assert compression_ratio("１０万" * 40) > 2.4


class FakeModel:
    """Generate/score functions whose greedy attempt loops and whose sampled one does not."""

    def __init__(self, sampled: list[int], sampled_logprob: float = -0.2) -> None:
        self.calls: list[tuple[list[int], float]] = []
        self.sampled = sampled
        self.sampled_logprob = sampled_logprob

    def generate(self, rows: list[int], extra: dict) -> list[list[int]]:
        temperature = float(extra.get("temperature", 0.0))
        self.calls.append((rows, temperature))
        out = []
        for row in rows:
            if temperature == 0 and row == 0:
                out.append([3, 4] + [11, 12, 13] * 3)  # what the repetition stop leaves
            else:
                out.append(self.sampled if temperature else [3, 4, 5])
        return out

    def score(self, rows: list[int], ids: list[list[int]]) -> list[float]:
        return [-0.1 if 11 in i else self.sampled_logprob for i in ids]


def _run(fake: FakeModel, settings: GuardSettings | None = None, max_new: int = 64):
    return guarded_generate(fake.generate, fake.score, lambda ids: " ".join(map(str, ids)),
                            batch=2, settings=settings or GuardSettings(), max_new_tokens=max_new,
                            start_id=SOT, eot_id=EOT)


def test_fallback_decodes_a_stopped_loop_again_at_higher_temperature() -> None:
    fake = FakeModel(sampled=[3, 4, 21, 22])
    result = _run(fake)
    assert fake.calls == [([0, 1], 0.0), ([0], 0.2)]  # only the looping row is retried
    assert result.rows == [[3, 4, 21, 22], [3, 4, 5]]
    assert result.temperature == [0.2, 0.0]
    assert result.looped_first == [True, False]
    assert result.loop_kept == [False, False]


def test_fallback_tries_each_temperature_and_keeps_a_cut_loop_only_as_last_resort() -> None:
    fake = FakeModel(sampled=[3, 4, 5], sampled_logprob=-3.0)  # never confident enough
    result = _run(fake)
    assert [t for _, t in fake.calls] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert result.rows[0] == [3, 4, 5]  # a non-looping attempt beats the cut loop
    assert result.loop_kept == [False, False]


def test_guards_off_keep_the_greedy_text() -> None:
    fake = FakeModel(sampled=[3, 4, 21, 22])
    result = _run(fake, GuardSettings(repetition=False, fallback=False))
    assert fake.calls == [([0, 1], 0.0)]
    assert result.rows[0] == [3, 4] + [11, 12, 13] * 3


def test_guard_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="guards.temperatures"):
        GuardSettings(temperatures=(0.0,))


def test_repetition_guard_stops_a_real_generate_loop(tiny_whisper) -> None:
    """The random tiny model repeats itself; the guard ends it long before the limit."""
    audio = (0.1 * np.random.default_rng(0).standard_normal(2 * SAMPLE_RATE)).astype(np.float32)
    model, processor = tiny_whisper.model, tiny_whisper.processor
    off = DecodeOptions(max_new_tokens=60, no_speech_threshold=None,
                        guards=GuardSettings(repetition=False, fallback=False))
    unguarded = decode_audio(model, processor, [audio], off, progress=False)[0]
    assert unguarded.looped and len(unguarded.token_ids) == 60
    on = DecodeOptions(max_new_tokens=60, no_speech_threshold=None,
                       guards=GuardSettings(fallback=False))
    guarded = decode_audio(model, processor, [audio], on, progress=False)[0]
    assert guarded.looped_unguarded
    assert len(guarded.token_ids) < 20
    assert tail_repeat(list(guarded.token_ids)) == 0
