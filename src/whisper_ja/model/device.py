"""Where and in which precision a model runs: the ``device`` / ``dtype`` settings of every command.

``device: auto`` (the default everywhere) picks CUDA when a GPU is visible, else the CPU;
``dtype: auto`` picks float32 on the CPU and bfloat16 on a GPU that supports it (float16 on
older GPUs). The CTranslate2 backend has its own ``compute_type`` (``auto``: CTranslate2's
fastest for the device, e.g. ``int8`` on a CPU, ``int8_float16`` on a GPU).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Literal

import torch

from whisper_ja.errors import ConfigError

__all__ = [
    "CT2_COMPUTE_TYPES",
    "DEVICE_HELP",
    "DTYPE_HELP",
    "DTYPES",
    "DtypeName",
    "check_device",
    "cpu_has_bf16",
    "ct2_device",
    "describe_machine",
    "resolve_device",
    "resolve_dtype",
]

DtypeName = Literal["auto", "float32", "bfloat16", "float16"]
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16,
                                  "float16": torch.float16}
DEVICE_HELP = "torch device: auto (CUDA when present, else CPU), cpu, cuda, cuda:N"
DTYPE_HELP = ("weight dtype: auto (float32 on CPU, bfloat16 on GPU), float32, bfloat16, "
              "float16")
CT2_COMPUTE_TYPES = ("auto", "default", "int8", "int8_float32", "int8_float16",
                     "int8_bfloat16", "int16", "float16", "bfloat16", "float32")
"""CTranslate2 compute types (``auto``: fastest for the device; ``default``: as stored)."""


def check_device(device: str, setting: str = "device") -> None:
    """Validate a device setting without touching the GPU (for ``__post_init__``).

    Raises:
        ConfigError: not ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    """
    kind, _, index = device.partition(":")
    if device == "auto" or (kind in ("cpu", "cuda") and (not index or index.isdigit())):
        return
    raise ConfigError(f"{setting}: must be auto, cpu, cuda or cuda:N, got {device!r}")


def resolve_device(device: str, setting: str = "device") -> torch.device:
    """The torch device a setting names; ``auto`` = the first GPU when present.

    Raises:
        ConfigError: a malformed setting, or a GPU asked for where none is visible.
    """
    check_device(device, setting)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{setting}: {device} asked for, but no CUDA GPU is visible "
                          "(use auto or cpu)")
    return resolved


def resolve_dtype(dtype: str, device: torch.device, setting: str = "dtype") -> torch.dtype:
    """The torch dtype a setting names on ``device``; ``auto`` = float32 on CPU, bf16 on GPU.

    Raises:
        ConfigError: an unknown dtype, or half precision asked for on the CPU (slower than
            float32 there and unsupported by some kernels).
    """
    if dtype == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype not in DTYPES:
        raise ConfigError(f"{setting}: must be auto or one of {sorted(DTYPES)}, got {dtype!r}")
    if dtype == "float16" and device.type == "cpu":
        raise ConfigError(f"{setting}: float16 on the CPU is not supported; use float32 or "
                          "bfloat16")
    return DTYPES[dtype]


def ct2_device(device: str, setting: str = "device") -> Literal["cpu", "cuda"]:
    """CTranslate2's device for a setting (it takes ``cpu`` or ``cuda``, index separately)."""
    return "cuda" if resolve_device(device, setting).type == "cuda" else "cpu"


def cpu_has_bf16() -> bool:
    """Whether bf16 is fast here: AVX512-bf16, with torch's CPU kernels at AVX-512 or above.

    Then bf16 training is ~2x faster than fp32. Kernels held at AVX2
    (``ATEN_CPU_CAPABILITY=avx2``, as on an AVX2-only machine) emulate bf16 and are slower
    than fp32, so the CPU's flag alone does not decide.
    """
    flagged = bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())
    return flagged and torch.backends.cpu.get_cpu_capability() not in ("DEFAULT", "AVX2")


def describe_machine() -> str:
    """One line naming the hardware that timings were taken on.

    Training and decoding speed differ ~2-4x between this project's CPUs (with or without
    bf16), so a time is only meaningful next to this, e.g. ``AMD EPYC, 2 CPU cores, torch CPU
    kernels AVX512, bf16 on the CPU: yes``, with the GPU named when one is visible.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parts = [_cpu_model(), f"{cores} CPU cores",
             f"torch CPU kernels {torch.backends.cpu.get_cpu_capability()}",
             f"bf16 on the CPU: {'yes' if cpu_has_bf16() else 'no'}"]
    if torch.cuda.is_available():
        parts.append(f"GPU: {torch.cuda.get_device_name(0)}")
    return ", ".join(parts)


def _cpu_model() -> str:
    """The CPU's name as Linux reports it (``platform.processor()`` is empty there)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown CPU"
