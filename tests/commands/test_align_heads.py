"""align-heads: scores a model's heads on clips with sentence starts and writes the best."""

from __future__ import annotations

import json
import shutil

import numpy as np
import soundfile as sf

from whisper_ja.cli import main
from whisper_ja.data.manifest import Utterance, write_manifest
from whisper_ja.data.timestamps import TimedText


def test_align_heads_writes_the_chosen_heads(tiny_whisper_dir, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_whisper_dir, model)
    rng = np.random.default_rng(0)
    utts = []
    for k in range(2):
        path = tmp_path / f"c{k}.wav"
        sf.write(path, (0.1 * rng.standard_normal(3 * 16000)).astype(np.float32), 16000)
        utts.append(Utterance(f"c{k}", str(path), "一つ目。二つ目。", 3.0, "synthetic",
                              segments=(TimedText(0.2, 1.2, "一つ目。"),
                                        TimedText(1.6, 2.8, "二つ目。"))))
    write_manifest(tmp_path / "m.jsonl", utts)
    code = main(["align-heads", str(tmp_path / "m.jsonl"), "--model", str(model),
                 "--count", "3"])
    out = capsys.readouterr().out
    assert code == 0 and "sentence-start error over 2 clips" in out
    heads = json.loads((model / "generation_config.json").read_text("utf-8"))["alignment_heads"]
    assert len(heads) == 3 and all(0 <= layer < 4 and 0 <= head < 6 for layer, head in heads)
