"""Leak-free splitting: no normalized sentence in two splits, deterministic for a seed."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from whisper_ja.cli import main
from whisper_ja.config import ConfigError
from whisper_ja.data.manifest import Utterance, read_manifest, write_manifest
from whisper_ja.data.split import SplitConfig, split_report, split_utterances, text_key

SPEAKERS = ("a", "b", "c", "d", "e", "f")


def _corpus(n_sentences: int = 60) -> list[Utterance]:
    """Each sentence read by 1-4 speakers, with punctuation/width variants of the same text."""
    utts = []
    for s in range(n_sentences):
        readers = SPEAKERS[: 1 + s % 4]
        for k, spk in enumerate(readers):
            text = f"文{s}番です。" if k % 2 == 0 else f"文{s}番です"  # differs only in punctuation
            if k == 2:
                text = text.replace(str(s), str(s).translate(str.maketrans("0123456789",
                                                                           "０１２３４５６７８９")))
            utts.append(Utterance(id=f"u{s}-{spk}", audio=f"{s}-{spk}.wav", text=text,
                                  duration=1.0 + s % 3, corpus="c1" if s % 2 else "c2",
                                  speaker=spk))
    return utts


def _texts(utts: list[Utterance]) -> set[str]:
    return {text_key(u.text) for u in utts}


def test_no_text_in_two_splits_and_ratios_hold():
    utts = _corpus()
    splits = split_utterances(utts, SplitConfig(seed=3))
    assert sum(len(v) for v in splits.values()) == len(utts)
    assert not _texts(splits["train"]) & _texts(splits["test"])
    assert not _texts(splits["train"]) & _texts(splits["validation"])
    assert not _texts(splits["validation"]) & _texts(splits["test"])
    assert 0.7 < len(splits["train"]) / len(utts) < 0.9
    assert all(u.split == name for name, items in splits.items() for u in items)
    # Every reading of a repeated sentence (different speakers, punctuation, widths) stays together.
    where = {u.id: name for name, items in splits.items() for u in items}
    for s in range(60):
        assert len({where[u.id] for u in utts if u.id.startswith(f"u{s}-")}) == 1


def test_same_seed_same_split_and_input_order_irrelevant():
    utts = _corpus()
    first = split_utterances(utts, SplitConfig(seed=7))
    again = split_utterances(list(reversed(utts)), SplitConfig(seed=7))
    other = split_utterances(utts, SplitConfig(seed=8))
    ids = {name: sorted(u.id for u in items) for name, items in first.items()}
    assert ids == {name: sorted(u.id for u in items) for name, items in again.items()}
    assert ids != {name: sorted(u.id for u in items) for name, items in other.items()}


def test_test_speakers_and_speaker_disjoint():
    utts = _corpus()
    splits = split_utterances(utts, SplitConfig(test_speakers=("d",)))
    assert "d" not in {u.speaker for u in splits["train"] + splits["validation"]}
    assert "d" in {u.speaker for u in splits["test"]}
    assert not _texts(splits["train"]) & _texts(splits["test"])
    # Speaker-disjoint with disjoint readers: each speaker reads its own sentences.
    solo = [Utterance(id=f"{spk}{i}", audio="x.wav", text=f"{spk}の文{i}", duration=1.0,
                      corpus="c", speaker=spk) for spk in "abcdefghij" for i in range(5)]
    parts = split_utterances(solo, SplitConfig(speaker_disjoint=True, seed=1))
    speakers = {name: {u.speaker for u in items} for name, items in parts.items()}
    assert not speakers["train"] & speakers["test"]
    assert not speakers["train"] & speakers["validation"]
    assert len(speakers["train"]) == 8


def test_keep_official_test():
    utts = [Utterance(id=f"u{i}", audio="x.wav", text=f"文{i}", duration=1.0, corpus="c",
                      extra={"official_split": "test" if i < 5 else "train"}) for i in range(40)]
    # A train utterance repeating an official-test sentence must follow it into test.
    utts.append(Utterance(id="dup", audio="x.wav", text="文0", duration=1.0, corpus="c",
                          extra={"official_split": "train"}))
    splits = split_utterances(utts, SplitConfig(keep_official="test"))
    test_ids = {u.id for u in splits["test"]}
    assert {f"u{i}" for i in range(5)} | {"dup"} <= test_ids


def test_corpus_weights_only_touch_train():
    utts = _corpus()
    base = split_utterances(utts, SplitConfig())
    weighted = split_utterances(utts, SplitConfig(corpus_weights=("c1=2", "c2=0.5")))
    count = Counter(u.corpus for u in base["train"])
    new = Counter(u.corpus for u in weighted["train"])
    assert new["c1"] == 2 * count["c1"]
    assert new["c2"] == round(0.5 * count["c2"])
    assert weighted["test"] == base["test"]
    assert len({u.id for u in weighted["train"]}) == len(weighted["train"])


@pytest.mark.parametrize("bad", [{"ratios": (0.8, 0.2)}, {"corpus_weights": ("c1",)},
                                 {"corpus_weights": ("c1=-1",)}])
def test_bad_settings_are_named(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        SplitConfig(**bad)


def test_cli_writes_manifests_and_report(tmp_path, capsys):
    utts = _corpus()
    write_manifest(tmp_path / "in1.jsonl", utts[:100])
    write_manifest(tmp_path / "in2.jsonl", utts[100:])
    out = tmp_path / "out"
    assert main(["split", str(tmp_path / "in1.jsonl"), str(tmp_path / "in2.jsonl"),
                 "--out", str(out), "--seed", "2", "--test-speakers", "d"]) == 0
    parts = {n: read_manifest(out / f"{n}.jsonl") for n in ("train", "validation", "test")}
    assert sum(len(v) for v in parts.values()) == len(utts)
    report = json.loads((out / "split_report.json").read_text(encoding="utf-8"))
    assert report["text_overlap"] == {}
    assert report["test_speakers_outside_test"] == []
    assert report["test_speakers_missing"] == []
    assert "d" in {u.speaker for u in parts["test"]}
    assert report["splits"]["train"]["all"]["utterances"] == len(parts["train"])
    printed = capsys.readouterr().out
    assert "train" in printed and "text_overlap: none" in printed


def test_constraints_the_data_cannot_meet_are_reported():
    # Both speakers read every sentence: speaker-disjointness joins everything into one group.
    utts = [Utterance(id=f"{spk}{i}", audio="x.wav", text=f"文{i}", duration=1.0, corpus="c",
                      speaker=spk) for spk in "ab" for i in range(10)]
    config = SplitConfig(speaker_disjoint=True)
    splits = split_utterances(utts, config)
    assert sorted(len(v) for v in splits.values()) == [0, 0, 20]
    report = split_report(splits, config)
    assert sum("is empty" in w for w in report["warnings"]) == 2
    assert report["speaker_overlap"] == {} and report["text_overlap"] == {}
