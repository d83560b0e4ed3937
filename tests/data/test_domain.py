"""Domain terms: term files, built-in resources, prompt ids and their path to the decoder."""

from __future__ import annotations

import numpy as np
import pytest

from whisper_ja.data.domain import (
    DOMAINS,
    Term,
    TermFileError,
    builtin_sentences,
    builtin_terms_path,
    read_terms,
    synthesize_domain_set,
    terms_in,
    terms_to_prompt_ids,
    terms_to_prompt_text,
    write_terms,
)
from whisper_ja.data.manifest import read_manifest
from whisper_ja.model.tokens import special_tokens


def test_read_terms_reads_readings_and_comments(tmp_path):
    path = tmp_path / "terms.txt"
    path.write_text("# a comment\n心筋梗塞\tシンキンコウソク\n\n機械学習\n", encoding="utf-8")
    assert read_terms(path) == [Term("心筋梗塞", "シンキンコウソク"), Term("機械学習", "")]


def test_read_terms_names_file_and_line_of_a_bad_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("肺炎\n喘息\tゼンソク\textra\n", encoding="utf-8")
    with pytest.raises(TermFileError, match=r"bad.txt:2"):
        read_terms(path)
    path.write_text("肺炎\n肺炎\n", encoding="utf-8")
    with pytest.raises(TermFileError, match=r"bad.txt:2"):
        read_terms(path)
    (tmp_path / "empty.txt").write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(TermFileError, match="no terms"):
        read_terms(tmp_path / "empty.txt")
    with pytest.raises(TermFileError, match="does not exist"):
        read_terms(tmp_path / "missing.txt")


def test_write_terms_round_trips(tmp_path):
    terms = [Term("喘息", "ゼンソク"), Term("推論")]
    write_terms(tmp_path / "t.txt", terms)
    assert read_terms(tmp_path / "t.txt") == terms


@pytest.mark.parametrize("domain", DOMAINS)
def test_builtin_sentences_carry_every_term(domain):
    terms = read_terms(builtin_terms_path(domain))
    sentences = builtin_sentences(domain)
    assert len(terms) >= 20 and len(sentences) >= 25
    assert all(terms_in(s, terms) for s in sentences), "a sentence without a domain term"
    used = {t.text for s in sentences for t in terms_in(s, terms)}
    assert used == {t.text for t in terms}, "a term no sentence carries"
    assert all(t.reading for t in terms)


def test_prompt_ids_match_whisper_prompt_layout(tiny_whisper):
    tokenizer = tiny_whisper.processor.tokenizer
    ids = terms_to_prompt_ids([Term("高血圧"), "糖尿病"], tokenizer)
    assert tokenizer.convert_ids_to_tokens(ids[0]) == "<|startofprev|>"
    assert list(ids) == tiny_whisper.processor.get_prompt_ids("高血圧、糖尿病").tolist()
    assert tokenizer.decode(ids[1:]).strip() == "高血圧、糖尿病"
    assert terms_to_prompt_ids([], tokenizer) == ()


def test_long_prompts_drop_terms_from_the_end(tiny_whisper, caplog):
    tokenizer = tiny_whisper.processor.tokenizer
    terms = read_terms(builtin_terms_path("medical"))
    full = terms_to_prompt_ids(terms, tokenizer)
    short = terms_to_prompt_ids(terms, tokenizer, max_tokens=20)
    assert len(short) - 1 <= 20 < len(full) - 1
    text = tokenizer.decode(short[1:]).strip()
    assert text.startswith("高血圧、糖尿病") and "虫垂炎" not in text
    assert "left out" in caplog.text


def _decoder_inputs(model) -> tuple[list[list[int]], object]:
    """Record the decoder's input ids of every forward call."""
    seen: list[list[int]] = []

    def hook(_module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None:
            seen.append(ids[0].tolist())

    handle = model.model.decoder.register_forward_pre_hook(hook, with_kwargs=True)
    return seen, handle


def test_prompt_ids_reach_the_decoder(tiny_whisper):
    from whisper_ja.audio.features import ContextPolicy
    from whisper_ja.inference.engine import live_engine
    from whisper_ja.inference.options import DecodingOptions, RuntimeSettings

    model, processor = tiny_whisper.model, tiny_whisper.processor
    terms = ["高血圧", "糖尿病"]
    prompt = terms_to_prompt_ids(terms, processor.tokenizer)
    specials = special_tokens(processor.tokenizer)
    audio = np.random.default_rng(0).normal(0, 0.05, 16000).astype(np.float32)
    seen, handle = _decoder_inputs(model)
    try:
        with live_engine(model, processor, RuntimeSettings(backend="transformers"),
                         DecodingOptions(max_new_tokens=3),
                         ContextPolicy()) as engine:
            # What `evaluate --prompt-terms` gives the engine: the prompt's text ids.
            text_ids = engine.prompt_ids(terms_to_prompt_text(terms))
            assert (specials.prev_text, *text_ids) == prompt
            engine.decode_clips([audio], prompt=text_ids)
            with_prompt = [ids for ids in seen if specials.prev_text in ids]
            seen.clear()
            engine.decode_clips([audio], prompt=())
            without = list(seen)
    finally:
        handle.remove()
    # The decoder call that starts the transcript sees the whole prompt, then the Japanese
    # transcription prefix (other calls, e.g. a no-speech check, may come first).
    assert with_prompt, "the prompt never reached the decoder"
    assert with_prompt[0][:len(prompt)] == list(prompt)
    assert with_prompt[0][len(prompt):len(prompt) + 4] == list(specials.ja_prefix)
    assert without and not any(specials.prev_text in ids for ids in without)


@pytest.mark.slow
def test_synthesize_domain_set_writes_labelled_manifest(tmp_path):
    manifest = synthesize_domain_set(
        tmp_path, voices=("openjtalk:0",), progress=False,
        sentences={"medical": ["父は高血圧の薬を飲みます。", "今日は晴れです。"],
                   "technical": ["機械学習の推論を速くした。"]})
    utts = read_manifest(manifest)
    assert [u.extra["terms"] for u in utts] == [["高血圧"], [], ["機械学習", "推論"]]
    assert all(u.corpus == "synthetic" and u.extra["synthetic"] and u.split == "test"
               for u in utts)
    assert all(u.duration > 0.5 for u in utts)
    import soundfile as sf

    assert sf.info(utts[0].audio).samplerate == 16000
    assert {t.text for t in read_terms(tmp_path / "terms.txt")} >= {"高血圧", "推論"}
    assert (tmp_path / "terms_medical.txt").is_file()
