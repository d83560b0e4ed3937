"""whisper-ja: adapt multilingual Whisper to Japanese speech recognition, measurably.

The pipeline is prepare corpora → train (LoRA or full) → evaluate → transcribe / export;
each step is a module here and a ``whisper-ja`` subcommand (see :mod:`whisper_ja.cli`).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
