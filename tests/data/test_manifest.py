"""The manifest record: round trip, validation naming file and line, relative paths."""

from __future__ import annotations

import json

import pytest

from whisper_ja.data.manifest import ManifestError, Utterance, read_manifest, write_manifest


def _utt(i: int, folder, **kw) -> Utterance:
    fields = dict(id=f"c/{i}", audio=str(folder / f"{i}.wav"), text="今日は晴れ。",
                  duration=1.5, corpus="c")
    fields.update(kw)
    return Utterance(**fields)


def test_roundtrip_keeps_japanese_and_relative_audio(tmp_path):
    utts = [_utt(i, tmp_path / "wav", speaker="jf_alpha", extra={"tatoeba_id": 4})
            for i in range(3)]
    path = tmp_path / "m.jsonl"
    assert write_manifest(path, utts) == 3
    line = path.read_text(encoding="utf-8").splitlines()[0]
    assert "今日は" in line and json.loads(line)["audio"] == "wav/0.wav"
    back = read_manifest(path)
    assert [u.id for u in back] == ["c/0", "c/1", "c/2"]
    assert back[0].audio == str(tmp_path / "wav" / "0.wav")
    assert back[0].extra == {"tatoeba_id": 4}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"id": "a", "audio": "x.wav", "text": "t", "corpus": "c"}', "missing field"),
        ('{"id": "a", "audio": "x.wav", "text": "t", "duration": -1, "corpus": "c"}',
         "duration"),
        ('{"id": "a", "audio": "x.wav", "text": "t", "duration": 1, "corpus": "c", "x": 1}',
         "unknown field"),
        ('{"id": "a", "audio": "x.wav", "text": "t", "duration": 1, "corpus": "c", '
         '"split": "dev"}', "split"),
    ],
)
def test_bad_line_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    good = _utt(0, tmp_path).to_json()
    path.write_text(good + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=rf"bad\.jsonl:2: .*{message}"):
        read_manifest(path)


def test_duplicate_ids_rejected_within_and_across_files(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_manifest(a, [_utt(0, tmp_path), _utt(0, tmp_path)])
    with pytest.raises(ManifestError, match="duplicate id"):
        read_manifest(a)
    write_manifest(a, [_utt(0, tmp_path)])
    write_manifest(b, [_utt(0, tmp_path)])
    with pytest.raises(ManifestError, match="also in"):
        read_manifest(a, b)


def test_relative_audio_paths_are_taken_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus" / "wav").mkdir(parents=True)
    write_manifest("corpus/m.jsonl", [_utt(0, tmp_path, audio="corpus/wav/0.wav"),
                                      _utt(1, tmp_path, audio="elsewhere/1.wav")])
    back = read_manifest(tmp_path / "corpus" / "m.jsonl")
    assert back[0].audio == str(tmp_path / "corpus" / "wav" / "0.wav")
    assert back[1].audio == str(tmp_path / "elsewhere" / "1.wav")


def test_language_and_synthetic_are_read_from_the_record(tmp_path):
    plain = _utt(0, tmp_path)
    english = _utt(1, tmp_path, corpus="synthetic-espeak", extra={"language": "en"})
    flagged = _utt(2, tmp_path, extra={"synthetic": True})
    assert plain.language() == "ja" and plain.language(default="en") == "en"
    assert english.language() == english.language(default="ja") == "en"
    assert [u.is_synthetic for u in (plain, english, flagged)] == [False, True, True]
    assert _utt(3, tmp_path, corpus="synthetic").is_synthetic
