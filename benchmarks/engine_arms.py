"""The systems that issue 26's benchmarks compare, each in one small function.

- :func:`whisper_ja_default` and :func:`whisper_ja_default_files`: ``whisper-ja transcribe``
  with no flags (or only ``--adapter``) through the Python front door: the engine's
  (``load_engine`` with ``transcribe``'s default settings; for files, ``transcribe``'s own
  ``run``). On a checkout from before the engine (``PYTHONPATH=OLD/src``, the "before"
  figures) they fall back to that tree's front door (``inference.transcribe``).
- :func:`stock_faster_whisper`: faster-whisper as its users run it (``WhisperModel``, int8,
  ``vad_filter=True``, Japanese), in-process, on the CTranslate2 export of the same model
  (:func:`ct2_export`, cached).
- :func:`whisper_ja_mode`, :func:`whisper_ja_beams`: other ``transcribe`` settings (mode,
  backend, beam width), optional arms.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

LongArm = Callable[[np.ndarray], Iterable[Any]]
"""``audio (16 kHz float32) -> segments`` (objects with ``start``, ``end``, ``text``)."""
FasterArm = Callable[[np.ndarray | str], list[Any]]
"""faster-whisper's arm: audio or a file's path (it decodes files itself) -> segments."""


def whisper_ja_default(model: str, adapter: Path | None = None) -> LongArm:
    """``whisper-ja transcribe [--adapter A]`` with no other flag: load once, then per file."""
    try:
        from whisper_ja.commands.transcribe import TranscribeConfig
        from whisper_ja.inference.engine import load_engine  # noqa: F401 (the engine's tree)
    except ImportError:  # a checkout from before the engine: issue 26's "before" figures
        return _before_engine(model, adapter)
    config = TranscribeConfig(audio=("benchmark",), model=model,
                              adapter=str(adapter) if adapter else None)
    return _engine_arm(config)


def _engine_arm(config: Any) -> LongArm:
    """The engine ``transcribe`` loads for ``config`` (a ``TranscribeConfig``), as an arm."""
    from whisper_ja.inference.engine import load_engine

    engine = load_engine(config.model, config.adapter, config.runtime, config.decoding)
    return lambda audio: engine.transcribe(audio).segments


def whisper_ja_default_files(paths: Sequence[Path], model: str,
                             adapter: Path | None = None) -> list[str]:
    """``whisper-ja transcribe FILE... [--adapter A]``: every file's text (start-up included)."""
    try:
        from whisper_ja.commands.transcribe import TranscribeConfig, run
        from whisper_ja.inference.engine import load_engine  # noqa: F401 (the engine's tree)
    except ImportError:
        return _before_engine_files(paths, model, adapter)
    config = TranscribeConfig(audio=tuple(str(p) for p in paths), model=model,
                              adapter=str(adapter) if adapter else None, output_format="json")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # run() writes to stdout, as the command does
        failed = run(config)
    if failed:
        raise RuntimeError("whisper-ja transcribe failed on some file")
    texts = {json.loads(line)["audio"]: json.loads(line)["text"]
             for line in out.getvalue().splitlines()}
    return [texts[str(p)] for p in paths]


def whisper_ja_beams(model: str, beams: int) -> LongArm:
    """``whisper-ja transcribe --beams N``, otherwise the default (faster-whisper uses 5)."""
    from whisper_ja.commands.transcribe import TranscribeConfig
    from whisper_ja.inference.options import DecodingOptions

    config = TranscribeConfig(audio=("benchmark",), model=model,
                              decoding=DecodingOptions(beams=beams))
    return _engine_arm(config)


def whisper_ja_mode(model: str, ct2: Path, backend: str, mode: str) -> LongArm:
    """Another ``transcribe`` mode (``--backend ct2`` runs on the int8 export ``ct2``)."""
    try:
        from whisper_ja.commands.transcribe import TranscribeConfig
        from whisper_ja.inference.engine import load_engine  # noqa: F401 (the engine's tree)
        from whisper_ja.inference.options import (
            DecodingOptions,
            LongformOptions,
            RuntimeSettings,
        )
    except ImportError:
        return _before_engine_mode(model, ct2, backend, mode)
    config = TranscribeConfig(
        audio=("benchmark",), model=str(ct2) if backend == "ct2" else model,
        runtime=RuntimeSettings(backend=backend),  # type: ignore[arg-type]
        decoding=DecodingOptions(longform=LongformOptions(mode=mode)))  # type: ignore[arg-type]
    return _engine_arm(config)


