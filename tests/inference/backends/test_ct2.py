"""The CTranslate2 backend: generation and its scores, sampling seeds, prompts, alignment,
language ID, context, and the named errors of a bad export or compute type."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from whisper_ja.audio.constants import SAMPLE_RATE
from whisper_ja.audio.features import ContextPolicy
from whisper_ja.errors import ConfigError, Ct2Error
from whisper_ja.inference.backend import Backend, GenerateRequest
from whisper_ja.inference.backends.ct2 import Ct2Backend, Ct2Encoded
from whisper_ja.model.record import ModelRecord, write_record

RNG = np.random.default_rng(0)


def _noise(seconds: float, level: float = 0.1) -> np.ndarray:
    return (level * RNG.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)


WINDOWS = [_noise(2.0), _noise(5.0), _noise(3.0)]


@pytest.fixture(scope="module")
def backend(tiny_ct2: Path) -> Ct2Backend:
    """The tiny random export in int8: encoder and align run one row at a time."""
    return Ct2Backend.load(tiny_ct2, device="cpu")


@pytest.fixture(scope="module")
def encoded(backend: Ct2Backend) -> Ct2Encoded:
    return backend.encode(WINDOWS)


def _copy(folder: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "export"
    shutil.copytree(folder, copy)
    return copy


def test_it_is_a_backend_with_the_exports_ids(backend: Ct2Backend, encoded: Ct2Encoded):
    typed: Backend = backend  # mypy checks the structure; here, the values
    assert typed.name == "ct2" and typed.max_positions == 448
    specials = backend.vocabulary.specials
    assert backend.vocabulary.prefix("ja") == (specials.sot, specials.ja, specials.transcribe)
    assert not backend.policy.dynamic  # the tiny export records a 30 s context
    assert encoded.rows == 3 and encoded.seconds == (2.0, 5.0, 3.0)
    assert encoded.frames == 3000 and encoded.content_frames == (200, 500, 300)


def test_greedy_is_deterministic_and_rows_do_not_depend_on_the_batch(backend, encoded):
    request = GenerateRequest(max_new_tokens=6)
    first = backend.generate(encoded, [0, 1, 2], request)
    assert backend.generate(encoded, [0, 1, 2], request) == first
    assert backend.generate(encoded, [2, 0], request) == [first[2], first[0]]
    assert backend.generate(encoded, [], request) == []
    for row in first:  # a random model never ends: it runs to the limit
        assert len(row.ids) == 6 and row.hit_limit
        assert all(backend.vocabulary.is_text(t) for t in row.ids)
        assert row.avg_logprob < 0 and 0 <= row.no_speech_prob <= 1
    longer = backend.generate(encoded, [0], GenerateRequest(max_new_tokens=9))[0]
    assert len(longer.ids) == 9 and longer.ids[:6] == first[0].ids


def test_beam_search_runs(backend, encoded):
    found = backend.generate(encoded, [1], GenerateRequest(max_new_tokens=5, beams=3))
    assert len(found) == 1 and len(found[0].ids) == 5


def test_sampling_repeats_with_its_seed_and_differs_with_another(tiny_ct2, encoded):
    """A run samples as another run of the same input does (a fresh backend, same seed)."""
    def run(seed: int) -> list[list[tuple[int, ...]]]:
        fresh = Ct2Backend.load(tiny_ct2)
        ids = fresh.encode(WINDOWS[:2])
        request = GenerateRequest(max_new_tokens=8, temperature=1.0, seed=seed)
        return [[row.ids for row in fresh.generate(ids, [0, 1], request)] for _ in range(2)]

    greedy = [row.ids for row in Ct2Backend.load(tiny_ct2).generate(
        encoded, [0, 1], GenerateRequest(max_new_tokens=8))]
    once = run(1)
    assert run(1) == once
    assert run(2) != once
    assert once[0] != greedy


def test_timestamps_are_kept_only_when_asked_for(backend, encoded):
    stamps = backend.vocabulary.timestamps
    plain = backend.generate(encoded, [0, 1], GenerateRequest(max_new_tokens=8))
    timed = backend.generate(encoded, [0, 1], GenerateRequest(max_new_tokens=8,
                                                               timestamps=True))
    assert not any(stamps.is_timestamp(t) for row in plain for t in row.ids)
    for row in timed:  # Whisper's timestamp rules: a window opens with a timestamp
        assert stamps.is_timestamp(row.ids[0])
        assert all(backend.vocabulary.is_text(t) or stamps.is_timestamp(t) for t in row.ids)
    assert [row.ids for row in timed] != [row.ids for row in plain]


def test_a_previous_text_prompt_conditions_generation(backend, encoded):
    bare = backend.generate(encoded, [0], GenerateRequest(max_new_tokens=6))[0]
    prompt = tuple(backend.encode_text("駅までの道を教えてください。"))
    prompted = backend.generate(encoded, [0], GenerateRequest(max_new_tokens=6,
                                                              prompt=prompt))[0]
    assert prompted.ids != bare.ids
    assert prompted.no_speech_prob != bare.no_speech_prob  # read after the prompt
    assert all(backend.vocabulary.is_text(t) for t in prompted.ids)  # the prompt not echoed


@pytest.mark.parametrize("prompt_tokens", [60, 300])
def test_a_long_prompt_still_gets_every_new_token(backend, encoded, prompt_tokens):
    # CTranslate2 counts its max_length partly from the prompt (generate_ct2's rule): a
    # prompt longer than the token limit once cut generation short.
    prompt = tuple(range(100, 100 + prompt_tokens))
    found = backend.generate(encoded, [0], GenerateRequest(max_new_tokens=50, prompt=prompt))
    assert len(found[0].ids) == 50 and found[0].hit_limit


def test_the_limit_is_cut_to_the_positions_the_prompt_leaves(backend, encoded):
    request = GenerateRequest(max_new_tokens=50, prompt=tuple(range(100, 540)))
    found = backend.generate(encoded, [0], request)[0]  # 1 + 440 + 4 prompt positions
    assert len(found.ids) == 448 - 445 and found.hit_limit
    with pytest.raises(ValueError, match="no room"):
        backend.generate(encoded, [0], GenerateRequest(prompt=tuple(range(100, 545))))


def test_an_unknown_language_is_refused_by_name(backend, encoded):
    with pytest.raises(ConfigError, match="language"):
        backend.generate(encoded, [0], GenerateRequest(language="xx"))


def test_align_times_each_text_in_its_row_repeats_allowed(backend, encoded):
    texts = [[1000, 2000, 3000], [], [5000], [1000, 2000, 3000]]
    found = backend.align(encoded, [1, 1, 0, 1], texts, "ja")
    assert [len(a.starts) for a in found] == [3, 0, 1, 3]
    for alignment, text, row in zip(found, texts, [1, 1, 0, 1], strict=True):
        assert len(alignment.ends) == len(alignment.probs) == len(text)
        assert np.all(np.diff(alignment.starts) >= 0)
        assert np.all(alignment.ends >= alignment.starts)
        assert np.all(alignment.ends <= encoded.seconds[row] + 0.02)  # the audio, no padding
        assert np.all((alignment.probs > 0) & (alignment.probs <= 1))
    np.testing.assert_array_equal(found[0].starts, found[3].starts)
    with pytest.raises(ValueError, match="rows"):
        backend.align(encoded, [0], [[1], [2]], "ja")


def test_align_and_generate_agree_one_row_at_a_time_and_batched(tiny_ct2):
    # float32 on the CPU runs the batch in one call; int8 one row at a time.
    batched = Ct2Backend.load(tiny_ct2, device="cpu", compute_type="float32")
    encoded = batched.encode(WINDOWS)
    texts = [[1000, 2000], [3000, 4000, 5000]]
    together = batched.align(encoded, [2, 0], texts, "ja")
    alone = [batched.align(encoded, [row], [text], "ja")[0]
             for row, text in zip([2, 0], texts, strict=True)]
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a.starts, b.starts)
        np.testing.assert_allclose(a.probs, b.probs, rtol=1e-4)
    request = GenerateRequest(max_new_tokens=5)
    whole = batched.generate(encoded, [0, 1, 2], request)[1]
    alone_row = batched.generate(encoded, [1], request)[0]  # batch size changes rounding only
    assert alone_row.ids == whole.ids
    assert alone_row.avg_logprob == pytest.approx(whole.avg_logprob, rel=1e-4)
    assert alone_row.no_speech_prob == pytest.approx(whole.no_speech_prob, rel=1e-4)


def test_detect_language_gives_one_known_code_per_window(backend, encoded):
    codes = backend.detect_language(encoded)
    assert len(codes) == 3 and all(code in backend.vocabulary.languages for code in codes)


def test_text_skips_special_and_timestamp_ids(backend):
    ids = backend.encode_text("今日はとても良い天気です。")
    specials = backend.vocabulary.specials
    stamped = [backend.vocabulary.timestamps.to_token(1.0), *ids, specials.eot]
    assert backend.decode_text(stamped) == backend.decode_text(ids)
    assert backend.decode_text(ids).strip() == "今日はとても良い天気です。"


def test_encode_follows_the_recorded_context_policy(tiny_ct2, tmp_path):
    folder = _copy(tiny_ct2, tmp_path)
    write_record(folder, ModelRecord(policy=ContextPolicy(bucket_frames=200, min_frames=1000)))
    dynamic = Ct2Backend.load(folder, device="cpu")
    assert dynamic.policy.dynamic
    assert dynamic.encode([_noise(2.0), _noise(3.0)]).frames == 1000  # the floor
    short = dynamic.encode([_noise(13.3)])
    assert short.frames == 1400 and short.content_frames == (1330,)
    assert dynamic.generate(short, [0], GenerateRequest(max_new_tokens=3))[0].ids
    full = Ct2Backend.load(folder, device="cpu", context="full")
    assert full.encode([_noise(2.0)]).frames == 3000


def test_encode_refuses_what_is_not_a_window(backend):
    with pytest.raises(ValueError, match="30 s"):
        backend.encode([_noise(30.5)])
    with pytest.raises(ValueError, match="at least one"):
        backend.encode([])


def test_another_backends_encoder_output_is_refused(backend):
    from whisper_ja.inference.backends.hf import HfEncoded

    other = HfEncoded(hidden=None, seconds=(1.0,))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="own encoder output"):
        backend.generate(other, [0], GenerateRequest())


@pytest.mark.parametrize("cut", ["half", "empty", "garbage"])
def test_a_truncated_or_corrupt_model_bin_is_named(tiny_ct2, tmp_path, cut):
    folder = _copy(tiny_ct2, tmp_path)
    model_bin = folder / "model.bin"
    data = model_bin.read_bytes()
    model_bin.write_bytes({"half": data[:len(data) // 2], "empty": b"",
                           "garbage": b"not a model" * 100}[cut])
    with pytest.raises(Ct2Error, match=r"model\.bin: truncated or corrupt.*export --to ct2"):
        Ct2Backend.load(folder, device="cpu")


def test_a_tokenizer_without_whispers_tokens_is_named(tiny_ct2, tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel

    folder = _copy(tiny_ct2, tmp_path)
    Tokenizer(WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>")).save(
        str(folder / "tokenizer.json"))
    with pytest.raises(Ct2Error, match="tokenizer.json"):
        Ct2Backend.load(folder, device="cpu")


def test_timestamps_a_stock_tokenizer_lacks_come_from_the_models_vocabulary(
        tiny_ct2, tmp_path, backend):
    # Stock faster-whisper exports ship a tokenizer.json without timestamp tokens.
    folder = _copy(tiny_ct2, tmp_path)
    tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    tokenizer["added_tokens"] = [t for t in tokenizer["added_tokens"]
                                 if not t["content"][2:3].isdigit()]
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    stock = Ct2Backend.load(folder, device="cpu")
    assert stock.vocabulary == backend.vocabulary
    encoded = stock.encode(WINDOWS[:1])
    timed = stock.generate(encoded, [0], GenerateRequest(max_new_tokens=8, timestamps=True))
    assert stock.vocabulary.timestamps.is_timestamp(timed[0].ids[0])


def test_a_tokenizer_of_another_model_is_named(tiny_ct2, tmp_path, backend):
    folder = _copy(tiny_ct2, tmp_path)
    tokens = json.loads((folder / "vocabulary.json").read_text(encoding="utf-8"))
    no_timestamps = backend.vocabulary.specials.no_timestamps
    tokens[no_timestamps], tokens[no_timestamps - 1] = (tokens[no_timestamps - 1],
                                                        tokens[no_timestamps])
    (folder / "vocabulary.json").write_text(json.dumps(tokens), encoding="utf-8")
    with pytest.raises(Ct2Error, match="tokenizer.json: .*another model"):
        Ct2Backend.load(folder, device="cpu")


@pytest.mark.parametrize("compute_type", ["float16", "int8_float16"])
def test_half_precision_on_a_cpu_is_refused_by_name(tiny_ct2, compute_type):
    with pytest.raises(ConfigError, match=rf"compute_type: {compute_type} .*CPU.*int8"):
        Ct2Backend.load(tiny_ct2, device="cpu", compute_type=compute_type)


def test_bad_settings_are_refused_by_name(tiny_ct2, tmp_path):
    with pytest.raises(ConfigError, match="compute_type"):
        Ct2Backend.load(tiny_ct2, device="cpu", compute_type="int3")
    with pytest.raises(ConfigError, match="context"):
        Ct2Backend.load(tiny_ct2, device="cpu", context="stock")  # type: ignore[arg-type]
    with pytest.raises(Ct2Error, match="export --to ct2"):
        Ct2Backend.load(tmp_path, device="cpu")  # not an export


@pytest.fixture(scope="module")
def base_ct2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real whisper-base as CTranslate2 stores it (the offline wheels' model.bin)."""
    from transformers import WhisperFeatureExtractor

    from whisper_ja.model.offline import _assemble_model_bin

    folder = tmp_path_factory.mktemp("base_ct2")
    data_dir, data = _assemble_model_bin()
    (folder / "model.bin").write_bytes(data)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(data_dir / name, folder / name)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_real_whisper_base_hears_japanese_and_silence(base_ct2, ja_clips):
    from whisper_ja.audio.io import resample

    backend = Ct2Backend.load(base_ct2, device="cpu")
    speech = resample(ja_clips[0].audio, ja_clips[0].sample_rate)
    encoded = backend.encode([speech, np.zeros(3 * SAMPLE_RATE, dtype=np.float32)])
    assert backend.detect_language(encoded)[0] == "ja"
    said, silent = backend.generate(encoded, [0, 1], GenerateRequest(max_new_tokens=40))
    text = backend.decode_text(said.ids)
    assert "天気" in text and not said.hit_limit
    assert said.avg_logprob > -1.0 and silent.no_speech_prob > said.no_speech_prob
    timed = backend.generate(encoded, [0], GenerateRequest(max_new_tokens=40,
                                                           timestamps=True))[0]
    assert backend.vocabulary.timestamps.is_timestamp(timed.ids[-1])
    alignment = backend.align(encoded, [0], [list(said.ids)], "ja")[0]
    assert 0 <= alignment.starts[0] < alignment.ends[-1] <= encoded.seconds[0] + 0.02
    assert float(np.median(alignment.probs)) > 0.3
