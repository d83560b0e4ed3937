"""The transformers backend: generation and its scores, alignment, language ID, peft, context."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperProcessor
from transformers.modeling_outputs import BaseModelOutput

from whisper_ja.audio.constants import SAMPLE_RATE
from whisper_ja.audio.features import ContextPolicy, batch_context_frames
from whisper_ja.errors import ConfigError
from whisper_ja.inference.backend import Backend, GenerateRequest
from whisper_ja.inference.backends.hf import HfBackend, HfEncoded
from whisper_ja.inference.backends.hf_generation import RepetitionStop
from whisper_ja.model import LoadedWhisper, special_tokens
from whisper_ja.model.context import enable_dynamic_context
from whisper_ja.model.processor import build_generation_config

RNG = np.random.default_rng(0)
LOOP_TEXT = "あ"


def _noise(seconds: float, level: float = 0.1) -> np.ndarray:
    return (level * RNG.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)


def _micro_model(processor, seed: int = 0) -> WhisperForConditionalGeneration:
    """A 2+2-layer, d_model-64 Whisper with the real vocabulary: fast to run on a CPU."""
    tokenizer = processor.tokenizer
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = WhisperConfig(
        vocab_size=len(tokenizer), d_model=64, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
        decoder_ffn_dim=128, decoder_start_token_id=tokenizer.convert_tokens_to_ids(
            "<|startoftranscript|>"), bos_token_id=eot, eos_token_id=eot, pad_token_id=eot)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = WhisperForConditionalGeneration(config)
    finally:
        torch.random.set_rng_state(state)
    model.generation_config = build_generation_config(tokenizer)
    return model.eval()


@pytest.fixture(scope="module")
def micro(tiny_whisper) -> LoadedWhisper:
    """The micro Whisper with the tiny random model's (real, multilingual) processor."""
    return LoadedWhisper(_micro_model(tiny_whisper.processor), tiny_whisper.processor, "micro")


@pytest.fixture(scope="module")
def backend(micro) -> HfBackend:
    return HfBackend(micro)


@pytest.fixture(scope="module")
def encoded(backend) -> HfEncoded:
    return backend.encode([_noise(2.0), _noise(3.5), _noise(1.0)])


@pytest.fixture(scope="module")
def looping(micro) -> HfBackend:
    """A model whose every decoder step predicts the same text token (a forced loop).

    The decoder's last layer norm outputs a constant vector, and that token's (tied) output
    embedding is a large multiple of it.
    """
    model = copy.deepcopy(micro.model)
    token = micro.processor.tokenizer.encode(LOOP_TEXT, add_special_tokens=False)[0]
    with torch.no_grad():
        norm = model.model.decoder.layer_norm
        norm.weight.zero_()
        norm.bias.copy_(torch.linspace(-1.0, 1.0, norm.bias.numel()))
        model.proj_out.weight[token] = 50.0 * norm.bias
    return HfBackend(LoadedWhisper(model, micro.processor, "looping micro"))


def _teacher_forced(loaded: LoadedWhisper, hidden: torch.Tensor, context: list[int],
                    ids: list[int], sot_at: int) -> tuple[float, float]:
    """``(avg_logprob, no_speech_prob)`` of ``ids`` after ``context``: full logits, one row."""
    specials = special_tokens(loaded.processor.tokenizer)
    eot, no_speech = specials.eot, specials.no_speech
    assert no_speech is not None
    with torch.no_grad():
        logits = loaded.model(encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
                              decoder_input_ids=torch.tensor([[*context, *ids]])).logits[0]
    logprobs = logits.log_softmax(-1)
    targets = [*ids, eot]
    first = len(context) - 1
    avg = float(np.mean([float(logprobs[first + k, t]) for k, t in enumerate(targets)]))
    return avg, float(logprobs[sot_at, no_speech].exp())


def test_backend_satisfies_the_protocol(micro):
    backend: Backend = HfBackend(micro)
    assert backend.name == "transformers"
    assert backend.max_positions == 448
    assert backend.vocabulary.specials.sot == micro.processor.tokenizer.convert_tokens_to_ids(
        "<|startoftranscript|>")
    assert backend.vocabulary.languages["ja"] == backend.vocabulary.specials.ja
    assert not backend.policy.dynamic  # a stock model keeps Whisper's 30 s


