"""The unseen-domain check set never holds a training sentence or a training voice."""

from __future__ import annotations

from pathlib import Path

import pytest

from whisper_ja.config import ConfigError
from whisper_ja.data.manifest import Utterance, read_manifest, write_manifest
from whisper_ja.data.split import text_key
from whisper_ja.data.synth import SynthConfig, _sentences
from whisper_ja.data.text_sources import generate_sentences
from whisper_ja.data.unseen import UNSEEN_CORPUS, UnseenConfig, make_unseen_set, unseen_sentences


def test_never_emits_a_training_sentence(tmp_path: Path) -> None:
    # A training corpus as synth plans it, plus news sentences deliberately planted in it.
    training = [s.text for s in _sentences(SynthConfig(out=tmp_path, size=400), 400)]
    planted = [s.text for s in generate_sentences("news", 30, seed=7)]
    keys = {text_key(t) for t in training + planted}
    items = unseen_sentences(60, seed=7, training_texts=keys, long_share=0.3)
    assert len(items) == 60
    assert not keys & {text_key(s.text) for s in items}
    for s in items:  # neither half of a joined item is a training sentence either
        assert not any(text_key(p) in s.text for p in planted)
    assert sum(len(s.text) > 60 for s in items) >= 15  # the joined, long ones


def test_training_voices_are_refused(tmp_path: Path) -> None:
    manifest = tmp_path / "train.jsonl"
    write_manifest(manifest, [Utterance("a", "a.wav", "こんにちは", 1.0, "synthetic",
                                        speaker="openjtalk-mei-1")])
    with pytest.raises(ConfigError, match="openjtalk-mei-1"):
        make_unseen_set(UnseenConfig(out=tmp_path / "u", size=2, voices=("openjtalk:-1",),
                                     exclude=(manifest,), progress=False))


@pytest.mark.slow
def test_makes_a_synthetic_manifest(tmp_path: Path) -> None:
    utts = read_manifest(make_unseen_set(UnseenConfig(
        out=tmp_path, size=2, voices=("openjtalk:+3",), long_share=0.5, progress=False)))
    assert len(utts) == 2
    assert {u.corpus for u in utts} == {UNSEEN_CORPUS}
    assert all(u.is_synthetic and u.extra["text_source"] == "news" for u in utts)
    assert max(u.duration for u in utts) > 8  # a joined pair runs long
