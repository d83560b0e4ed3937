"""Streamed data pieces: JSONL byte ranges and tar shards hold every record exactly once; bad
records come back as named problems; duration buckets and the shuffle buffer lose nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from whisper_ja.data.bucketing import bucketed_batches, shuffled
from whisper_ja.data.manifest import Utterance, write_manifest
from whisper_ja.data.shards import write_shards
from whisper_ja.data.stream_sources import (
    decode_audio_bytes,
    estimated_clips,
    iter_source,
    plan_sources,
)
from whisper_ja.errors import AudioError


def manifest_of(folder, count, audio="a.wav"):
    path = folder / "m.jsonl"
    write_manifest(path, [Utterance(f"u{i}", str(folder / audio), "あ" * (i % 7 + 1),
                                    0.5 + i % 9, "c") for i in range(count)])
    return path


@pytest.mark.parametrize(("rows", "slots", "chunk"), [(1, 4, 64), (57, 3, 100), (200, 1, 999),
                                                      (200, 8, 1 << 20)])
def test_byte_ranges_hold_every_row_exactly_once(tmp_path, rows, slots, chunk):
    path = manifest_of(tmp_path, rows)
    sources = plan_sources([path], slots, chunk)
    ids = [item.utterance.id for s in sources for item in iter_source(s)]
    assert sorted(ids) == sorted(f"u{i}" for i in range(rows))
    assert estimated_clips([path]) == rows


def test_malformed_rows_are_named_problems_not_failures(tmp_path):
    path = manifest_of(tmp_path, 3)
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"id": "x"}\n\xff not json\n')
    items = [i for s in plan_sources([path], 1, 1 << 20) for i in iter_source(s)]
    assert [i.utterance.id for i in items if i.utterance] == ["u0", "u1", "u2"]
    problems = [i for i in items if i.problem]
    assert [p.problem for p in problems] == ["malformed row", "malformed row"]
    assert "missing field" in problems[0].where and "m.jsonl byte" in problems[0].where


def test_shards_round_trip_and_a_cut_shard_is_named(tmp_path, ja_clips):
    utts = [Utterance(f"jsut/{i}.x", str(c.path), c.text, len(c.audio) / c.sample_rate, "c")
            for i, c in enumerate(ja_clips)]
    utts.append(Utterance("gone", str(tmp_path / "gone.wav"), "x", 1.0, "c"))
    report = write_shards(iter(utts), tmp_path / "shards", 2)
    assert report.clips == len(ja_clips) and report.skipped == {"missing audio": 1}
    index = json.loads((tmp_path / "shards" / "index.json").read_text())
    assert [s["clips"] for s in index["shards"]] == [2] * (len(ja_clips) // 2) + \
        [1] * (len(ja_clips) % 2)
    assert estimated_clips([tmp_path / "shards"]) == len(ja_clips)
    items = [i for s in plan_sources([tmp_path / "shards"], 2, 1) for i in iter_source(s)]
    assert [i.utterance.id for i in items] == [u.id for u in utts[:-1]]
    audio = decode_audio_bytes(items[0].audio, "x")
    assert abs(len(audio) / 16000 - utts[0].duration) < 0.01
    first = tmp_path / "shards" / index["shards"][0]["name"]
    whole = first.read_bytes()
    for cut_at, problem in ((1500, "incomplete clip in shard"), (3000, "shard ends early")):
        first.write_bytes(whole[:cut_at])  # in the audio's header; in its data
        cut = list(iter_source(plan_sources([first], 1, 1)[0]))
        assert cut[-1].problem == problem and str(first) in cut[-1].where
    (tmp_path / "shards" / "bad.tar").write_bytes(b"not a tar at all" * 10)
    bad = list(iter_source(plan_sources([tmp_path / "shards" / "bad.tar"], 1, 1)[0]))
    assert [b.problem for b in bad] == ["unreadable shard"]
    with pytest.raises(AudioError, match="^name: "):
        decode_audio_bytes(b"RIFF....", "name")


def test_duration_buckets_lose_nothing_and_respect_the_budget():
    rng = np.random.default_rng(0)
    durations = rng.uniform(0.5, 29.0, 500).tolist()
    batches = list(bucketed_batches(range(500), lambda i: durations[i], batch_size=64,
                                    max_duration=60.0, boundaries=(5, 10, 20)))
    assert sorted(i for b in batches for i in b) == list(range(500))
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(durations[i] for i in batch) <= 60.0
        assert len(batch) <= 64
    by_count = list(bucketed_batches(range(10), lambda i: 1.0, batch_size=4, max_duration=0,
                                     boundaries=(5,)))
    assert [len(b) for b in by_count] == [4, 4, 2]


def test_shuffle_buffer_is_a_permutation_fixed_by_its_seed():
    first = list(shuffled(range(1000), 50, np.random.default_rng(3)))
    assert sorted(first) == list(range(1000)) and first != list(range(1000))
    assert first == list(shuffled(range(1000), 50, np.random.default_rng(3)))


def test_shard_streams_a_hub_corpus_into_shards_without_an_audio_copy(tmp_path, ja_clips,
                                                                      capsys):
    import datasets

    from whisper_ja.cli import main

    rows = {"audio": [{"bytes": c.path.read_bytes(), "path": f"{i}.wav"}
                      for i, c in enumerate(ja_clips)] + [{"bytes": b"RIFFjunk", "path": "x.wav"}],
            "transcription": [c.text for c in ja_clips] + ["壊れた"],
            "name": [f"n{i}" for i in range(len(ja_clips) + 1)]}
    # audio stored as Audio's own struct (bytes, path): building an Audio column needs torchcodec
    features = datasets.Features({"audio": {"bytes": datasets.Value("binary"),
                                            "path": datasets.Value("string")},
                                  "transcription": datasets.Value("string"),
                                  "name": datasets.Value("string")})
    saved = tmp_path / "hub_copy"
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(saved))
    out = tmp_path / "shards"
    code = main(["shard", "--hub", str(saved), "--out", str(out), "--clips-per-shard", "3"])
    err = capsys.readouterr().err
    assert code == 1 and "whisper-ja shard: bad input: unreadable audio" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub_copy", "shards"]  # no audio/
    items = [i for s in plan_sources([out], 1, 1) for i in iter_source(s)]
    assert [i.utterance.text for i in items] == [c.text for c in ja_clips]
    assert items[0].utterance.id == "reazonspeech/n0" and items[0].audio == \
        ja_clips[0].path.read_bytes()


def test_a_large_manifest_is_estimated_from_samples_not_counted(tmp_path, monkeypatch):
    from whisper_ja.data import stream_sources

    path = manifest_of(tmp_path, 3000)
    monkeypatch.setattr(stream_sources, "COUNT_EXACTLY_BYTES", 1000)
    monkeypatch.setattr(stream_sources, "SAMPLES", 8)
    monkeypatch.setattr(stream_sources, "SAMPLE_BYTES", 8192)
    assert abs(estimated_clips([path]) - 3000) < 150