def test_encode_full_and_dynamic_context(micro, encoded):
    assert encoded.rows == 3 and encoded.seconds == (2.0, 3.5, 1.0)
    assert encoded.hidden.shape[1] == 1500
    model = copy.deepcopy(micro.model)
    dynamic = HfBackend(LoadedWhisper(model, micro.processor, "micro"), context="dynamic",
                        policy=ContextPolicy(bucket_frames=100, min_frames=200))
    assert dynamic.policy.dynamic and dynamic.policy.min_frames == 200
    audios = [_noise(2.0), _noise(3.5)]
    short = dynamic.encode(audios)
    assert short.hidden.shape[1] == batch_context_frames(audios, dynamic.policy) // 2 == 200
    # the cut features are the 30 s features' first frames: the full-context encoder agrees
    # nowhere else, but the decoder still runs on them
    assert dynamic.generate(short, [0], GenerateRequest(max_new_tokens=4))[0].ids
    with pytest.raises(ValueError, match="30 s"):
        dynamic.encode([_noise(30.5)])
    with pytest.raises(ConfigError, match="context"):
        HfBackend(micro, context="half")  # type: ignore[arg-type]


def test_encode_features_and_text(micro, backend, encoded):
    audios = [_noise(2.0)]
    features = micro.processor.feature_extractor(audios, sampling_rate=SAMPLE_RATE,
                                                 return_tensors="pt").input_features
    direct = backend.encode_features(features, [2.0])
    assert direct.seconds == (2.0,)
    torch.testing.assert_close(direct.hidden, backend.encode(audios).hidden)
    ids = backend.encode_text(" 今日は良い天気 ")
    assert all(backend.vocabulary.is_text(t) for t in ids)
    assert backend.decode_text(ids) == " 今日は良い天気"  # OpenAI's prompt: a leading space


def test_load_follows_the_saved_context(micro, tmp_path: Path):
    model = copy.deepcopy(micro.model)
    enable_dynamic_context(model)  # recorded in the config, as training saves it
    model.save_pretrained(tmp_path)
    micro.processor.save_pretrained(tmp_path)
    loaded = HfBackend.load(str(tmp_path), device="cpu", dtype="float32")
    assert loaded.policy.dynamic
    assert loaded.encode([_noise(1.0)]).hidden.shape[1] < 1500
    assert not HfBackend.load(str(tmp_path), device="cpu", dtype="float32",
                              context="full").policy.dynamic


def test_greedy_is_deterministic_and_rows_decode_as_alone(backend, encoded):
    request = GenerateRequest(max_new_tokens=12)
    batch = backend.generate(encoded, [2, 0], request)
    assert batch == backend.generate(encoded, [2, 0], request)
    alone = [backend.generate(encoded, [row], request)[0] for row in (2, 0)]
    for together, single in zip(batch, alone, strict=True):
        assert together.ids == single.ids
        assert together.avg_logprob == pytest.approx(single.avg_logprob, abs=1e-4)
        assert together.no_speech_prob == pytest.approx(single.no_speech_prob, abs=1e-5)
    assert all(r.ids and all(backend.vocabulary.is_text(t) for t in r.ids) for r in batch)
    assert backend.generate(encoded, [], request) == []


def test_sampling_repeats_with_its_seed(backend, encoded):
    request = GenerateRequest(max_new_tokens=12, temperature=1.0, seed=7)
    before = torch.random.get_rng_state()
    first = backend.generate(encoded, [0, 1], request)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's stream untouched
    assert first == backend.generate(encoded, [0, 1], request)
    other = backend.generate(encoded, [0, 1], GenerateRequest(max_new_tokens=12,
                                                              temperature=1.0, seed=8))
    greedy = backend.generate(encoded, [0, 1], GenerateRequest(max_new_tokens=12))
    assert other != first and greedy != first


def test_timestamps_on_and_off(backend, encoded):
    stamps = backend.vocabulary.timestamps
    timed = backend.generate(encoded, [0], GenerateRequest(timestamps=True, max_new_tokens=12))
    assert stamps.is_timestamp(timed[0].ids[0])  # Whisper's rules open with a timestamp
    plain = backend.generate(encoded, [0], GenerateRequest(max_new_tokens=12))
    assert not any(stamps.is_timestamp(t) for t in plain[0].ids)
    assert backend.decode_text(timed[0].ids) == backend.decode_text(
        [t for t in timed[0].ids if backend.vocabulary.is_text(t)])


def test_scores_equal_a_teacher_forced_pass(micro, backend, encoded):
    request = GenerateRequest(max_new_tokens=12, timestamps=True)
    results = backend.generate(encoded, [0, 1, 2], request)
    assert len({len(r.ids) for r in results}) >= 1
    prefix = list(backend.vocabulary.prefix("ja"))
    for row, result in enumerate(results):
        avg, no_speech = _teacher_forced(micro, encoded.hidden[row:row + 1], prefix,
                                         list(result.ids), 0)
        assert result.avg_logprob == pytest.approx(avg, abs=1e-4)
        assert result.no_speech_prob == pytest.approx(no_speech, rel=1e-3)


