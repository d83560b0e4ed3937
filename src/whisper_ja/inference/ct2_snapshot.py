"""A CTranslate2 copy of a model in memory, to decode it now (the versatility gate's backend).

During training the gate judges every candidate checkpoint on its check sets. Decoding them
with CTranslate2 (:mod:`whisper_ja.inference.ct2_clips`) is ~2x faster than transformers on a
CPU at float32 (benchmarks/decode_speed.py), and is how the model will be deployed. Exporting
the live model costs a few seconds: LoRA merged into a copy (the model keeps training), saved,
converted by CTranslate2's converter, the context policy recorded.
"""

from __future__ import annotations

import contextlib
import copy
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from whisper_ja.audio.features import ContextPolicy
from whisper_ja.inference.faster import convert_ct2, load_faster_whisper
from whisper_ja.model.record import ModelRecord, write_record
from whisper_ja.model.saving import save_hf

__all__ = ["ct2_snapshot", "plain_copy"]


def plain_copy(model: Any) -> Any:
    """A plain Whisper with the model's weights: a peft model's adapters merged into a copy."""
    if hasattr(model, "peft_config"):
        # A copy, not merge/unmerge in place: the live adapter stays exactly as trained.
        return copy.deepcopy(model).merge_and_unload()
    return model


@contextlib.contextmanager
def ct2_snapshot(model: Any, processor: Any, policy: ContextPolicy,
                 quantization: str | None = None) -> Iterator[Path]:
    """A temporary CTranslate2 export of ``model`` as it is now; removed on exit.

    Args:
        model: A Whisper model, plain or peft-wrapped (not changed).
        processor: Its processor.
        policy: The context policy it runs with (recorded, so the ct2 path decodes at it).
        quantization: CTranslate2 weight type; None keeps float32.

    Yields:
        The export's folder.
    """
    with tempfile.TemporaryDirectory(prefix="whisper-ja-snapshot-") as work:
        hf, out = Path(work) / "hf", Path(work) / "ct2"
        save_hf(plain_copy(model), processor, hf)
        convert_ct2(hf, out, quantization)
        write_record(out, ModelRecord(policy=policy))
        try:
            yield out
        finally:
            # The loader caches by folder; a snapshot's folder is gone after this, so its
            # model must not stay cached (nor hold its memory).
            load_faster_whisper.cache_clear()
