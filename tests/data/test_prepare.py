"""Each corpus layout, built small in its real on-disk form, through ``prepare``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from whisper_ja.cli import main
from whisper_ja.data.manifest import read_manifest
from whisper_ja.data.prepare import PrepareConfig, PrepareError, prepare


def tone(path: Path, seconds: float, rate: int = 16000, freq: float = 220.0) -> Path:
    """A sine wave file (format from the suffix: wav, flac, mp3)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)
    return path


def run(corpus: str, source: Path | str, out: Path, **settings) -> tuple[list, dict]:
    config = PrepareConfig(corpus=corpus, source=str(source), out=out, progress=False, **settings)
    manifest, report = prepare(config)
    saved = json.loads((out / "prepare_report.json").read_text(encoding="utf-8"))
    assert saved["kept"] == report["kept"] == len(read_manifest(manifest))
    return read_manifest(manifest), report


# --- JSUT -------------------------------------------------------------------------------------

def make_jsut(root: Path) -> Path:
    base = root / "jsut_ver1.1"
    (base / "basic5000" / "transcript_utf8.txt").parent.mkdir(parents=True)
    (base / "basic5000" / "transcript_utf8.txt").write_text(
        "BASIC5000_0001:水をマレーシアから買わなくてはならないのです。\n"
        "BASIC5000_0002:木曜日、停戦会談は、何の進展もないまま終了しました。\n"
        "BASIC5000_0003:上院議員は私がデータをゆがめたと告発した。\n", encoding="utf-8")
    tone(base / "basic5000" / "wav" / "BASIC5000_0001.wav", 2.0, rate=48000)
    tone(base / "basic5000" / "wav" / "BASIC5000_0002.wav", 3.5, rate=48000)
    # BASIC5000_0003.wav is missing on purpose.
    (base / "travel1000").mkdir()
    (base / "travel1000" / "transcript_utf8.txt").write_text(
        "TRAVEL1000_0001:あの船は何時に出ますか？\n", encoding="utf-8")
    tone(base / "travel1000" / "wav" / "TRAVEL1000_0001.wav", 1.5, rate=48000)
    return root


def test_jsut(tmp_path):
    src = make_jsut(tmp_path / "src")
    utts, report = run("jsut", src, tmp_path / "out")
    by_id = {u.id: u for u in utts}
    assert set(by_id) == {"jsut/BASIC5000_0001", "jsut/BASIC5000_0002", "jsut/TRAVEL1000_0001"}
    assert by_id["jsut/BASIC5000_0002"].text.startswith("木曜日、停戦会談は、")
    assert by_id["jsut/BASIC5000_0002"].duration == pytest.approx(3.5)
    assert by_id["jsut/TRAVEL1000_0001"].extra["subset"] == "travel1000"
    assert {u.speaker for u in utts} == {"jsut"} and {u.corpus for u in utts} == {"jsut"}
    assert report["skipped"] == {"missing_audio": 1}
    assert "BASIC5000_0003.wav" in report["examples"]["missing_audio"][0]
    assert "transcript_utf8.txt:3" in report["examples"]["missing_audio"][0]
    only, _ = run("jsut", src / "jsut_ver1.1", tmp_path / "out2", subsets=("travel1000",))
    assert [u.id for u in only] == ["jsut/TRAVEL1000_0001"]


def test_jsut_non_utf8_line_is_named(tmp_path):
    src = make_jsut(tmp_path / "src")
    transcript = src / "jsut_ver1.1" / "travel1000" / "transcript_utf8.txt"
    transcript.write_bytes(b"TRAVEL1000_0001:" + "船は何時に出ますか".encode("shift_jis") + b"\n")
    with pytest.raises(PrepareError, match=r"transcript_utf8.txt:1: transcript is not valid UTF-8"):
        run("jsut", src, tmp_path / "out")
    _, report = run("jsut", src, tmp_path / "out", bad_encoding="skip", missing_audio="skip")
    assert report["skipped"] == {"missing_audio": 1, "bad_encoding": 1}


