"""whisper-ja's batched long-form algorithm on CTranslate2 (``--backend ct2``, batched mode).

Most tests drive the algorithm with a scripted stand-in for CTranslate2's ``Whisper`` (known
ids in, known segments out, the frames and arguments it was given recorded); the last ones run
a tiny int8 export end to end.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from whisper_ja.audio.constants import SAMPLE_RATE
from whisper_ja.audio.features import ContextPolicy
from whisper_ja.data.timestamps import TimestampVocab
from whisper_ja.inference import ct2_longform, faster_longform
from whisper_ja.inference.ct2_longform import ct2_batched_segments, decode_order
from whisper_ja.inference.decoding import DecodeOptions
from whisper_ja.inference.faster import write_context_record
from whisper_ja.inference.faster_longform import ct2_segments
from whisper_ja.inference.longform import LongformOptions
from whisper_ja.inference.pause_split import PauseSettings
from whisper_ja.inference.vad import SpeechSpan, VadSettings, batch_windows


@dataclass
class _Result:
    sequences_ids: list[list[int]]
    scores: list[float]
    no_speech_prob: float


@dataclass
class _Alignment:
    alignments: list[tuple[int, int]]
    text_token_probs: list[float]


@dataclass
class _FakeCt2:
    """CTranslate2's ``Whisper`` as far as the algorithm uses it: scripted, recording."""

    answer: object  # (batch number, row, window frames) -> _Result
    frames: list[int] = field(default_factory=list)
    calls: list[dict] = field(default_factory=list)
    aligned: list[tuple[list[list[int]], list[int]]] = field(default_factory=list)
    encoded_rows: list[int] = field(default_factory=list)
    token_prob: float = 0.5  # align's probability of every text token
    device: str = "cpu"
    compute_type: str = "int8_float32"

    def encode(self, features, to_cpu=False):
        self.encoded_rows.append(features.shape[0])
        return features  # a StorageView, as CTranslate2's encoder output is

    def generate(self, encoded, prompts, **kwargs):
        self.frames.append(encoded.shape[-1])
        self.calls.append({"prompts": prompts, **kwargs})
        batch = len(self.calls) - 1
        return [self.answer(batch, row, encoded.shape[-1]) for row in range(len(prompts))]

    def align(self, encoded, start, texts, num_frames):
        self.aligned.append((texts, num_frames))
        # token i (the end token last) starts 0.2 s after token i - 1
        return [_Alignment([(i, 10 * i) for i in range(len(t) + 1)],
                           [self.token_prob] * len(t)) for t in texts]


@dataclass
class _FakeModel:
    model: _FakeCt2
    hf_tokenizer: Tokenizer


@pytest.fixture(scope="module")
def folder(tiny_whisper, tiny_whisper_dir, tmp_path_factory) -> Path:
    """What ct2_longform reads from an export besides the model: tokenizer and mel settings."""
    out = tmp_path_factory.mktemp("fake-ct2")
    shutil.copy(tiny_whisper_dir / "tokenizer.json", out / "tokenizer.json")
    tiny_whisper.processor.feature_extractor.save_pretrained(out)  # preprocessor_config.json
    return out


@pytest.fixture(scope="module")
def tokenizer(folder) -> Tokenizer:
    return Tokenizer.from_file(str(folder / "tokenizer.json"))


@pytest.fixture(scope="module")
def vocab(tokenizer) -> TimestampVocab:
    return TimestampVocab(base=tokenizer.token_to_id("<|0.00|>"))


def _text(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False).ids


def _install(monkeypatch, tokenizer, answer) -> _FakeCt2:
    fake = _FakeCt2(answer)
    monkeypatch.setattr(ct2_longform, "load_faster_whisper",
                        lambda *args: _FakeModel(fake, tokenizer))
    return fake


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)


WINDOWS = [SpeechSpan(0.0, 20.0), SpeechSpan(25.0, 28.0), SpeechSpan(30.0, 55.0),
           SpeechSpan(60.0, 62.0)]


