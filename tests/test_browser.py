"""The web page in headless Chromium against a live server on the shared library: search, play the
exact clip, read the transcript, copy a quote, upload a file and find it. Screenshots of the page on a
laptop and a phone are left in artifacts/ for a person to look at."""
from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
import uvicorn

from api.app import create_app
from tests.helpers import API_KEY, cut_wav, free_port, wait_until_up

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def site(demo_service):
    """The app on a loopback port, in a thread of this process so the loaded models are shared."""
    base = f"http://127.0.0.1:{free_port()}"
    live = uvicorn.Server(uvicorn.Config(create_app(demo_service.settings, demo_service), host="127.0.0.1",
                                         port=int(base.rsplit(":", 1)[1]), log_level="warning"))
    thread = threading.Thread(target=live.run, daemon=True)
    thread.start()
    wait_until_up(base)
    yield base
    live.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian package 'chromium')")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, site):
    context = browser.new_context(viewport=LAPTOP, base_url=site, permissions=["clipboard-read", "clipboard-write"])
    opened = context.new_page()
    errors = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def search(page, query: str, lang: str = "") -> None:
    page.goto("/")
    page.fill("#q", query)
    if lang:
        page.select_option("#lang", lang)
    page.press("#q", "Enter")
    page.wait_for_selector(".group")


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=False)


def test_search_shows_hits_grouped_by_recording(page, recording_ids):
    search(page, "smart traffic lights at intersections")
    first = page.locator(".group").first
    assert first.get_attribute("data-recording") == recording_ids["ru_smart_traffic_lights.opus"]
    assert "Умные светофоры в Казани" in first.locator("h2").inner_text()
    assert first.locator(".badge").inner_text() == "Русский"
    hit = first.locator(".hit").first
    assert re.fullmatch(r"\d\d:\d\d–\d\d:\d\d", hit.locator(".time").inner_text())
    assert hit.locator("blockquote.quote").get_attribute("lang") == "ru"
    assert hit.locator(".translation").get_attribute("lang") == "en" and hit.locator(".translation").inner_text()
    assert page.locator(".group mark").count() > 0
    groups = page.locator(".group").evaluate_all("gs => gs.map(g => g.dataset.recording)")
    assert len(groups) == len(set(groups))  # one group per recording
    screenshot(page, "search-page.png")


def test_korean_query_highlights_the_words_in_the_quote(page, recording_ids):
    search(page, "디지털 플랫폼", lang="ko")
    group = page.locator(".group").first
    assert group.get_attribute("data-recording") == recording_ids["ko_digital_platform.srt"]
    quote = group.locator("blockquote.quote").first
    assert quote.get_attribute("lang") == "ko" and "플랫폼을" in quote.inner_text()  # the particle stays, unmarked or not
    marks = set(group.locator("blockquote mark").all_inner_texts())
    assert "디지털" in marks and any(mark.startswith("플랫폼") for mark in marks)
    assert group.locator(".play").first.is_disabled()  # imported from subtitles: nothing to play
    assert page.evaluate("document.fonts.check('16px NanumGothic', '플랫폼')")
    screenshot(page, "search-korean.png")


def test_play_button_plays_exactly_the_clip(page):
    search(page, "5G pilots in the Riverside district")
    hit = page.locator(".hit").first
    start = float(hit.get_attribute("data-start"))
    hit.locator(".play").click()
    page.wait_for_function("() => { const a = document.querySelector('#player'); return !a.paused && a.currentTime > 0.3; }",
                           timeout=15_000)
    player = page.locator("#player")
    src = player.evaluate("a => a.currentSrc")
    assert re.search(rf"/clip\?start={start:g}&end=[\d.]+&format=ogg&margin=0\.25$", src), src
    assert float(player.evaluate("a => a.dataset.clipStart")) == start
    # the page maps the clip's clock back to the recording's: it starts a quarter second before the hit
    shown = page.locator("#now-playing").inner_text()
    minutes, seconds = shown.rsplit(" · ", 1)[1].split(":")
    assert int(minutes) * 60 + int(seconds) >= int(start - 0.25)


