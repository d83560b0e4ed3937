"""Device and dtype settings, and the memory settings' refusals where the hardware lacks them."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch

from whisper_ja.cli import main
from whisper_ja.config import load_config
from whisper_ja.errors import ConfigError
from whisper_ja.model.device import (
    check_device,
    cpu_has_bf16,
    describe_machine,
    resolve_device,
    resolve_dtype,
)
from whisper_ja.training.settings import TrainConfig

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")


@pytest.mark.parametrize("bf16", [True, False])
def test_the_machine_line_names_the_cpu_cores_kernels_and_bf16(monkeypatch, bf16):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: bf16)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    line = describe_machine()
    cores = f", {len(os.sched_getaffinity(0))} CPU cores, "
    assert cores in line
    assert line.split(cores)[0] not in ("", "unknown CPU")  # the CPU's name comes first
    assert f", torch CPU kernels {torch.backends.cpu.get_cpu_capability()}, " in line
    assert f", bf16 on the CPU: {'yes' if bf16 else 'no'}" in line


@pytest.mark.parametrize(("kernels", "fast"), [("AVX512", True), ("AVX2", False),
                                               ("DEFAULT", False)])
def test_bf16_counts_as_fast_only_where_torch_kernels_use_avx512(monkeypatch, kernels, fast):
    # ATEN_CPU_CAPABILITY=avx2 on an AVX512-bf16 CPU: bf16 would be emulated, slower than fp32
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: kernels)
    assert cpu_has_bf16() is fast


def test_auto_is_the_gpu_when_present_else_the_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "cpu:0:1", ""])
def test_malformed_devices_are_refused_naming_the_setting(bad):
    with pytest.raises(ConfigError, match="eval_device"):
        check_device(bad, "eval_device")


def test_half_precision_on_the_cpu_is_refused():
    with pytest.raises(ConfigError, match="dtype"):
        resolve_dtype("float16", torch.device("cpu"))


@no_gpu
def test_a_gpu_asked_for_where_none_is_visible_is_refused():
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda")


@no_gpu
@pytest.mark.parametrize("bits", ["8bit", "4bit"])
def test_a_quantized_base_is_refused_on_a_cpu_before_any_work(bits):
    with pytest.raises(ConfigError, match=rf"quantize_base: a {bits} base needs a CUDA GPU"):
        load_config(TrainConfig, overrides=[f"quantize_base={bits}"])


def test_a_quantized_base_needs_lora():
    with pytest.raises(ConfigError, match="quantize_base: only a frozen base"):
        load_config(TrainConfig, overrides=["quantize_base=4bit", "mode=full"])


@no_gpu
def test_transcribe_on_a_missing_gpu_exits_2_with_one_line(tmp_path, capsys):
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(16000, np.float32), 16000)
    assert main(["transcribe", str(wav), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA GPU" in err[0]


def test_bad_compute_type_is_refused(tmp_path, capsys):
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(16000, np.float32), 16000)
    assert main(["transcribe", str(wav), "--backend", "ct2", "--compute-type", "int3"]) == 2
    assert "compute_type" in capsys.readouterr().err