def test_decode_order_is_shortest_first_only_under_a_dynamic_policy():
    assert decode_order(WINDOWS, ContextPolicy(dynamic=False)) == [0, 1, 2, 3]
    assert decode_order(WINDOWS, ContextPolicy()) == [3, 1, 0, 2]


def test_dynamic_export_decodes_shortest_first_yet_yields_in_time_order(
        folder, tokenizer, vocab, tmp_path, monkeypatch):
    record = tmp_path / "dynamic"
    shutil.copytree(folder, record)
    write_context_record(record, ContextPolicy(bucket_frames=200, min_frames=1000))
    words = [_text(tokenizer, w) for w in ("今日は", "駅まで", "明日", "本です")]

    def answer(batch, row, frames):  # batch b, row r says words[2 * b + r] from 0.5 s to 1.5 s
        ids = [vocab.to_token(0.5), *words[2 * batch + row], vocab.to_token(1.5)]
        return _Result([ids], [-0.2], 0.01)

    fake = _install(monkeypatch, tokenizer, answer)
    monkeypatch.setattr(ct2_longform, "batch_windows", lambda *args: WINDOWS)
    segments = list(ct2_batched_segments(_noise(65.0), record, LongformOptions(mode="batched"),
                                         DecodeOptions(batch_size=2, max_new_tokens=20)))
    # (2 s, 3 s) first at the floor; then (20 s, 25 s): 2500 frames rounded up to 2600
    assert fake.frames == [1000, 2600]
    assert [s.start for s in segments] == [0.5, 25.5, 30.5, 60.5]
    assert [s.end for s in segments] == [1.5, 26.5, 31.5, 61.5]
    # window 60 s was row 0 of batch 0, 25 s row 1; then 0 s and 30 s
    assert [s.text for s in segments] == ["明日", "駅まで", "本です", "今日は"]
    assert [s.token_ids for s in segments] == [tuple(words[i]) for i in (2, 1, 3, 0)]
    assert all(s.timed and not s.looped for s in segments)


def test_stock_export_decodes_30_s_in_time_order_and_yields_after_each_batch(
        folder, tokenizer, vocab, monkeypatch):
    text = _text(tokenizer, "今日は")
    fake = _install(monkeypatch, tokenizer, lambda b, r, f: _Result(
        [[vocab.to_token(0.0), *text, vocab.to_token(1.0)]], [-0.2], 0.01))
    monkeypatch.setattr(ct2_longform, "batch_windows", lambda *args: WINDOWS)
    options = DecodeOptions(batch_size=2, max_new_tokens=30, num_beams=3)
    found = ct2_batched_segments(_noise(65.0), folder, LongformOptions(mode="batched"), options)
    first = next(found)
    assert first.start == 0.0 and len(fake.calls) == 1  # lazily: one batch decoded so far
    rest = list(found)
    assert [s.start for s in [first, *rest]] == [0.0, 25.0, 30.0, 60.0]
    assert fake.frames == [3000, 3000]
    call = fake.calls[0]
    prompt = [tokenizer.token_to_id(t) for t in
              ("<|startoftranscript|>", "<|ja|>", "<|transcribe|>")]
    assert call["prompts"] == [prompt, prompt]  # no <|notimestamps|>: timestamps on
    assert call["return_scores"] and call["return_no_speech_prob"]
    assert call["max_length"] == 60 and call["beam_size"] == 3


def test_silent_windows_give_no_segment(folder, tokenizer, vocab, monkeypatch):
    text = _text(tokenizer, "ご視聴ありがとうございました")

    def answer(batch, row, frames):  # window 0: unconfident and likely silent; 1: confident
        score = -2.0 if row == 0 else -0.1
        return _Result([[vocab.to_token(0.0), *text, vocab.to_token(2.0)]], [score], 0.9)

    _install(monkeypatch, tokenizer, answer)
    monkeypatch.setattr(ct2_longform, "batch_windows", lambda *args: WINDOWS[:2])
    audio = _noise(30.0)
    kept = list(ct2_batched_segments(audio, folder, LongformOptions(mode="batched")))
    assert [s.start for s in kept] == [25.0]
    unruled = DecodeOptions(no_speech_threshold=None)
    assert len(list(ct2_batched_segments(audio, folder, LongformOptions(mode="batched"),
                                         unruled))) == 2


