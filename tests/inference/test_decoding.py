"""Batched decoding: Japanese forced, silence, long audio, loop detection, real quality."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from whisper_ja.audio.io import SAMPLE_RATE, resample
from whisper_ja.inference.decoding import (
    DecodeOptions,
    DecodeResult,
    _features,
    decode_audio,
    decode_features,
    is_looping,
)
from whisper_ja.model import special_tokens

RNG = np.random.default_rng(0)


def _noise(seconds: float, level: float = 0.1) -> np.ndarray:
    return (level * RNG.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)


class DecoderInputs:
    """Records the decoder's first input of every generate call, and encoder batch sizes."""

    def __init__(self, model):
        self.first_inputs: list[list[list[int]]] = []
        self.encoder_rows = 0
        self._handles = [
            model.model.decoder.register_forward_pre_hook(self._decoder, with_kwargs=True),
            model.model.encoder.register_forward_pre_hook(self._encoder, with_kwargs=True),
        ]

    def _decoder(self, module, args, kwargs):
        ids = kwargs.get("input_ids")
        if ids is not None and ids.shape[1] > 1:  # the prompt step, not a cached step
            self.first_inputs.append(ids.tolist())

    def _encoder(self, module, args, kwargs):
        features = args[0] if args else kwargs["input_features"]
        self.encoder_rows += features.shape[0]

    def close(self):
        for handle in self._handles:
            handle.remove()


@pytest.fixture
def recorder(tiny_whisper):
    rec = DecoderInputs(tiny_whisper.model)
    yield rec
    rec.close()


def test_decoding_forces_japanese_prefix(tiny_whisper, recorder):
    results = decode_audio(tiny_whisper.model, tiny_whisper.processor, [_noise(2), _noise(3)],
                           DecodeOptions(max_new_tokens=4), progress=False)
    assert len(results) == 2
    assert recorder.first_inputs, "decoder never ran"
    to_tokens = tiny_whisper.processor.tokenizer.convert_ids_to_tokens
    for row in recorder.first_inputs[0]:
        assert to_tokens(list(row)) == [
            "<|startoftranscript|>", "<|ja|>", "<|transcribe|>", "<|notimestamps|>"]


def test_prompt_goes_before_the_prefix_and_not_into_the_output(tiny_whisper, recorder):
    prompt = tuple(tiny_whisper.processor.tokenizer("東京", add_special_tokens=False).input_ids)
    results = decode_audio(tiny_whisper.model, tiny_whisper.processor, [_noise(2)],
                           DecodeOptions(max_new_tokens=4, prompt_ids=prompt), progress=False)
    specials = special_tokens(tiny_whisper.processor.tokenizer)
    assert tuple(recorder.first_inputs[0][0]) == (specials.prev_text, *prompt,
                                                   *specials.ja_prefix)
    assert all(specials.is_text(t) for t in results[0].token_ids)
    assert len(results[0].token_ids) <= 4


def test_silence_is_empty_without_running_the_model(tiny_whisper, recorder):
    quiet = [np.zeros(SAMPLE_RATE * 3, dtype=np.float32), _noise(2, level=1e-4)]
    results = decode_audio(tiny_whisper.model, tiny_whisper.processor, quiet, progress=False)
    assert results == [DecodeResult("", (), False)] * 2
    assert recorder.encoder_rows == 0


def test_long_audio_is_decoded_in_windows(tiny_whisper, recorder):
    results = decode_audio(tiny_whisper.model, tiny_whisper.processor, [_noise(65), _noise(1)],
                           DecodeOptions(max_new_tokens=3, batch_size=2), progress=False)
    assert len(results) == 2
    assert recorder.encoder_rows == 4  # 65 s -> 3 windows, plus the short clip
    assert len(results[0].token_ids) > len(results[1].token_ids)


def test_hitting_the_token_limit_marks_looped(tiny_whisper):
    # the random tiny model never emits end-of-text: it runs into the limit
    result = decode_audio(tiny_whisper.model, tiny_whisper.processor, [_noise(2)],
                          DecodeOptions(max_new_tokens=5), progress=False)[0]
    assert len(result.token_ids) == 5
    assert result.looped


def test_features_cut_to_context_frames(tiny_whisper):
    clips = [_noise(3), _noise(5)]
    full = _features(tiny_whisper.processor, clips, None)
    cut = _features(tiny_whisper.processor, clips, 1000)
    assert full.shape == (2, 80, 3000) and cut.shape == (2, 80, 1000)
    assert torch.equal(full[:, :, :1000], cut)


def test_decode_features_takes_a_batch(tiny_whisper):
    feats = _features(tiny_whisper.processor, [_noise(1)] * 3, None)
    results = decode_features(tiny_whisper.model, tiny_whisper.processor, feats,
                              DecodeOptions(max_new_tokens=2))
    assert len(results) == 3 and all(isinstance(r.text, str) for r in results)


@pytest.mark.parametrize("kwargs", [{"num_beams": 0}, {"max_new_tokens": 0},
                                    {"context_frames": 999}, {"context_frames": 3002},
                                    {"batch_size": 0}, {"no_speech_threshold": 1.5}])
