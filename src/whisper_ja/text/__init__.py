"""Japanese text normalization and metrics (CER, WER, reading CER, bootstrap).

Quick use::

    from whisper_ja.text import cer, normalize, paired_bootstrap
    cer(refs, hyps).rate                       # corpus-level CER, default normalizer
    cer(refs, hyps, normalizer="kotoba").rate  # kotoba-whisper's convention
    paired_bootstrap(refs, hyps_a, hyps_b)     # is b really better than a?

Heavy readers (fugashi, pyopenjtalk) are imported on first use only.
"""

from whisper_ja.text.bootstrap import (
    BootstrapResult,
    IntervalResult,
    metric_interval,
    paired_bootstrap,
)
from whisper_ja.text.metrics import (
    ErrorCounts,
    cer,
    mean_rate,
    reading_cer,
    utterance_counts,
    utterance_scores,
    wer,
)
from whisper_ja.text.normalize import NORMALIZERS, Normalizer, get_normalizer, normalize
from whisper_ja.text.reading import to_reading

__all__ = [
    "NORMALIZERS",
    "BootstrapResult",
    "ErrorCounts",
    "IntervalResult",
    "Normalizer",
    "cer",
    "get_normalizer",
    "mean_rate",
    "metric_interval",
    "normalize",
    "paired_bootstrap",
    "reading_cer",
    "to_reading",
    "utterance_counts",
    "utterance_scores",
    "wer",
]