def test_loops_and_token_limit_are_flagged_and_open_text_kept(folder, tokenizer, vocab,
                                                              monkeypatch):
    word = _text(tokenizer, "はい")
    again = [vocab.to_token(0.0), *(word * 10), vocab.to_token(5.0)]
    scripted = {0: again, 1: [vocab.to_token(0.0), *_text(tokenizer, "今日は晴れ")]}
    _install(monkeypatch, tokenizer, lambda b, r, f: _Result([scripted[r]], [-0.2], 0.0))
    monkeypatch.setattr(ct2_longform, "batch_windows", lambda *args: WINDOWS[:2])
    looped, open_text = ct2_batched_segments(_noise(30.0), folder,
                                             LongformOptions(mode="batched"),
                                             DecodeOptions(max_new_tokens=100))
    assert looped.looped and looped.timed
    # text never closed: kept (batched windows are not decoded again), to the window's end
    assert not open_text.looped and not open_text.timed
    assert (open_text.start, open_text.end) == (25.0, 28.0)
    limited = DecodeOptions(max_new_tokens=len(scripted[1]))
    assert [s.looped for s in ct2_batched_segments(
        _noise(30.0), folder, LongformOptions(mode="batched"), limited)] == [True, True]


def test_word_times_come_from_the_alignment_per_segment(folder, tokenizer, vocab, monkeypatch):
    first, second = _text(tokenizer, "今日は"), _text(tokenizer, "雨")
    ids = [vocab.to_token(0.0), *first, vocab.to_token(1.0), vocab.to_token(1.0), *second,
           vocab.to_token(2.0)]
    fake = _install(monkeypatch, tokenizer, lambda b, r, f: _Result([ids], [-0.2], 0.0))
    monkeypatch.setattr(ct2_longform, "batch_windows", lambda *args: [SpeechSpan(25.0, 28.0)])
    segments = list(ct2_batched_segments(
        _noise(30.0), folder, LongformOptions(mode="batched", word_timestamps=True)))
    texts, num_frames = fake.aligned[0]
    assert texts == [first + second] and num_frames == [300]  # the window's own frames
    assert "".join(w.text for w in segments[0].words) == "今日は"
    assert [w.text for w in segments[1].words] == ["雨"]
    assert segments[0].words[0].start == 25.0 and segments[0].words[0].probability == 0.5
    # the fake puts token i at 0.2 s * i: the second segment's word is the window's token k
    k = len(first)
    assert segments[1].words[0].start == pytest.approx(25.0 + 0.2 * k)
    assert segments[1].words[0].end == pytest.approx(25.0 + 0.2 * (k + len(second)))
    fake.aligned.clear()
    list(ct2_batched_segments(_noise(30.0), folder, LongformOptions(mode="batched")))
    assert fake.aligned == []  # no alignment pass unless words are asked for


def test_ct2_batched_mode_runs_whisper_ja_algorithm(folder, tokenizer, vocab, monkeypatch):
    fake = _install(monkeypatch, tokenizer, lambda b, r, f: _Result(
        [[vocab.to_token(0.0), *_text(tokenizer, "はい"), vocab.to_token(1.0)]], [-0.2], 0.0))

    def stock(*args):
        raise AssertionError("faster-whisper's own pipeline must not run in batched mode")

    monkeypatch.setattr(faster_longform, "load_faster_whisper", stock)
    found = list(ct2_segments(_noise(10.0), str(folder),
                              LongformOptions(mode="batched", vad=False)))
    assert len(fake.calls) == 1 and [s.text for s in found] == ["はい"]