# --- Common Voice -----------------------------------------------------------------------------

CV_HEADER = ("client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tlocale"
             "\tsegment\n")


def cv_row(client: str, clip: str, sentence: str) -> str:
    return f"{client}\t{clip}\t{sentence}\t2\t0\ttwenties\tfemale\t\tja\t\n"


def make_cv(root: Path) -> Path:
    ja = root / "cv-corpus-17.0" / "ja"
    rows = {
        "train": [cv_row("spk1", "common_voice_ja_1.mp3", "「はい」と彼は言った。"),
                  cv_row("spk2", "common_voice_ja_2.mp3", "今日は晴れです。")],
        "dev": [cv_row("spk3", "common_voice_ja_3.mp3", "明日は雨でしょう。")],
        "test": [cv_row("spk4", "common_voice_ja_4.mp3", "   ")],
    }
    rows["validated"] = [*rows["train"], *rows["dev"], *rows["test"],
                         cv_row("spk1", "common_voice_ja_5.mp3", "追加の文です。")]
    for name, lines in rows.items():
        ja.mkdir(parents=True, exist_ok=True)
        (ja / f"{name}.tsv").write_text(CV_HEADER + "".join(lines), encoding="utf-8")
    for i, seconds in enumerate((1.0, 2.0, 1.5, 1.2, 2.5), start=1):
        tone(ja / "clips" / f"common_voice_ja_{i}.mp3", seconds, rate=48000)
    return root / "cv-corpus-17.0"


def test_common_voice(tmp_path):
    src = make_cv(tmp_path / "src")
    utts, report = run("common-voice", src, tmp_path / "out")
    by_id = {u.id: u for u in utts}
    assert set(by_id) == {f"common-voice/common_voice_ja_{i}" for i in (1, 2, 3)}
    assert by_id["common-voice/common_voice_ja_1"].text == "「はい」と彼は言った。"
    assert by_id["common-voice/common_voice_ja_1"].speaker == "spk1"
    assert by_id["common-voice/common_voice_ja_3"].extra["official_split"] == "validation"
    assert by_id["common-voice/common_voice_ja_2"].duration == pytest.approx(2.0, abs=0.06)
    assert report["skipped"] == {"empty_text": 1}
    utts, report = run("common-voice", src / "ja", tmp_path / "out2",
                       splits=("train", "validated"))
    assert len(utts) == 4  # train 2 + validated's new clip; the test clip has empty text
    assert report["notes"] == {"listed_again_in_validated": 2}
    assert report["skipped"] == {"empty_text": 1}


# --- FLEURS -----------------------------------------------------------------------------------

def fleurs_row(sid: int, name: str, text: str, samples: int) -> str:
    return f"{sid}\t{name}\t{text}\t{text.lower()}\tp h o n e s\t{samples}\tFEMALE\n"


def test_fleurs_local_copy(tmp_path):
    root = tmp_path / "src" / "ja_jp"
    splits = {"train": [(7, "100.wav", "東京は日本の首都です。", 2.0),
                        (7, "101.wav", "東京は日本の首都です。", 2.2),
                        (8, "102.wav", "長すぎる録音です。", 31.0)],
              "dev": [(9, "200.wav", "川が流れている。", 1.0)],
              "test": [(10, "300.wav", "山に登りました。", 1.5)]}
    for split, rows in splits.items():
        root.mkdir(parents=True, exist_ok=True)
        (root / f"{split}.tsv").write_text(
            "".join(fleurs_row(s, n, t, int(d * 16000)) for s, n, t, d in rows), encoding="utf-8")
        for _, name, _, seconds in rows:
            tone(root / "audio" / split / name, seconds)
    utts, report = run("fleurs", tmp_path / "src", tmp_path / "out")
    by_id = {u.id: u for u in utts}
    assert set(by_id) == {"fleurs/100", "fleurs/101", "fleurs/200", "fleurs/300"}
    assert by_id["fleurs/101"].extra["sentence_id"] == "7"
    assert by_id["fleurs/200"].extra["official_split"] == "validation"
    assert by_id["fleurs/300"].duration == pytest.approx(1.5)
    assert report["skipped"] == {"too_long": 1}
    assert "31.0 s" in report["examples"]["too_long"][0]
    assert report["official_splits"] == {"train": 2, "validation": 1, "test": 1}