def test_transcript_scrolls_to_the_hit_and_follows_playback(page):
    search(page, "schools and clinics were connected first")
    hit = page.locator(".hit").first
    hit.locator(".time").click()
    panel = page.locator("#transcript")
    panel.wait_for(state="visible")
    in_hit = page.locator("#segments .segment.in-hit")
    assert in_hit.count() >= 1
    assert in_hit.first.evaluate("""s => { const box = s.getBoundingClientRect(), list = s.parentElement.getBoundingClientRect();
                                          return box.top >= list.top - 1 && box.bottom <= list.bottom + 1; }""")
    second = page.locator("#segments .segment").nth(2)
    start = float(second.get_attribute("data-start"))
    second.locator(".time").click()
    page.wait_for_function("() => !document.querySelector('#player').paused", timeout=15_000)
    page.wait_for_selector("#segments .segment.playing")
    assert page.locator("#segments .segment.playing").first.get_attribute("data-start") == second.get_attribute("data-start")
    player = page.locator("#player")
    assert player.evaluate("a => a.currentSrc").endswith("/media")
    assert player.evaluate("a => a.currentTime") >= start - 0.05


def test_copy_quote_gives_quote_title_and_time(page):
    search(page, "5G pilots")
    hit = page.locator(".hit").first
    text = hit.locator("blockquote").inner_text()
    title = page.locator(".group h2").first.inner_text()
    hit.locator(".copy").click()
    page.wait_for_function("() => document.querySelector('.hit .copy').textContent === 'Copied'")
    time = hit.locator(".time").inner_text().split("–")[0]
    assert page.evaluate("navigator.clipboard.readText()") == f"“{text}” — {title}, {time}"


def test_a_speaker_named_in_the_transcript_shows_beside_quotes_and_in_copies(page, demo_service, recording_ids):
    rid = recording_ids["en_5g_pilots.opus"]
    search(page, "5G pilots")
    hit = page.locator(f".group[data-recording='{rid}'] .hit").first
    assert hit.locator(".speaker").inner_text() == "SPEAKER_1"
    hit.locator(".time").click()
    voice = page.locator("#speakers .voice[data-label='SPEAKER_1']")
    voice.wait_for(state="visible")
    try:
        voice.locator("input").fill("Elena Ivanova")
        voice.locator(".rename").click()  # without the key the server refuses, and the panel says why
        page.wait_for_function("() => document.querySelector('#transcript-meta').textContent.startsWith('Cannot rename')")
        page.evaluate("key => localStorage.setItem('talksearch.apiKey', key)", API_KEY)  # as the key field keeps it
        voice.locator(".rename").click()
        page.wait_for_function("() => document.querySelector('#segments .speaker')?.textContent === 'Elena Ivanova'")
        search(page, "5G pilots")
        hit = page.locator(f".group[data-recording='{rid}'] .hit").first
        assert hit.locator(".speaker").inner_text() == "Elena Ivanova"
        hit.locator(".copy").click()
        page.wait_for_function("() => [...document.querySelectorAll('.hit .copy')].some(b => b.textContent === 'Copied')")
        assert " — Elena Ivanova, " in page.evaluate("navigator.clipboard.readText()")
    finally:
        demo_service.rename_speaker(rid, "SPEAKER_1", None)


def test_upload_becomes_searchable(page, tmp_path, site):
    wav = cut_wav(tmp_path, "en_open_data_portal.opus", 1, "open_data.wav")
    page.goto("/")
    page.click("#upload summary")
    page.set_input_files("#upload-file", str(wav))
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("#job[data-state=failed]")
    assert "Upload refused (401): an API key is needed" in page.locator("#job-status").inner_text()
    page.fill("#api-key", API_KEY)
    page.dispatch_event("#api-key", "change")
    page.fill("#upload-form input[name=title]", "Open data portal (excerpt)")
    page.select_option("#upload-form select[name=language]", "en")
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("#job[data-state=done]", timeout=180_000)
    assert "searchable" in page.locator("#job-status").inner_text()
    assert page.locator("#recordings", has_text="Open data portal (excerpt)").count() == 1
    screenshot(page, "upload-done.png")

    search(page, "three hundred data sets from bus timetables to budget spending")
    group = page.locator(".group", has_text="Open data portal (excerpt)")
    assert group.count() == 1
    recording_id = group.get_attribute("data-recording")
    deleted = page.request.delete(f"{site}/recordings/{recording_id}", headers={"X-API-Key": API_KEY})
    assert deleted.ok


def test_phone_layout_is_readable(browser, site):
    context = browser.new_context(viewport=PHONE, base_url=site, device_scale_factor=2, is_mobile=True, has_touch=True)
    phone = context.new_page()
    phone.goto("/?q=" + "주민을 위한 디지털 플랫폼")
    phone.wait_for_selector(".group")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert phone.locator("blockquote.quote").first.evaluate("q => parseFloat(getComputedStyle(q).fontSize)") >= 16
    screenshot(phone, "search-page-phone.png")
    phone.locator(".open-transcript").first.click()
    phone.locator("#transcript").wait_for(state="visible")
    box = phone.locator("#transcript").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    screenshot(phone, "transcript-phone.png")
    context.close()
