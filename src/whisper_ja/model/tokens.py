"""Whisper special-token ids that whisper-ja relies on (multilingual vocabulary, 51865 ids)."""

SOT_ID = 50258
"""``<|startoftranscript|>``."""
JA_ID = 50266
"""``<|ja|>``: the Japanese language token."""
TRANSCRIBE_ID = 50359
"""``<|transcribe|>`` (as opposed to ``<|translate|>`` = 50358)."""
NO_TIMESTAMPS_ID = 50363
"""``<|notimestamps|>``."""
EOT_ID = 50257
"""``<|endoftext|>``: ends every label sequence."""

JA_PREFIX_IDS: tuple[int, ...] = (SOT_ID, JA_ID, TRANSCRIBE_ID, NO_TIMESTAMPS_ID)
"""Every Japanese label and decoder prompt starts with these four ids."""

__all__ = ["EOT_ID", "JA_ID", "JA_PREFIX_IDS", "NO_TIMESTAMPS_ID", "SOT_ID", "TRANSCRIBE_ID"]