def test_fleurs_through_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    parts = {}
    for split, n in (("train", 3), ("validation", 1), ("test", 2)):
        files = [str(tone(tmp_path / "raw" / split / f"{split}{i}.wav", 1.0 + i)) for i in range(n)]
        parts[split] = datasets.Dataset.from_dict({
            "id": list(range(n)), "num_samples": [16000] * n, "path": files, "audio": files,
            "transcription": [f"{split} 文 {i}" for i in range(n)],
            "raw_transcription": [f"{split}の文{i}。" for i in range(n)],
            "gender": [1] * n,
        }).cast_column("audio", datasets.Audio(sampling_rate=16000))
    datasets.DatasetDict(parts).save_to_disk(str(tmp_path / "saved"))
    for raw in (tmp_path / "raw").rglob("*.wav"):
        raw.unlink()  # prepare must rely on the audio bytes inside the saved dataset
    utts, report = run("fleurs", tmp_path / "saved", tmp_path / "out")
    assert len(utts) == 6 and report["skipped_total"] == 0
    by_id = {u.id: u for u in utts}
    assert by_id["fleurs/train2"].text == "trainの文2。"
    assert by_id["fleurs/train2"].duration == pytest.approx(3.0)
    assert by_id["fleurs/test1"].extra["official_split"] == "test"
    assert Path(by_id["fleurs/train2"].audio).is_relative_to((tmp_path / "out").resolve())


# --- ReazonSpeech -----------------------------------------------------------------------------

def test_reazonspeech_local_and_saved(tmp_path):
    src = tmp_path / "src"
    (src / "tsv").mkdir(parents=True)
    (src / "tsv" / "tiny.tsv").write_text(
        "000/0001.flac\tテレビの音声です\n000/0002.flac\tニュースをお伝えします\n",
        encoding="utf-8")
    tone(src / "data" / "000" / "0001.flac", 1.0)
    tone(src / "data" / "000" / "0002.flac", 2.0)
    utts, _ = run("reazonspeech", src, tmp_path / "out")
    assert [(u.id, u.text) for u in utts] == [("reazonspeech/000/0001", "テレビの音声です"),
                                               ("reazonspeech/000/0002", "ニュースをお伝えします")]
    assert utts[1].duration == pytest.approx(2.0)
    datasets = pytest.importorskip("datasets")
    files = [str(src / "data" / "000" / f"000{i}.flac") for i in (1, 2)]
    ds = datasets.Dataset.from_dict({"name": ["000/0001.flac", "000/0002.flac"], "audio": files,
                                     "transcription": ["テレビの音声です", ""]})
    ds.cast_column("audio", datasets.Audio()).save_to_disk(str(tmp_path / "saved"))
    utts, report = run("reazonspeech", tmp_path / "saved", tmp_path / "out2")
    assert [u.id for u in utts] == ["reazonspeech/000/0001"]
    assert report["skipped"] == {"empty_text": 1}
    with pytest.raises(ValueError, match="subsets"):
        run("reazonspeech", src, tmp_path / "out3", subsets=("huge",))


# --- folder and table -------------------------------------------------------------------------

