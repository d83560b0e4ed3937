"""The explorer's data and routes (no browser): joins, diffs, readings, what may be served."""

from __future__ import annotations

import httpx
import pytest

from whisper_ja.cli import main
from whisper_ja.errors import ConfigError, NotFoundError
from whisper_ja.serve.explore import ExplorerData, char_diff
from whisper_ja.serve.settings import ExploreConfig, ServeConfig


def test_char_diff_marks_every_kind_of_edit():
    assert char_diff("今日は天気", "今日は天気") == [{"op": "equal", "ref": "今日は天気",
                                                   "hyp": "今日は天気"}]
    ops = char_diff("東京へ行く", "東京に行くよ")
    assert [o["op"] for o in ops] == ["equal", "substitute", "equal", "insert"]
    assert "".join(o["ref"] for o in ops) == "東京へ行く"
    assert "".join(o["hyp"] for o in ops) == "東京に行くよ"
    assert char_diff("", "あ") == [{"op": "insert", "ref": "", "hyp": "あ"}]
    assert char_diff("あ", "") == [{"op": "delete", "ref": "あ", "hyp": ""}]


def test_rows_join_two_runs_by_id(eval_runs):
    data = ExplorerData.load(eval_runs)
    rows = {r["id"]: r for r in data.rows()}
    assert set(rows) == {"clip0", "clip1", "clip2", "clip3"}
    assert rows["clip2"]["runs"]["A"]["looped"] and rows["clip2"]["delta"] < 0  # better in B
    assert rows["clip3"]["delta"] > 0 and rows["clip3"]["runs"]["A"]["cer"] == 0.0
    assert all(r["audio"] for r in rows.values())
    summary = [run.summary() for run in data.runs]
    assert [s["label"] for s in summary] == ["untouched", "fine-tuned"]
    assert summary[0]["plots"] == ["cer_by_group.png"] and summary[0]["synthetic"]


def test_detail_diffs_the_scored_text_and_the_kana_readings(eval_runs):
    detail = ExplorerData.load(eval_runs).detail("clip1")
    a = detail["runs"]["A"]  # 飲みます written のみます: a spelling, not a sound, error
    assert any(op["op"] != "equal" for op in a["diff"])
    assert a["reading"]["ref"] == a["reading"]["hyp"]
    assert all(op["op"] == "equal" for op in a["reading"]["diff"])
    assert detail["runs"]["B"]["cer"] == 0.0
    with pytest.raises(NotFoundError):
        ExplorerData.load(eval_runs).detail("clip9")


def test_routes_serve_only_listed_audio_and_plots(tiny_server):
    url = tiny_server.url + "/explore/api"
    rows = httpx.get(url + "/rows").json()["rows"]
    assert len(rows) == 4
    audio = httpx.get(url + "/audio", params={"id": "clip0"})
    assert audio.status_code == 200 and audio.content[:4] == b"RIFF"
    assert httpx.get(url + "/audio", params={"id": "../../etc/passwd"}).status_code == 404
    assert httpx.get(url + "/plot/A/cer_by_group.png").content[:4] == b"\x89PNG"
    missing = httpx.get(url + "/plot/A/hypotheses.jsonl")
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "name"
    detail = httpx.get(url + "/utterance", params={"id": "clip2"}).json()
    assert set(detail["runs"]) == {"A", "B"}


def test_settings_refuse_what_would_not_work(tmp_path, eval_runs):
    with pytest.raises(ConfigError, match="not an evaluate output folder"):
        ExploreConfig(runs=(tmp_path,))
    with pytest.raises(ConfigError, match="one or two"):
        ExploreConfig(runs=(*eval_runs, eval_runs[0]))
    with pytest.raises(ConfigError, match="loopback"):
        ServeConfig(host="0.0.0.0")
    assert ServeConfig(host="0.0.0.0", allow_remote=True).host == "0.0.0.0"
    assert ServeConfig(model="runs/x", adapter="runs/lora").served_id == "runs/x+lora"


def test_cli_refuses_bad_settings_in_one_line(capsys, tmp_path):
    assert main(["serve", "--host", "192.0.2.1"]) == 2
    assert "loopback" in capsys.readouterr().err
    assert main(["explore", str(tmp_path)]) == 2
    assert "hypotheses.jsonl" in capsys.readouterr().err
    assert main(["serve", "limits.max_upload_mb=0"]) == 2
    assert "limits.max_upload_mb" in capsys.readouterr().err