def test_silence_gives_nothing_on_a_real_export(tiny_ct2):
    silence = np.zeros(20 * SAMPLE_RATE, np.float32)
    for vad in (True, False):
        options = LongformOptions(mode="batched", vad=vad)
        assert list(ct2_batched_segments(silence, tiny_ct2, options)) == []
        assert list(ct2_segments(silence, str(tiny_ct2), options)) == []


def test_a_real_export_decodes_windows_at_file_times(tiny_ct2):
    # A random model says nothing about content; here: every window decoded, words inside
    # their window at file times, and batching changes nothing at a fixed (30 s) context.
    audio = _noise(45.0, seed=3)
    longform = LongformOptions(mode="batched", vad=False, word_timestamps=True)
    windows = batch_windows(audio, VadSettings(), longform.vad)
    assert len(windows) == 2 and windows[1].start > 25.0

    def run(batch_size: int) -> list:
        options = DecodeOptions(max_new_tokens=8, no_speech_threshold=None,
                                batch_size=batch_size)
        return list(ct2_batched_segments(audio, tiny_ct2, longform, options,
                                         compute_type="default"))

    segments = run(4)
    assert segments == run(1)
    assert segments[0].start < windows[1].start <= segments[-1].start
    assert all(s.text and s.token_ids and s.words for s in segments)
    for word in (w for s in segments for w in s.words):
        assert any(w.start - 1e-6 <= word.start <= word.end <= w.end + 1e-6 for w in windows)


def test_faster_whisper_stock_batched_pipeline_stays_reachable(tiny_ct2, monkeypatch):
    # benchmarks/longform.py's reference arm: faster-whisper's own BatchedInferencePipeline.
    import faster_whisper

    from whisper_ja.inference.faster_longform import faster_whisper_batched
    from whisper_ja.inference.timestamps import Segment

    asked: list[int] = []

    class Recording(faster_whisper.BatchedInferencePipeline):
        def transcribe(self, audio, **kwargs):
            asked.append(kwargs["batch_size"])
            return super().transcribe(audio, **kwargs)

    monkeypatch.setattr(faster_whisper, "BatchedInferencePipeline", Recording)
    found = list(faster_whisper_batched(_noise(10.0), tiny_ct2,
                                        LongformOptions(mode="batched", vad=False),
                                        DecodeOptions(max_new_tokens=6, batch_size=3),
                                        compute_type="default"))
    assert asked == [3] and all(isinstance(s, Segment) for s in found)


def test_a_segment_is_cut_at_a_sentence_pause_by_the_alignment(folder, tokenizer, vocab,
                                                               monkeypatch):
    left, right = _text(tokenizer, "元気出しなよ、"), _text(tokenizer, "この本は安い。")
    ids = [vocab.to_token(0.0), *left, *right, vocab.to_token(2.8)]
    fake = _install(monkeypatch, tokenizer, lambda b, r, f: _Result([ids], [-0.2], 0.0))
    monkeypatch.setattr(ct2_longform, "batch_windows", lambda *args: [
        SpeechSpan(25.0, 28.0), SpeechSpan(40.0, 43.0)])
    # the fake aligns token i at 25 + 0.2 i s: the pause ends just before この; the second
    # window is one stretch of speech
    pause = SpeechSpan(25.0 + 0.2 * len(left) - 0.15, 25.0 + 0.2 * len(left) - 0.05)
    monkeypatch.setattr(ct2_longform, "pause_stretches", lambda *args: [
        SpeechSpan(25.0, pause.start), SpeechSpan(pause.end, 28.0), SpeechSpan(40.0, 43.0)])
    first, second, third = ct2_batched_segments(_noise(45.0), folder,
                                                LongformOptions(mode="batched"))
    assert (first.start, first.end, first.text) == (25.0, round(pause.start, 3), "元気出しなよ、")
    assert (second.start, second.end, second.text) == (round(pause.end, 3), 27.8,
                                                       "この本は安い。")
    assert (third.start, third.text) == (40.0, "元気出しなよ、この本は安い。")
    # only the first window is aligned: timed once, then 。 scored after なよ (the 、
    # dropped), align's last probability (0.5) being P(。)
    end = tokenizer.encode("。", add_special_tokens=False).ids
    assert fake.aligned == [([left + right], [300]), ([left[:-1] + end], [300])]
    fake.aligned.clear()
    strict = PauseSettings(end_probability=0.6)
    kept = list(ct2_batched_segments(_noise(45.0), folder,
                                     LongformOptions(mode="batched", pauses=strict)))
    assert [s.text for s in kept][0] == "元気出しなよ、この本は安い。" and len(kept) == 2


