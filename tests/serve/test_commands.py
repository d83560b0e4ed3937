"""`whisper-ja serve` and `whisper-ja explore` as a user starts them (subprocesses on loopback)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx
import pytest

from whisper_ja.serve.explore import ExplorerData, explore_app
from whisper_ja.serve.server import BackgroundServer

pytestmark = pytest.mark.slow


def _serve(args: list[str]) -> tuple[subprocess.Popen, str]:
    # Ctrl-C reaches a command started from a terminal; a test run started in the background
    # (`make test &`) ignores SIGINT, and its children would inherit that.
    process = subprocess.Popen([sys.executable, "-m", "whisper_ja.cli", *args, "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    assert process.stdout is not None
    for line in process.stdout:
        if "serving on " in line:
            url = line.split("serving on ")[1].split()[0]
            break
        assert time.monotonic() < deadline, "the server did not start"
    else:
        pytest.fail(f"the command exited with {process.wait()} before serving")
    for _ in range(100):  # the socket is bound before the line is printed; wait for the app
        try:
            httpx.get(url + "/", timeout=5)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    return process, url


def _stop(process: subprocess.Popen) -> None:
    """Ctrl-C, as a user stops it: uvicorn shuts down, the CLI exits 130 (interrupted)."""
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 130


def test_serve_command_answers_and_stops_cleanly(tiny_whisper_dir, ja_clips, eval_runs):
    process, url = _serve(["serve", "--model", str(tiny_whisper_dir), "--model-id", "tiny",
                           "--explore", str(eval_runs[0]), "guards.fallback=false",
                           "max_new_tokens=4"])
    try:
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "/health").json()["model"] == "tiny"
        response = httpx.post(url + "/v1/audio/transcriptions", timeout=120,
                              files={"file": ("a.wav", ja_clips[0].path.read_bytes())})
        assert response.status_code == 200 and "text" in response.json()
        assert httpx.get(url + "/explore/api/rows").json()["rows"]
    finally:
        _stop(process)


def test_explore_app_alone_serves_two_runs(eval_runs):
    """What `whisper-ja explore A B` serves (in process: the command only adds uvicorn)."""
    app = explore_app(ExplorerData.load(eval_runs))
    with BackgroundServer(app) as server:
        home = httpx.get(server.url + "/", follow_redirects=True)
        assert home.text.startswith("<!doctype html>") and "explorer" in home.text
        summary = httpx.get(server.url + "/explore/api/summary").json()
        assert [r["key"] for r in summary["runs"]] == ["A", "B"]
        assert httpx.get(server.url + "/v1/models").status_code == 404  # no model here