def test_prompt_is_context_not_scored(micro, backend, encoded):
    prompt = tuple(micro.processor.tokenizer.encode("今日は", add_special_tokens=False))
    result = backend.generate(encoded, [1], GenerateRequest(max_new_tokens=10, prompt=prompt))[0]
    specials = backend.vocabulary.specials
    head = [specials.prev_text, *prompt]
    context = [*head, *backend.vocabulary.prefix("ja"), specials.no_timestamps]
    hidden = encoded.hidden[1:2]
    avg, no_speech = _teacher_forced(micro, hidden, context, list(result.ids), len(head))
    assert result.avg_logprob == pytest.approx(avg, abs=1e-4)
    assert result.no_speech_prob == pytest.approx(no_speech, rel=1e-3)
    unprompted, _ = _teacher_forced(micro, hidden, context[len(head):], list(result.ids), 0)
    assert result.avg_logprob != pytest.approx(unprompted, abs=1e-4)


def test_stop_repeats_ends_a_loop_early(micro, looping, encoded):
    token = micro.processor.tokenizer.encode(LOOP_TEXT, add_special_tokens=False)[0]
    looped = looping.generate(encoded, [0], GenerateRequest(max_new_tokens=30))[0]
    assert looped.ids == (token,) * 30 and looped.hit_limit
    stopped = looping.generate(encoded, [0], GenerateRequest(max_new_tokens=30,
                                                             stop_repeats=4))[0]
    assert stopped.ids == (token,) * 8 and not stopped.hit_limit  # one token 8 times


def test_repetition_stop_forces_the_end_token():
    sot, eot = 10, 50
    stop = RepetitionStop(sot, eot, max_ngram=4)
    input_ids = torch.tensor([[sot, *[3] * 8], [sot, 1, 2, 3, 4, 5, 6, 7, 8], [sot, *[3] * 7, eot]])
    scores = torch.zeros(3, 60)
    out = stop(input_ids, scores.clone())  # type: ignore[arg-type]
    assert out[0].argmax() == eot and out[0, 3] == float("-inf")
    assert torch.equal(out[1:], scores[1:])


def test_align_shapes_times_and_probabilities(micro, backend, encoded):
    tokenizer = micro.processor.tokenizer
    texts = [tokenizer.encode(t, add_special_tokens=False) for t in ("今日は良い天気", "駅", "")]
    aligned = backend.align(encoded, [1, 1, 2], texts, "ja")
    for text, alignment, seconds in zip(texts, aligned, (3.5, 3.5, 1.0), strict=True):
        assert alignment.starts.shape == alignment.ends.shape == alignment.probs.shape
        assert len(alignment.starts) == len(text)
        assert np.all(np.diff(alignment.starts) >= 0)
        assert np.all(alignment.ends >= alignment.starts)
        assert np.all(alignment.ends <= seconds + 0.02)
        assert np.all((alignment.probs > 0) & (alignment.probs <= 1))
    # probs[k] = P(text[k] | CTranslate2's align context + text[:k]), over the text tokens
    specials = backend.vocabulary.specials
    context = [*backend.vocabulary.prefix("ja"), specials.no_timestamps]
    with torch.no_grad():
        logits = micro.model(encoder_outputs=BaseModelOutput(encoded.hidden[1:2]),
                             decoder_input_ids=torch.tensor([[*context, *texts[0]]])).logits[0]
    probs = logits[len(context) - 1:-1, :specials.eot].softmax(-1)
    expected = [float(probs[k, t]) for k, t in enumerate(texts[0])]
    np.testing.assert_allclose(aligned[0].probs, expected, rtol=1e-4)
    with pytest.raises(ValueError, match="text ids only"):
        backend.align(encoded, [0], [[*texts[1], backend.vocabulary.timestamps.base]], "ja")


def test_detect_language_returns_known_codes(backend, encoded):
    codes = backend.detect_language(encoded)
    assert len(codes) == encoded.rows
    assert all(code in backend.vocabulary.languages for code in codes)


def test_decode_text_skips_special_and_timestamp_ids(micro, backend):
    ids = micro.processor.tokenizer.encode("天気", add_special_tokens=False)
    vocabulary = backend.vocabulary
    noisy = [vocabulary.specials.sot, vocabulary.timestamps.base, *ids,
             vocabulary.timestamps.base + 50, vocabulary.specials.eot]
    assert backend.decode_text(noisy) == "天気"