def _cut_setup(monkeypatch, tokenizer, vocab, text: str, pause_after: int) -> _FakeCt2:
    """One 3 s window (25-28 s) saying ``text`` as one segment, a pause before token
    ``pause_after`` (the fake aligns token i at 25 + 0.2 i s)."""
    ids = [vocab.to_token(0.0), *_text(tokenizer, text), vocab.to_token(2.8)]
    fake = _install(monkeypatch, tokenizer, lambda b, r, f: _Result([ids], [-0.2], 0.0))
    monkeypatch.setattr(ct2_longform, "batch_windows", lambda *args: [SpeechSpan(25.0, 28.0)])
    pause = SpeechSpan(25.0 + 0.2 * pause_after - 0.15, 25.0 + 0.2 * pause_after - 0.05)
    monkeypatch.setattr(ct2_longform, "pause_stretches", lambda *args: [
        SpeechSpan(25.0, pause.start), SpeechSpan(pause.end, 28.0)])
    return fake


def test_cuts_the_timing_pass_settles_get_no_scoring_row(folder, tokenizer, vocab,
                                                         monkeypatch):
    left = _text(tokenizer, "元気出しなよ、")
    # 、 written with P 0.95 by the timing pass: P(。) <= 0.05, refused without a second row
    fake = _cut_setup(monkeypatch, tokenizer, vocab, "元気出しなよ、この本は安い。", len(left))
    fake.token_prob = 0.95
    found = list(ct2_batched_segments(_noise(30.0), folder, LongformOptions(mode="batched")))
    assert [s.text for s in found] == ["元気出しなよ、この本は安い。"]
    assert len(fake.aligned) == 1  # the timing row only
    # 。 written inside the segment: its probability there is P(。), so the cut is made at once
    left = _text(tokenizer, "元気出しなよ。")
    fake = _cut_setup(monkeypatch, tokenizer, vocab, "元気出しなよ。この本は安い。", len(left))
    fake.token_prob = 0.3
    found = list(ct2_batched_segments(_noise(30.0), folder, LongformOptions(mode="batched")))
    assert [s.text for s in found] == ["元気出しなよ。", "この本は安い。"]
    assert len(fake.aligned) == 1


def test_int8_on_the_cpu_encodes_and_aligns_one_row_at_a_time(folder, tokenizer, vocab,
                                                               monkeypatch):
    text = _text(tokenizer, "元気出しなよ、この本は安い。")
    ids = [vocab.to_token(0.0), *text, vocab.to_token(2.8)]
    for compute_type, rows in (("int8_float32", [1, 1]), ("float32", [2])):
        fake = _install(monkeypatch, tokenizer, lambda b, r, f: _Result([ids], [-0.2], 0.0))
        fake.compute_type = compute_type
        monkeypatch.setattr(ct2_longform, "batch_windows", lambda *args: [
            SpeechSpan(1.0, 4.0), SpeechSpan(10.0, 13.0)])
        options = LongformOptions(mode="batched", word_timestamps=True)
        found = list(ct2_batched_segments(_noise(15.0), folder, options,
                                          DecodeOptions(batch_size=2, max_new_tokens=30)))
        assert [s.start for s in found] == [1.0, 10.0]
        assert fake.encoded_rows == rows
        assert len(fake.calls) == 1 and fake.frames == [3000]  # one generate for both windows
