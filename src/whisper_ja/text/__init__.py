"""Japanese text normalization and metrics (CER, WER, reading CER, bootstrap)."""
