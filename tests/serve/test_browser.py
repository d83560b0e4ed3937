"""A real browser (Debian's chromium driven by Playwright) on the page and the explorer.

Screenshots are written to ``test-artifacts/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.serve.support import ARTIFACTS, EchoEngine, start, wav_bytes
from whisper_ja.serve.settings import LimitsConfig
from whisper_ja.text import cer

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")  # installed by the Makefile (apt-get install chromium)


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM.is_file(), "chromium missing: run `make env` (it apt-get installs it)"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required",
                  "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Page:
    context = browser.new_context(viewport={"width": 1300, "height": 900}, accept_downloads=True)
    context.grant_permissions(["microphone"])
    page = context.new_page()
    yield page
    context.close()


def test_upload_a_clip_and_read_the_transcript(page, base_server, ja_clips):
    clip = ja_clips[0]
    page.goto(base_server.url + "/")
    expect(page.locator("#model")).to_contain_text("whisper-base-ja")
    page.set_input_files("#file", str(clip.path))
    expect(page.locator("#status")).to_contain_text("Transcribed clip0.wav", timeout=120_000)
    expect(page.locator("#segments tbody tr")).to_have_count(1)
    text = page.locator("#transcript").inner_text()
    assert cer([clip.text], [text]).rate < 0.3, text
    start, end, segment = page.locator("#segments tbody tr td").all_inner_texts()
    assert start.startswith("00:00:00.") and start < end and segment == text  # model's times
    page.screenshot(path=ARTIFACTS / "page_transcript.png", full_page=True)


def test_srt_download_matches_the_server_srt(page, tiny_server, ja_clips):
    page.goto(tiny_server.url + "/")
    page.set_input_files("#file", str(ja_clips[1].path))
    expect(page.locator("#status")).to_contain_text("Transcribed clip1.wav", timeout=120_000)

    def server_says(response_format: str) -> str:
        return httpx.post(tiny_server.url + "/v1/audio/transcriptions", timeout=120,
                          files={"file": ("clip1.wav", ja_clips[1].path.read_bytes())},
                          data={"response_format": response_format}).text

    server_srt = server_says("srt")
    # as many rows as the server's cues (random weights: however many segments they give)
    expect(page.locator("#segments tbody tr")).to_have_count(server_srt.count(" --> "))
    with page.expect_download() as info:
        page.click("#download-srt")
    downloaded = Path(info.value.path()).read_text(encoding="utf-8")
    assert info.value.suggested_filename == "clip1.srt"
    assert downloaded == server_srt
    with page.expect_download() as info:
        page.click("#download-vtt")
    assert info.value.suggested_filename == "clip1.vtt"
    assert Path(info.value.path()).read_text(encoding="utf-8") == server_says("vtt")


def test_microphone_recording_is_transcribed(page, tiny_server):
    page.goto(tiny_server.url + "/")
    page.click("#record")
    expect(page.locator("#record")).to_contain_text("Stop")
    page.wait_for_timeout(1500)
    page.click("#record")
    expect(page.locator("#status")).to_contain_text("Transcribed recording.wav", timeout=120_000)
    duration = float(page.locator("#meta").inner_text().split(" s of audio")[0])
    assert 0.5 < duration < 5


def test_a_bad_upload_is_explained_on_the_page(page, tiny_server, tmp_path):
    notes = tmp_path / "notes.wav"
    notes.write_text("not audio", encoding="utf-8")
    page.goto(tiny_server.url + "/")
    page.set_input_files("#file", str(notes))
    expect(page.locator("#status")).to_contain_text("'notes.wav' is not audio")
    expect(page.locator("#status")).to_have_class("status error")


def _cer_column(page: Page, key: str) -> list[float]:
    index = page.locator("#head th").evaluate_all(
        f"(ths) => ths.findIndex((th) => th.dataset.key === '{key}')")
    texts = page.locator(f"#table tbody tr td:nth-child({index + 1})").all_inner_texts()
    return [float(t) for t in texts]


def test_explorer_sorts_by_cer_opens_a_diff_and_plays_audio(page, tiny_server):
    page.goto(tiny_server.url + "/explore")
    expect(page.locator("#table tbody tr")).to_have_count(4)
    expect(page.locator(".run h3").first).to_contain_text("untouched")
    page.click("th[data-key=cerB]")  # first click: highest CER first
    values = _cer_column(page, "cerB")
    assert values == sorted(values, reverse=True) and values[0] > 0
    page.click("th[data-key=cerB]")
    assert _cer_column(page, "cerB") == sorted(values)
    page.click("th[data-key=cerA]")
    page.click("th[data-key=cerA]")
    page.click("th[data-key=cerA]")  # back to highest first: the looped clip2
    first = page.locator("#table tbody tr").first
    expect(first).to_have_attribute("data-id", "clip2")
    first.click()
    detail = page.locator("#detail")
    expect(detail).to_contain_text("A: untouched")
    ref_line = detail.locator(".diff").first  # run A's reference, marked where A erred
    marked = "".join(ref_line.locator(".substitute, .delete").all_inner_texts())
    assert "ください" in marked  # what the untouched run did not write
    expect(detail.locator(".diff").nth(1).locator(".insert").first).to_be_visible()
    expect(detail).to_contain_text("reading of the hypothesis")
    playing = page.evaluate("""async () => {
        const audio = document.getElementById('detail-audio');
        await audio.play();
        await new Promise((ok) => setTimeout(ok, 400));
        return {paused: audio.paused, time: audio.currentTime, duration: audio.duration};
    }""")
    assert not playing["paused"] and playing["time"] > 0 and playing["duration"] > 1
    page.screenshot(path=ARTIFACTS / "explorer_diff.png", full_page=True)


def test_explorer_filters_what_got_worse(page, tiny_server):
    page.goto(tiny_server.url + "/explore")
    expect(page.locator("#table tbody tr")).to_have_count(4)
    page.select_option("#change", "worse")
    expect(page.locator("#table tbody tr")).to_have_count(1)
    expect(page.locator("#table tbody tr").first).to_have_attribute("data-id", "clip3")
    page.select_option("#change", "")
    page.select_option("#looped", "yes")
    expect(page.locator("#table tbody tr")).to_have_count(1)
    page.fill("#search", "コーヒー")
    expect(page.locator("#count")).to_have_text("0 of 4 utterances")


def test_api_docs_render_with_no_outside_network(page):
    """The page's "API" link opens Swagger UI with every request off this server refused."""
    with start(EchoEngine(), model_id="offline-model") as server:
        here = urlparse(server.url).netloc
        outside: list[str] = []

        def only_this_server(route) -> None:
            if urlparse(route.request.url).netloc == here:
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort("internetdisconnected")

        page.route("**/*", only_this_server)
        page.goto(server.url + "/")
        page.click("a[href='/docs']")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("whisper-ja")
        expect(page.locator(".opblock-summary-path", has_text="/v1/audio/transcriptions")
               ).to_be_visible()
        page.screenshot(path=ARTIFACTS / "api_docs_offline.png", full_page=True)
        assert outside == []


def test_the_page_states_the_audio_limit_and_explains_a_refusal(page, tmp_path):
    """Audio over the limit is refused up front (413); the page says the limit, then why."""
    long = tmp_path / "lecture.wav"
    long.write_bytes(wav_bytes(np.zeros(12 * 16000, np.float32), 16000))
    with start(EchoEngine(), limits=LimitsConfig(max_audio_s=10)) as server:
        page.goto(server.url + "/")
        expect(page.locator("#limits")).to_contain_text("10 s of audio per file")
        page.set_input_files("#file", str(long))
        status = page.locator("#status")
        expect(status).to_contain_text("Not transcribed: file: the audio lasts 12.0 s, over "
                                       "this server's limit of 10 s per request")
        expect(status).to_have_class("status error")
        page.screenshot(path=ARTIFACTS / "page_audio_too_long.png", full_page=True)