def test_peft_wrapped_model_decodes_with_its_adapter(micro, encoded):
    # Imported here, not at the top: peft is heavy, and only this test needs it.
    from peft import LoraConfig, get_peft_model

    # random A and B: the adapter changes the model, so scores read on the base without it
    # would differ
    wrapped = get_peft_model(copy.deepcopy(micro.model), LoraConfig(
        r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)).eval()
    loaded = LoadedWhisper(wrapped, micro.processor, "peft micro")
    backend = HfBackend(loaded)
    adapted = backend.encode([_noise(2.0)])
    assert not torch.allclose(adapted.hidden, micro.model.get_encoder()(
        micro.processor.feature_extractor([_noise(2.0)], sampling_rate=SAMPLE_RATE,
                                          return_tensors="pt").input_features
    ).last_hidden_state, atol=1e-3)
    result = backend.generate(adapted, [0], GenerateRequest(max_new_tokens=8))[0]
    context = [*backend.vocabulary.prefix("ja"), backend.vocabulary.specials.no_timestamps]
    avg, no_speech = _teacher_forced(loaded, adapted.hidden, context, list(result.ids), 0)
    assert result.avg_logprob == pytest.approx(avg, abs=1e-4)
    assert result.no_speech_prob == pytest.approx(no_speech, rel=1e-3)
    assert backend.detect_language(adapted)[0] in backend.vocabulary.languages
    assert len(backend.align(adapted, [0], [list(result.ids[:2])], "ja")[0].starts) == 2


@pytest.mark.slow
def test_whisper_base_transcribes_times_and_identifies(whisper_base, ja_clips):
    """Real offline whisper-base on synthetic Japanese speech (Open JTalk) and a hum."""
    from whisper_ja.audio.io import resample
    from whisper_ja.text.metrics import cer

    backend = HfBackend(whisper_base)
    speech = [resample(c.audio, c.sample_rate) for c in ja_clips[:2]]
    hum = (0.1 * np.sin(2 * np.pi * 100 * np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE))
    encoded = backend.encode([*speech, hum.astype(np.float32)])
    results = backend.generate(encoded, [0, 1, 2], GenerateRequest(stop_repeats=32))
    hyps = [backend.decode_text(r.ids) for r in results[:2]]
    refs = [c.text for c in ja_clips[:2]]
    assert cer(refs, hyps).rate < 0.2, hyps
    assert all(r.avg_logprob > -1.0 and not r.hit_limit for r in results[:2])
    assert results[2].no_speech_prob > max(r.no_speech_prob for r in results[:2])
    assert backend.detect_language(encoded)[:2] == ["ja", "ja"]
    timed = backend.generate(encoded, [0], GenerateRequest(timestamps=True))[0]
    assert backend.vocabulary.timestamps.is_timestamp(timed.ids[0])
    assert cer(refs[:1], [backend.decode_text(timed.ids)]).rate < 0.2
    alignment = backend.align(encoded, [0], [list(results[0].ids)], "ja")[0]
    seconds = encoded.seconds[0]
    assert np.all(np.diff(alignment.starts) >= 0)
    assert alignment.starts[0] < 1.0 and seconds / 2 < alignment.ends[-1] <= seconds + 0.02
    assert float(np.mean(alignment.probs)) > 0.5  # the model's own text is likely to it


def test_scores_and_probabilities_match_ctranslate2(mini_whisper):
    """The same weights on CTranslate2 give the same no-speech and align probabilities.

    (Greedy ids of a random model are not compared: its near-flat logits make them hang on
    rounding, and on which ids each runtime suppresses.)
    """
    # Imported here, not at the top: CTranslate2 is the other runtime, needed by this test only.
    import ctranslate2

    backend = HfBackend.load(str(mini_whisper.hf_dir), device="cpu", dtype="float32")
    whisper = ctranslate2.models.Whisper(str(mini_whisper.ct2_float32), device="cpu",
                                         compute_type="float32")
    processor = WhisperProcessor.from_pretrained(mini_whisper.hf_dir)
    audio = _noise(3.0)
    encoded = backend.encode([audio])
    features = processor.feature_extractor(
        [audio], sampling_rate=SAMPLE_RATE, return_tensors="np").input_features
    theirs = whisper.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(features)))
    np.testing.assert_allclose(np.asarray(theirs), encoded.hidden.numpy(), atol=1e-4)
    prefix = list(backend.vocabulary.prefix("ja"))
    ours = backend.generate(encoded, [0], GenerateRequest(max_new_tokens=8))[0]
    generated = whisper.generate(theirs, [[*prefix, backend.vocabulary.specials.no_timestamps]],
                                 max_length=8, return_no_speech_prob=True)[0]
    assert ours.no_speech_prob == pytest.approx(generated.no_speech_prob, rel=1e-3)
    text = processor.tokenizer.encode("今日は良い天気です", add_special_tokens=False)
    # CTranslate2's align adds <|notimestamps|> after the prefix itself
    aligned = whisper.align(theirs, prefix, [text], [audio.size // 160])[0]
    np.testing.assert_allclose(backend.align(encoded, [0], [text], "ja")[0].probs,
                               aligned.text_token_probs, rtol=1e-3)
