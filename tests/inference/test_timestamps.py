"""Parsing one decoded window's timestamp tokens into segments."""

from __future__ import annotations

from tests.inference.fake_backend import EOT, VOCABULARY, ts
from whisper_ja.inference.timestamps import parse_window


def _parse(ids, seconds=10.0, keep_open=False):
    return parse_window(ids, VOCABULARY.timestamps, EOT, seconds, keep_open=keep_open)


def test_closed_segments_and_the_whole_window_consumed():
    parsed = _parse([ts(0.0), 1, 2, ts(2.0), ts(2.5), 3, ts(4.0)])
    assert [(s, e) for s, e, _ in parsed.segments] == [(0.0, 2.0), (2.5, 4.0)]
    assert parsed.seek == 10.0 and parsed.well_formed


def test_open_text_seeks_back_unless_kept():
    ids = [ts(0.0), 1, ts(2.0), ts(3.0), 2, 3]
    assert _parse(ids).seek == 3.0 and len(_parse(ids).segments) == 1
    kept = _parse(ids, keep_open=True)
    assert [(s, e) for s, e, _ in kept.segments] == [(0.0, 2.0), (3.0, 10.0)]


def test_a_piece_whose_times_collapse_starts_where_the_text_before_it_ended():
    # an 8 s window: the second piece's times (9 s, 9.5 s) are both held to its end
    parsed = _parse([ts(0.0), 1, ts(2.0), ts(9.0), 2, ts(9.5)], seconds=8.0)
    assert [(s, e) for s, e, _ in parsed.segments] == [(0.0, 2.0), (2.0, 8.0)]
