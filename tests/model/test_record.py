"""``whisper_ja.json``: one module reads and writes it; a malformed one is one named error."""

from __future__ import annotations

import pytest

from whisper_ja.audio.features import ContextPolicy
from whisper_ja.cli import main
from whisper_ja.errors import ModelError
from whisper_ja.model.record import ModelRecord, read_record, recorded_policy, write_record


def test_a_record_reads_back_as_written(tmp_path):
    policy = ContextPolicy(dynamic=True, bucket_frames=200, min_frames=1000)
    write_record(tmp_path, ModelRecord(policy=policy, base_model="openai/whisper-base",
                                       mode="lora", extra={"teacher": "t"}))
    record = read_record(tmp_path)
    assert record == ModelRecord(policy, "openai/whisper-base", "lora", {"teacher": "t"})
    assert recorded_policy(tmp_path) == policy


def test_no_record_is_a_stock_model(tmp_path):
    assert read_record(tmp_path) is None and recorded_policy(tmp_path) is None


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", '{"context": 5}',
                                  '{"context": {"min_frames": 7}}',
                                  '{"context": {"flavour": 1}}'])
def test_a_malformed_record_is_named(tmp_path, body):
    (tmp_path / "whisper_ja.json").write_text(body)
    with pytest.raises(ModelError, match=r"whisper_ja.json: not a whisper-ja model record"):
        read_record(tmp_path)


def test_a_malformed_record_is_one_line_in_evaluate(tmp_path, capsys):
    adapter = tmp_path / "run"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"base_model_name_or_path": "x"}')
    (adapter / "whisper_ja.json").write_text("{broken")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"id": "a", "audio": "a.wav", "text": "あ", "duration": 1.0, '
                        '"corpus": "c"}\n')
    code = main(["evaluate", "--model", str(adapter), "--manifest", str(manifest),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("whisper-ja evaluate: ") and "whisper_ja.json" in err[-1]