def test_folder(tmp_path):
    src = tmp_path / "src"
    tone(src / "spk1" / "a.wav", 1.0)
    (src / "spk1" / "a.txt").write_text("こんにちは\n", encoding="utf-8")
    tone(src / "spk2" / "b.flac", 2.0)
    (src / "spk2" / "b.txt").write_text("  \n", encoding="utf-8")  # whitespace only
    tone(src / "c.wav", 1.0)  # no transcript
    (src / "d.txt").write_text("音声なし", encoding="utf-8")  # no audio
    (src / "e.wav").write_bytes(b"not audio at all")
    (src / "e.txt").write_text("壊れた音声", encoding="utf-8")
    utts, report = run("folder", src, tmp_path / "out", corpus_name="mine")
    assert [(u.id, u.text, u.speaker, u.corpus) for u in utts] == [
        ("mine/spk1/a", "こんにちは", "spk1", "mine")]
    assert report["skipped"] == {"empty_text": 1, "missing_text": 1, "missing_audio": 1,
                                 "unreadable_audio": 1}


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_table(tmp_path, fmt):
    tone(tmp_path / "clips" / "x.wav", 1.0)
    tone(tmp_path / "clips" / "y.wav", 2.0)
    rows = [{"path": "clips/x.wav", "sentence": "一つ目", "speaker": "p"},
            {"path": str(tmp_path / "clips" / "y.wav"), "sentence": "二つ目", "speaker": "q"}]
    table = tmp_path / f"list.{fmt}"
    if fmt == "jsonl":
        table.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                         encoding="utf-8")
    else:
        sep = "," if fmt == "csv" else "\t"
        table.write_text("path,sentence,speaker\n".replace(",", sep) + "".join(
            sep.join(r.values()) + "\n" for r in rows), encoding="utf-8")
    utts, _ = run("table", table, tmp_path / "out")
    assert [(u.id, u.text, u.speaker) for u in utts] == [("table/x", "一つ目", "p"),
                                                         ("table/y", "二つ目", "q")]
    assert [u.duration for u in utts] == pytest.approx([1.0, 2.0])


def test_duplicate_id_is_rejected_with_its_line(tmp_path):
    tone(tmp_path / "x.wav", 1.0)
    table = tmp_path / "list.tsv"
    table.write_text("audio\ttext\nx.wav\t一\nx.wav\t二\n", encoding="utf-8")
    with pytest.raises(PrepareError, match=r"list.tsv:3: duplicate id 'table/x'"):
        run("table", table, tmp_path / "out")
    utts, report = run("table", table, tmp_path / "out", duplicate_id="skip")
    assert len(utts) == 1 and report["skipped"] == {"duplicate_id": 1}


def test_folder_namesakes_are_refused_or_counted_never_dropped(tmp_path):
    src = tmp_path / "src"
    tone(src / "x.wav", 1.0)
    tone(src / "x.flac", 2.0)
    (src / "x.txt").write_text("同じ名前", encoding="utf-8")
    with pytest.raises(PrepareError, match=r"x\.(wav|flac): same name as x\.(wav|flac)"):
        run("folder", src, tmp_path / "out")
    utts, report = run("folder", src, tmp_path / "out", duplicate_id="skip")
    assert len(utts) == 1 and report["skipped"] == {"duplicate_id": 1}
    assert "same name as" in report["examples"]["duplicate_id"][0]


def test_a_truncated_clip_is_skipped_as_unreadable(tmp_path):
    src = tmp_path / "src"
    clip = tone(src / "cut.wav", 2.0)
    clip.write_bytes(clip.read_bytes()[:20000])  # header still says 2 s
    (src / "cut.txt").write_text("途中で切れた", encoding="utf-8")
    tone(src / "whole.flac", 1.0)
    (src / "whole.txt").write_text("全部ある", encoding="utf-8")
    utts, report = run("folder", src, tmp_path / "out")
    assert [u.text for u in utts] == ["全部ある"]
    assert report["skipped"] == {"unreadable_audio": 1}
    assert "truncated" in report["examples"]["unreadable_audio"][0]


def test_cli_prints_summary_and_names_bad_layouts(tmp_path, capsys):
    src = make_jsut(tmp_path / "src")
    # One clip is missing: skipped, counted, named, and the exit code says so (1).
    assert main(["prepare", "jsut", str(src), "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 1
    printed = capsys.readouterr().out
    assert "3 utterances" in printed and "missing_audio" in printed
    assert main(["prepare", "common-voice", str(src), "--out", str(tmp_path / "o2")]) == 1
    assert "not the expected layout" in capsys.readouterr().err
