"""Plots: the retention figure's rows (the other plots are checked in test_report/test_demo)."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

from tests.evaluation.png import assert_drawn_png
from whisper_ja.evaluation.plots import _retention_rows, plot_retention


def _lang(forced: float, identified: float, lid: float) -> dict:
    return {"wer_forced": [forced, forced - 0.05, forced + 0.05],
            "wer_identified": [identified, identified - 0.05, identified + 0.1],
            "lid_accuracy": lid}


REPORT = {
    "synthetic": True,
    "models": [{"model": "base", "languages": {"en": _lang(0.14, 0.14, 1.0)}},
               {"model": "base + mix", "languages": {"en": _lang(0.04, 0.04, 1.0)}}],
    "comparison": {"model": "base + nomix", "report": "runs/nomix", "changes": {"en": {
        "wer_forced": {"before": 0.31}, "wer_identified": {"before": 0.67},
        "lid_accuracy": {"before": 0.025}}}},
}


def test_retention_rows_put_the_compared_run_between_before_and_after():
    rows = _retention_rows(REPORT, "en")
    assert [r[0] for r in rows] == ["base", "base + nomix (compared run)", "base + mix"]
    assert rows[1][1] == [0.31, 0.67, 0.025] and rows[1][2] is None  # no intervals stored
    assert rows[0][2] == [[pytest.approx(0.05), pytest.approx(0.05), 0.0],
                          [pytest.approx(0.05), pytest.approx(0.1), 0.0]]
    assert [r[0] for r in _retention_rows({**REPORT, "comparison": None}, "en")] == \
        ["base", "base + mix"]


def test_plot_retention_writes_a_png(tmp_path):
    assert plot_retention(REPORT, tmp_path) == ["retention.png"]
    assert_drawn_png(tmp_path / "retention.png")
    # Other numbers give another picture.
    changed = {**REPORT, "models": [REPORT["models"][0],
                                    {"model": "base + mix", "languages": {"en": _lang(
                                        0.5, 0.6, 0.2)}}]}
    (tmp_path / "changed").mkdir()
    plot_retention(changed, tmp_path / "changed")
    assert not np.array_equal(imread(tmp_path / "retention.png"),
                              imread(tmp_path / "changed" / "retention.png"))
