"""``whisper-ja explore``: its settings and ``run()``."""

from __future__ import annotations

from whisper_ja.serve.explore import ExplorerData, explore_app
from whisper_ja.serve.server import run_server
from whisper_ja.serve.settings import ExploreConfig

__all__ = ["Settings", "run"]

Settings = ExploreConfig
"""The settings of ``whisper-ja explore`` (flags and YAML keys)."""


def run(config: ExploreConfig) -> int:
    """Serve the explorer of one or two evaluate folders until Ctrl-C; returns 0."""
    app = explore_app(ExplorerData.load(config.runs))
    run_server(app, config.host, config.port, open_path="/explore" if config.open else None)
    return 0
