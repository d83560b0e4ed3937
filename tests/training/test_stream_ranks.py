"""Two processes with two DataLoader workers each read an epoch of uneven shards: every clip
exactly once, in as many steps on each process (the one that runs out trains on empty batches)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.training.torchrun import run_torchrun
from whisper_ja.data.manifest import Utterance
from whisper_ja.data.shards import write_shards

SCRIPT = Path(__file__).with_name("stream_ids.py")


def test_two_processes_two_workers_see_every_clip_exactly_once(tmp_path, ja_clips,
                                                               tiny_whisper_dir):
    utts = [Utterance(f"c{k}-{i}", str(c.path), c.text, len(c.audio) / c.sample_rate, "c")
            for k in range(4) for i, c in enumerate(ja_clips)]
    report = write_shards(iter(utts), tmp_path / "shards", 3)  # uneven: 6 shards, 4 readers
    assert len(report.shards) > 4
    run_torchrun(2, [str(SCRIPT), str(tmp_path / "shards"), str(tiny_whisper_dir),
                     str(tmp_path)], timeout=240)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    seen = ranks[0]["ids"] + ranks[1]["ids"]
    assert sorted(seen) == sorted(u.id for u in utts)  # each clip once, none missing
    assert not set(ranks[0]["ids"]) & set(ranks[1]["ids"])
    assert ranks[0]["steps"] == ranks[1]["steps"] > 0
