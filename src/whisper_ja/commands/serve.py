"""``whisper-ja serve``: its settings and ``run()``."""

from __future__ import annotations

from whisper_ja.serve.app import create_app
from whisper_ja.serve.engine import load_engine
from whisper_ja.serve.server import run_server
from whisper_ja.serve.settings import ServeConfig

__all__ = ["Settings", "run"]

Settings = ServeConfig
"""The settings of ``whisper-ja serve`` (flags and YAML keys)."""


def run(config: ServeConfig) -> int:
    """Load the model, then serve the API and the page until Ctrl-C; returns 0."""
    app = create_app(config, load_engine(config))
    run_server(app, config.host, config.port, open_path="/" if config.open else None)
    return 0
