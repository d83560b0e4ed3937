"""Skipped items: all counted by reason, the first few named."""

from __future__ import annotations

from collections import Counter

from whisper_ja.data.skips import NAMED_KEPT, note_skip


def test_every_skip_is_counted_and_only_the_first_are_named():
    counts: Counter[str] = Counter()
    named: list[str] = []
    for k in range(NAMED_KEPT + 5):
        note_skip(counts, named, "missing audio", f"clip-{k}.wav")
    note_skip(counts, named, "no transcript", "row 7")
    assert counts == {"missing audio": NAMED_KEPT + 5, "no transcript": 1}
    assert len(named) == NAMED_KEPT
    assert named[0] == "missing audio: clip-0.wav"
