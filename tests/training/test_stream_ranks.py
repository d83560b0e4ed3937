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


def test_two_processes_train_on_uneven_streamed_shards_without_hanging(tmp_path, ja_clips,
                                                                       tiny_whisper_dir):
    """The process whose readers finish first trains on empty batches until the other is done:
    DDP stays in step, the replicas stay equal, and the epoch ends for both together."""
    utts = [Utterance(f"c{k}-{i}", str(c.path), c.text, len(c.audio) / c.sample_rate, "c")
            for k in range(2) for i, c in enumerate(ja_clips)]
    report = write_shards(iter(utts), tmp_path / "shards", 3)  # 3+3+2 clips over 2 readers
    out = tmp_path / "out"
    run_torchrun(2, ["-m", "whisper_ja.cli", "train", f"--out={out}", "--set",
                     f"model={tiny_whisper_dir}", f"data.train=[{tmp_path / 'shards'}]",
                     "data.streaming=always", "efficiency.workers=1", "optim.batch_size=1",
                     f"optim.max_steps={report.clips}", "precision=fp32",
                     "efficiency.context.min_frames=0", "run.progress=false",
                     "run.tensorboard=false", "efficiency.feature_cache=false"],
                 clean=[out], timeout=240)
    summary = json.loads((out / "summary.json").read_text())
    checksums = summary["replica_checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]
    assert summary["epochs_started"] == 2  # one epoch took fewer steps than clips
    assert summary["train_clips_read"] >= report.clips
