"""Streamed training data: a run reads shards or a large manifest lazily, skips bad items, and
resumes after SIGKILL at the same place in the stream with identical weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from whisper_ja.config import load_config
from whisper_ja.data.manifest import Utterance, read_manifest, write_manifest
from whisper_ja.data.shards import write_shards
from whisper_ja.training.loop import TrainConfig, train


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def many_clips(clips_manifest: Path, folder: Path, copies: int) -> Path:
    """The session's clips repeated under new ids (audio reused: only the count matters)."""
    base = read_manifest(clips_manifest)
    utts = [Utterance(f"{u.id}-{k}", u.audio, u.text, u.duration, "synthetic" if k % 2 else "x")
            for k in range(copies) for u in base]
    path = folder / "many.jsonl"
    write_manifest(path, utts)
    return path


def stream_config(out: Path, model: Path, data: Path, *overrides: str) -> list[str]:
    return [f"model={model}", f"out={out}", "precision=fp32", f"data.train=[{data}]",
            "data.streaming=always", "efficiency.workers=2", "data.shuffle_buffer=4",
            "optim.batch_size=2", "efficiency.context.min_frames=0", "run.progress=false",
            "run.tensorboard=false", "run.validate_at_start=false",
            "efficiency.feature_cache=false",
            *overrides]


def test_streamed_run_skips_counts_and_names_bad_items(tmp_path, tiny_whisper_dir,
                                                       clips_manifest, one_thread):
    manifest = many_clips(clips_manifest, tmp_path, 2)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF" + b"\0" * 100)
    bad = [Utterance("gone", str(tmp_path / "gone.wav"), "消えた", 1.0, "x"),
           Utterance("garbage", str(garbage), "壊れた", 1.0, "x")]
    with manifest.open("a", encoding="utf-8") as handle:
        handle.write('{"id": "broken", "audio": \n')
        handle.writelines(u.to_json() + "\n" for u in bad)
    rows = len(read_manifest(clips_manifest)) * 2
    result = train(load_config(TrainConfig, overrides=stream_config(
        tmp_path / "out", tiny_whisper_dir, manifest, f"optim.max_steps={rows}")))
    summary = result.summary
    assert summary["streamed"] and summary["steps"] == rows
    assert summary["skipped"] == {"malformed row": 1, "unreadable audio": 2}
    named = "\n".join(summary["skipped_named"])
    assert "gone.wav" in named and "garbage.wav" in named and "many.jsonl byte" in named
    assert summary["train_clips_read"] >= rows  # the first epoch whole, then the second's start


KILL_AT_STEP = """
import os, signal, sys
import whisper_ja.training.loop as loop
real = loop.train_step
def kill_at(*args, **kwargs):
    if args[-1] == {step}:  # 0-based: after the checkpoint of step {step}, mid-epoch
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
loop.train_step = kill_at
from whisper_ja.cli import main
sys.exit(main(sys.argv[1:]))
"""


def cli(*args: str, script: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path.cwd() / "src")}
    command = ([sys.executable, "-c", script] if script else
               [sys.executable, "-m", "whisper_ja.cli"])
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)


def test_streamed_resume_after_sigkill_gives_identical_weights(tmp_path, tiny_whisper_dir,
                                                               clips_manifest):
    """Shards read by two workers; SIGKILL in the middle of the first epoch, then ``--resume``
    alone: the same steps, the same final weights as a run never stopped."""
    shards = tmp_path / "shards"
    report = write_shards(read_manifest(many_clips(clips_manifest, tmp_path, 2)), shards, 3)
    steps = report.clips // 2 + 3  # past the end of the first epoch
    settings = stream_config(tmp_path / "x", tiny_whisper_dir, shards, f"optim.max_steps={steps}",
                             "run.save_every=2", "run.log_every=1", "mode=lora",
                             "lora.dropout=0.3", "optim.warmup_steps=1")
    settings = [s for s in settings if not s.startswith("out=")]
    straight = cli("train", f"--out={tmp_path / 'a'}", "--set", *settings)
    assert straight.returncode == 0, straight.stderr[-2000:]
    killed = cli("train", f"--out={tmp_path / 'b'}", "--set", *settings,
                 script=KILL_AT_STEP.format(step=3))
    assert killed.returncode == -signal.SIGKILL
    assert (tmp_path / "b" / "checkpoints" / "step-00000002").is_dir()
    resumed = cli("train", f"--out={tmp_path / 'b'}", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    a = load_file(tmp_path / "a" / "adapter_model.safetensors")
    b = load_file(tmp_path / "b" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["steps"] == steps and summary["epochs_started"] == 2
    log = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == list(range(1, steps + 1))
