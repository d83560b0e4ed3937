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
    interval_from_counts,
    metric_interval,
    paired_bootstrap,
    paired_bootstrap_counts,
)
from whisper_ja.text.metrics import (
    METRICS,
    ErrorCounts,
    cer,
    char_counts,
    mean_rate,
    reading_cer,
    utterance_counts,
    utterance_scores,
    wer,
    word_counts,
)
from whisper_ja.text.normalize import NORMALIZERS, Normalizer, get_normalizer, normalize
from whisper_ja.text.reading import to_reading
from whisper_ja.text.terms import Term, TermFileError, TermRecall, load_terms, term_recall

__all__ = [
    "METRICS",
    "NORMALIZERS",
    "BootstrapResult",
    "ErrorCounts",
    "IntervalResult",
    "Normalizer",
    "Term",
    "TermFileError",
    "TermRecall",
    "cer",
    "char_counts",
    "get_normalizer",
    "interval_from_counts",
    "load_terms",
    "mean_rate",
    "metric_interval",
    "normalize",
    "paired_bootstrap",
    "paired_bootstrap_counts",
    "reading_cer",
    "term_recall",
    "to_reading",
    "utterance_counts",
    "utterance_scores",
    "wer",
    "word_counts",
]
