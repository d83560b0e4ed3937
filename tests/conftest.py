"""Fixtures shared by the whole test suite.

- ``tiny_whisper``: a randomly initialised tiny-shaped Whisper with the real tokenizer (seconds).
- ``tiny_whisper_dir``: the same model saved as a transformers folder (treat it as read-only).
- ``tiny_ct2``: its int8 CTranslate2 export (read-only).
- ``whisper_base``: real offline whisper-base (converted once, cached across runs in
  ``WHISPER_JA_CACHE`` or ``~/.cache/whisper-ja``).
- ``ja_clips``: a few Japanese sentences synthesized with Open JTalk at test time.
- ``clips_manifest``: those clips as a training manifest (corpus ``synthetic``).
- ``mini_whisper``: a miniature Whisper saved by transformers and converted by CTranslate2.
- ``tokenizer_cache``: cache root where the large-v3 tokenizer is built once per session.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

# Under pytest-xdist every worker would start as many threads as there are cores: two workers
# with two torch (OpenMP) threads each on two cores made model-heavy tests 3-6x slower than
# alone. Each worker, and every process it starts (CLI subprocesses, DDP ranks), gets its share.
# Set before torch is imported so OpenMP reads it.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from accelerate.state import AcceleratorState, GradientState  # noqa: E402

if _WORKERS > 1:  # in case a plugin imported torch first
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """Accelerate's process-wide state reset after every test.

    ``AcceleratorState`` is a singleton: after a training test on a CPU with AVX512-bf16
    (``precision: auto`` -> bf16), a later bare ``Accelerator(cpu=True)`` in the same worker
    inherited bf16 autocast, and fp32 gradient checks failed by bf16 rounding.
    """
    yield
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


@pytest.fixture(scope="session")
def tiny_whisper():
    from whisper_ja.model import tiny_random_whisper

    return tiny_random_whisper(seed=0)


@pytest.fixture(scope="session")
def tokenizer_cache(tmp_path_factory) -> Path:
    """The large-v3 tokenizer (built from the openai-whisper sdist) is built once, here."""
    return tmp_path_factory.mktemp("tokenizer_cache")


@pytest.fixture(scope="session")
def tiny_whisper_dir(tiny_whisper, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_whisper")
    tiny_whisper.model.save_pretrained(folder)
    tiny_whisper.processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_ct2(tmp_path_factory: pytest.TempPathFactory, tiny_whisper_dir: Path) -> Path:
    """An int8 CTranslate2 export of the tiny random Whisper (read-only: copy to change it)."""
    # Imported here, not at the top: the export pulls in CTranslate2's converter.
    from whisper_ja.export.writer import ExportConfig, export_model

    out = tmp_path_factory.mktemp("ct2") / "ct2-int8"
    export_model(ExportConfig(model=str(tiny_whisper_dir), to="ct2", out=out,
                              quantization="int8"))
    return out


@pytest.fixture(scope="session")
def whisper_base():
    from whisper_ja.model import load_model

    return load_model("openai/whisper-base")


@dataclass(frozen=True)
class Clip:
    path: Path
    text: str
    audio: np.ndarray  # float32, mono
    sample_rate: int


JA_SENTENCES = (
    "今日はとても良い天気です。",
    "私は毎朝コーヒーを飲みます。",
    "駅までの道を教えてください。",
    "この本はとても面白かった。",
)


@pytest.fixture(scope="session")
def ja_clips(tmp_path_factory) -> list[Clip]:
    import pyopenjtalk
    import soundfile as sf

    folder = tmp_path_factory.mktemp("ja_clips")
    clips = []
    for i, text in enumerate(JA_SENTENCES):
        wave, rate = pyopenjtalk.tts(text)
        audio = (np.asarray(wave, dtype=np.float64) / 32768.0).astype(np.float32)
        path = folder / f"clip{i}.wav"
        sf.write(path, audio, rate)
        clips.append(Clip(path=path, text=text, audio=audio, sample_rate=int(rate)))
    return clips


@pytest.fixture(scope="session")
def clips_manifest(ja_clips, tmp_path_factory) -> Path:
    from whisper_ja.data.manifest import Utterance, write_manifest

    path = tmp_path_factory.mktemp("manifest") / "train.jsonl"
    write_manifest(path, [Utterance(f"clip{i}", str(c.path), c.text,
                                    len(c.audio) / c.sample_rate, "synthetic")
                          for i, c in enumerate(ja_clips)])
    return path


@dataclass(frozen=True)
class MiniWhisper:
    model: object  # the original transformers model
    hf_dir: Path  # saved by transformers (model + processor)
    ct2_float32: Path  # converted by CTranslate2's own converter
    ct2_int8: Path


@pytest.fixture(scope="session")
def mini_whisper(tmp_path_factory) -> MiniWhisper:
    """A 2+2-layer d_model-64 Whisper with the real vocabulary, converted by CTranslate2."""
    import ctranslate2
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from whisper_ja.model.loading import _tokenizer_json
    from whisper_ja.model.processor import build_generation_config, processor_from_tokenizer_json
    from whisper_ja.model.tokens import special_tokens

    root = tmp_path_factory.mktemp("mini_whisper")
    processor = processor_from_tokenizer_json(_tokenizer_json(), num_mel_bins=80,
                                              vocab_size=51865)
    specials = special_tokens(processor.tokenizer)
    config = WhisperConfig(
        vocab_size=specials.vocab_size, d_model=64, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
        decoder_ffn_dim=128, decoder_start_token_id=specials.sot, bos_token_id=specials.eot,
        eos_token_id=specials.eot, pad_token_id=specials.eot,
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    with torch.no_grad():  # random biases everywhere, so that a dropped or swapped bias shows
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.normal_(0.0, 0.05)
    model.generation_config = build_generation_config(processor.tokenizer)
    model.eval()
    hf_dir = root / "hf"
    model.save_pretrained(hf_dir)
    processor.save_pretrained(hf_dir)
    out = {}
    for quantization in ("float32", "int8"):
        target = root / f"ct2_{quantization}"
        ctranslate2.converters.TransformersConverter(str(hf_dir)).convert(
            str(target), quantization=quantization, force=True)
        # CTranslate2's converter keeps only the vocabulary; faster-whisper folders ship
        # tokenizer.json beside it, as the offline wheels do.
        shutil.copy(_tokenizer_json(), target / "tokenizer.json")
        out[quantization] = target
    return MiniWhisper(model=model, hf_dir=hf_dir, ct2_float32=out["float32"],
                       ct2_int8=out["int8"])
