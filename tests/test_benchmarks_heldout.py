"""The benchmark helpers of issue 26: set assembly and per-sentence edit counts (no models)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import engine_longform  # noqa: E402
import heldout_longform  # noqa: E402

from whisper_ja.audio.constants import SAMPLE_RATE  # noqa: E402
from whisper_ja.data.manifest import Utterance  # noqa: E402
from whisper_ja.data.timestamps import TimedText  # noqa: E402
from whisper_ja.text.metrics import char_counts  # noqa: E402


def _clip(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Speech-like tone with 0.3 s of silence either side."""
    pad = np.zeros(int(0.3 * SAMPLE_RATE), np.float32)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = (0.3 * np.sin(2 * np.pi * rng.uniform(150, 300) * t)).astype(np.float32)
    return np.concatenate([pad, tone, pad])


@pytest.mark.parametrize("name", list(heldout_longform.SETS))
def test_assemble_makes_a_recording_of_the_spec(name: str) -> None:
    spec = heldout_longform.SETS[name]
    rng = np.random.default_rng(0)
    clips = [(f"文{i}", _clip(rng.uniform(6, 12), rng)) for i in range(30)]
    audio, segments, noise, used = heldout_longform.assemble(clips, spec, seed=1)
    seconds = audio.size / SAMPLE_RATE
    assert spec.seconds[0] <= seconds <= spec.seconds[1]
    assert len(noise) == 2
    assert [s.text for s in segments] == [clips[i][0] for i in used]
    spans = [(s.start, s.end) for s in segments] + noise
    spans.sort()
    gaps = [b[0] - a[1] for a, b in zip(spans, spans[1:], strict=False)]
    assert min(gaps) >= min(low for _, low, _ in spec.pauses) - 1e-3
    for seg, i in zip(segments, used, strict=True):  # trimmed to the tone, exact to 10 ms
        expected = (clips[i][1].size - 2 * int(0.3 * SAMPLE_RATE)) / SAMPLE_RATE
        assert abs((seg.end - seg.start) - expected) <= 0.011


def test_too_few_clips_is_refused() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="raise candidates"):
        heldout_longform.assemble([("文", _clip(8, rng))] * 3, heldout_longform.SETS["dev"], 1)


def test_sentence_counts_add_up_and_land_on_their_sentence() -> None:
    segments = (TimedText(0, 1, "今日は晴れです。"), TimedText(2, 3, "明日は雨でしょう。"),
                TimedText(4, 5, "週末は雪です。"))
    utt = Utterance(id="r", audio="r.wav", text="".join(s.text for s in segments),
                    duration=6.0, corpus="synthetic-longform", segments=segments)
    counts = engine_longform.sentence_counts(utt, "今日は晴れです。週末は雪ですよ。")
    assert [c.deletions for c in counts] == [0, 8, 0]
    assert sum(counts).errors == char_counts("今日は晴れです明日は雨でしょう週末は雪です",
                                             "今日は晴れです週末は雪ですよ").errors
    assert [c.reference_length for c in counts] == [7, 8, 6]
    assert sum(c.deletions for c in engine_longform.sentence_counts(utt, "")) == 21
