"""Two CPU processes train together (torchrun, gloo) and leave one consistent checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.training.torchrun import run_torchrun


@pytest.mark.slow
def test_two_cpu_processes_train_one_model(tmp_path, tiny_whisper_dir, clips_manifest):
    out = tmp_path / "out"
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump({
        "model": str(tiny_whisper_dir), "mode": "full", "out": str(out), "precision": "fp32",
        "data": {"train": [str(clips_manifest)]},
        "optim": {"batch_size": 1, "max_steps": 2},
        "efficiency": {"context": {"min_frames": 0}},
        "run": {"progress": False, "tensorboard": False, "save_every": 1,
                "keep_checkpoints": 1},
    }))
    run_torchrun(2, ["-m", "whisper_ja.cli", "train", "--config", str(config)], clean=[out])

    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2
    # Each step used one clip on each process: 2 steps x 1 clip x 2 processes.
    assert summary["samples_seen"] == 4
    checksums = summary["replica_checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]  # DDP kept replicas equal

    checkpoints = sorted((out / "checkpoints").glob("step-*"))
    assert [c.name for c in checkpoints] == ["step-00000002"]  # older one pruned, none partial
    assert not list((out / "checkpoints").glob(".partial*"))
    names = {p.name for p in checkpoints[0].iterdir()}
    assert {"random_states_0.pkl", "random_states_1.pkl", "model.safetensors",
            "optimizer.bin"} <= names
    saved = load_file(checkpoints[0] / "model.safetensors")
    final = load_file(out / "model.safetensors")
    shared = saved.keys() & final.keys()
    assert len(shared) > 100
    for key in shared:
        assert torch.equal(saved[key], final[key]), key
    # The published folder is a plain transformers model that remembers its context policy.
    from transformers import WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(out)
    assert model.config.whisper_ja_dynamic_context is True
    assert json.loads((out / "whisper_ja.json").read_text())["dynamic_context"] is True
