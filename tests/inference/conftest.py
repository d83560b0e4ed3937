"""Fixtures of the inference tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_ct2(tmp_path_factory: pytest.TempPathFactory, tiny_whisper_dir: Path) -> Path:
    """An int8 CTranslate2 export of the tiny random Whisper (read-only: copy to change it)."""
    # Imported here, not at the top: the export pulls in CTranslate2's converter.
    from whisper_ja.export.writer import ExportConfig, export_model

    out = tmp_path_factory.mktemp("ct2") / "ct2-int8"
    export_model(ExportConfig(model=str(tiny_whisper_dir), to="ct2", out=out,
                              quantization="int8"))
    return out