# The front door before the engine (main at 6ebbbad): inference.transcribe's Transcriber.
# Those modules are gone from this tree, so they are looked up by name.
def _before(module: str) -> Any:
    return importlib.import_module(f"whisper_ja.inference.{module}")


def _before_engine(model: str, adapter: Path | None) -> LongArm:
    old = _before("transcribe")
    config = old.TranscribeConfig(audio=("benchmark",), model=model,
                                  adapter=str(adapter) if adapter else None)
    return old.load_transcriber(config).segments  # type: ignore[no-any-return]


def _before_engine_files(paths: Sequence[Path], model: str, adapter: Path | None) -> list[str]:
    old = _before("transcribe")
    config = old.TranscribeConfig(audio=tuple(str(p) for p in paths), model=model,
                                  adapter=str(adapter) if adapter else None)
    transcripts, errors = old.transcribe_files(config, progress=False)
    if errors:
        raise RuntimeError(f"whisper-ja failed on {len(errors)} files: {errors[0]}")
    return [t.text for t in transcripts]


def _before_engine_mode(model: str, ct2: Path, backend: str, mode: str) -> LongArm:
    old = _before("transcribe")
    config = old.TranscribeConfig(
        audio=("benchmark",), model=str(ct2) if backend == "ct2" else model, backend=backend,
        longform=_before("longform").LongformOptions(mode=mode))
    return old.load_transcriber(config).segments  # type: ignore[no-any-return]


def ct2_export(model: str, adapter: Path | None, root: Path, quantization: str = "int8",
               ) -> Path:
    """``whisper-ja export --to ct2 --quantization Q`` of the model (and adapter), cached."""
    from whisper_ja.export.writer import ExportConfig, export_model

    weights = adapter / "adapter_model.safetensors" if adapter else None
    tag = hashlib.sha1(f"{model}|{adapter}|{quantization}|".encode()
                       + (weights.read_bytes() if weights and weights.is_file() else b"")
                       ).hexdigest()[:12]
    out = root / f"ct2-{tag}"
    if not (out / "model.bin").is_file():
        export_model(ExportConfig(model=model, adapter=adapter, to="ct2", out=out,
                                  quantization=quantization))  # type: ignore[arg-type]
    return out


def faster_whisper_model(ct2: Path, threads: int = 2) -> Any:
    """faster-whisper's ``WhisperModel`` on a CTranslate2 folder, where whisper-ja would run.

    The device is ``transcribe``'s default (``auto``: a GPU when one is visible) and the
    compute type the int8 family it picks there (int8 on a CPU, int8_float16 on a GPU), so the
    two arms are timed on the same hardware at the same precision.
    """
    # Imported here: faster-whisper is optional for whisper-ja.
    from faster_whisper import WhisperModel

    device, compute_type = faster_whisper_placement()
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    return WhisperModel(str(ct2), device=device, compute_type=compute_type, cpu_threads=threads)


def faster_whisper_placement() -> tuple[str, str]:
    """``(device, compute type)`` of the faster-whisper arms (see :func:`faster_whisper_model`).

    Both come from ``transcribe``'s default runtime settings, by the engine's own rules.
    """
    from whisper_ja.inference.engine import ct2_compute_type
    from whisper_ja.inference.options import RuntimeSettings
    from whisper_ja.model.device import ct2_device

    runtime = RuntimeSettings()
    return ct2_device(runtime.device), ct2_compute_type(runtime)


def stock_faster_whisper(model: Any, beam_size: int = 1, vad: bool = True) -> FasterArm:
    """faster-whisper's own ``transcribe``: its defaults but Japanese, VAD on, ``beam_size``.

    Greedy (``beam_size=1``) by default: whisper-ja decodes greedily by default, so the
    comparison is like for like; faster-whisper's own default is 5 beams.
    """
    def transcribe(audio: np.ndarray | str) -> list[Any]:
        found, _ = model.transcribe(audio, language="ja", task="transcribe",
                                    beam_size=beam_size, vad_filter=vad)
        return list(found)

    return transcribe
