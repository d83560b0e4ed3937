"""Items a job leaves out: every one counted by its reason, the first few named.

Nothing is lost silently. A job that skips a clip (missing audio, no transcript, a failed
label) counts it under its reason and names the first :data:`NAMED_KEPT` in its report, so the
user can find them without the report growing with the corpus.
"""

from __future__ import annotations

from collections import Counter

__all__ = ["NAMED_KEPT", "note_skip"]

NAMED_KEPT = 20
"""Skipped items named in a report (all are counted)."""


def note_skip(counts: Counter[str], named: list[str], reason: str, where: str) -> None:
    """Count one skipped item under ``reason``; name it (``reason: where``) while room is left."""
    counts[reason] += 1
    if len(named) < NAMED_KEPT:
        named.append(f"{reason}: {where}")
