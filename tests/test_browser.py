"""The browser harness sees what a user's Chromium sees: DOM, console errors, requests, pixels."""

from pathlib import Path

import pytest

from browser import BrowserError, BrowserTimeout, open_page
from browser import chromium as chromium  # the fixture; the alias tells ruff it is used


def write_page(tmp_path: Path, body: str) -> Path:
    page = tmp_path / "page.html"
    page.write_text(f"<!doctype html><html><head><title>t</title></head><body>{body}</body></html>")
    return page


def test_dom_is_the_one_after_scripts_ran(chromium, tmp_path):
    page = write_page(
        tmp_path,
        "<script>const made = document.createElement('div'); made.id = 'made';"
        " made.textContent = 'made by ' + 'script'; document.body.append(made);</script>",
    )

    seen = open_page(page, browser=chromium)

    assert '<div id="made">made by script</div>' in seen.dom


def test_console_errors_and_uncaught_exceptions_are_seen_and_logs_are_not(chromium, tmp_path):
    page = write_page(
        tmp_path,
        "<script>console.log('only a log'); console.warn('only a warning');"
        " console.error('deliberate', 42);</script>"
        "<script>throw new TypeError('thrown on purpose');</script>",
    )

    seen = open_page(page, browser=chromium)

    assert len(seen.console_errors) == 2, seen.console_errors
    logged, thrown = seen.console_errors
    assert logged.startswith("console.error: deliberate 42")
    assert "Uncaught TypeError: thrown on purpose" in thrown
    assert page.as_uri() in thrown


def test_requests_list_every_url_the_page_asked_for(chromium, tmp_path):
    page = write_page(tmp_path, '<img src="http://127.0.0.1:9/x.png" alt="remote">')

    seen = open_page(page, browser=chromium)

    assert seen.requests == [page.as_uri(), "http://127.0.0.1:9/x.png"]
    assert any("127.0.0.1:9/x.png" in error for error in seen.console_errors)


def test_a_clean_page_has_no_errors_and_requests_only_itself(chromium, tmp_path):
    page = write_page(tmp_path, "<p>quiet</p><script>document.title = 'fine';</script>")

    seen = open_page(page, browser=chromium)

    assert seen.console_errors == []
    assert seen.requests == [page.as_uri()]
    assert "<title>fine</title>" in seen.dom


def test_the_screenshot_is_a_png_of_the_viewport(chromium, tmp_path):
    page = write_page(tmp_path, "<h1 style='color: red'>shown</h1>")
    shot = tmp_path / "shot.png"

    open_page(page, screenshot=shot, browser=chromium)

    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1400, 1000)


def test_a_missing_file_is_an_error_that_names_it(chromium, tmp_path):
    missing = tmp_path / "absent.html"

    with pytest.raises(BrowserError, match="absent.html"):
        open_page(missing, browser=chromium)


def test_a_page_that_never_loads_times_out_and_is_killed(chromium, tmp_path):
    page = write_page(tmp_path, "<script>while (true) {}</script>")

    with pytest.raises(BrowserTimeout, match="process group was killed"):
        open_page(page, timeout=5, browser=chromium)