def test_bad_options_are_rejected(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        DecodeOptions(**kwargs)


@pytest.mark.parametrize(("ids", "looping"), [
    ([5] * 8, True),
    ([5] * 7, False),
    ([1, 2] * 4, True),  # e.g. "ありがとうございます。" four times
    ([1, 2] * 3, False),
    ([1, 2, 3] * 3, True),
    ([1, 2, 3] * 2 + [4, 5, 6], False),
    (list(range(10, 30)) * 3, True),  # a 20-token sentence three times
    (list(range(10, 30)) * 2, False),  # said twice can be real
    ([9, 8, 7, 1, 2, 3, 4] * 2 + list(range(100, 140)), False),
    ([1, 2, 3, 99, 1, 2, 3, 98, 1, 2, 3, 97, 1, 2, 3, 96], True),  # recurring, not back to back
    (list(range(200, 300)), False),
    ([5, 5, 5, 50257, 50257, 50257, 50257, 50257], False),  # padding is not a loop
])
def test_is_looping(ids, looping):
    assert is_looping(ids) is looping


def test_real_japanese_is_not_looping(tiny_whisper):
    tok = tiny_whisper.processor.tokenizer
    text = "今日はとても良い天気です。はははは、本当に本当にそうですね。明日も晴れるといいですね。"
    assert not is_looping(tok(text, add_special_tokens=False).input_ids)
    assert is_looping(tok("ありがとうございます。" * 4, add_special_tokens=False).input_ids)


@pytest.mark.slow
def test_whisper_base_transcribes_japanese_clips(whisper_base, ja_clips):
    """Synthetic speech (Open JTalk), real offline whisper-base, forced Japanese."""
    from whisper_ja.text.metrics import cer

    audios = [resample(c.audio, c.sample_rate) for c in ja_clips]
    results = decode_audio(whisper_base.model, whisper_base.processor, audios, progress=False)
    refs, hyps = [c.text for c in ja_clips], [r.text for r in results]
    assert cer(refs, hyps).rate < 0.2, list(zip(refs, hyps, strict=True))
    assert not any(r.looped for r in results)


@pytest.mark.slow
def test_whisper_base_long_audio_and_silence(whisper_base, ja_clips):
    from whisper_ja.text.metrics import cer

    first, second = (resample(c.audio, c.sample_rate) for c in ja_clips[:2])
    gap = np.zeros(int(28.5 * SAMPLE_RATE), dtype=np.float32)
    long_audio = np.concatenate([first, gap, second])  # > 30 s: two windows
    assert long_audio.size > 30 * SAMPLE_RATE
    silence = np.zeros(5 * SAMPLE_RATE, dtype=np.float32)
    faint_noise = _noise(5, level=3e-4)  # about -70 dBFS
    results = decode_audio(whisper_base.model, whisper_base.processor,
                           [long_audio, silence, faint_noise], progress=False)
    assert results[1].text == "" and results[2].text == ""
    reference = ja_clips[0].text + ja_clips[1].text
    assert cer([reference], [results[0].text]).rate < 0.2, results[0].text


@pytest.mark.slow
def test_whisper_base_noise_is_judged_no_speech(whisper_base, ja_clips):
    """Loud noise passes the energy check; Whisper's no-speech rule must then drop its text."""
    hum = (0.1 * np.sin(2 * np.pi * 100 * np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE))
    clips = [_noise(3, level=0.1), hum.astype(np.float32),
             resample(ja_clips[3].audio, ja_clips[3].sample_rate)]
    options = DecodeOptions(max_new_tokens=24)
    checked = decode_audio(whisper_base.model, whisper_base.processor, clips, options,
                           progress=False)
    assert [r.text for r in checked[:2]] == ["", ""]
    assert checked[2].text  # speech is kept
    unchecked = decode_audio(whisper_base.model, whisper_base.processor, clips[:2],
                             DecodeOptions(max_new_tokens=24, no_speech_threshold=None),
                             progress=False)
    assert any(r.text for r in unchecked)  # without the rule, whisper-base makes text up


def test_dynamic_context_decoding_uses_the_short_features(dynamic_tiny):
    model, processor = dynamic_tiny
    rec = DecoderInputs(model)
    shapes = []
    handle = model.model.encoder.register_forward_pre_hook(
        lambda module, args, kwargs: shapes.append(tuple((args[0] if args else
                                                         kwargs["input_features"]).shape)),
        with_kwargs=True)
    try:
        results = decode_audio(model, processor, [_noise(3), _noise(5)],
                               DecodeOptions(max_new_tokens=3, context_frames=800),
                               progress=False)
    finally:
        handle.remove()
        rec.close()
    assert len(results) == 2
    assert shapes and all(shape[-1] == 800 for shape in shapes)
    assert tuple(rec.first_inputs[0][0]) == special_tokens(processor.tokenizer).ja_prefix


@pytest.fixture(scope="module")
def dynamic_tiny():
    """A separate tiny model with dynamic context (the session one must stay stock)."""
    from whisper_ja.model import tiny_random_whisper
    from whisper_ja.model.context import enable_dynamic_context

    loaded = tiny_random_whisper(seed=3)
    enable_dynamic_context(loaded.model)
    return loaded.model, loaded.processor
