"""The dashboard in a real browser: Playwright driving Debian's chromium over a
server on a generated folder. What the page shows is checked against the folder
(totals, a filtered event table, a user's page), a hostile user id must show as
text without running anything, and a screenshot is taken."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from urllib.parse import unquote

import polars as pl
import pytest

from axon_audit.read.sources import open_source
from tests.dashboard_served import HOSTILE, TOKEN, Served, build_folder

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def chromium_path() -> str:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(found):
        pytest.fail("chromium is not installed: apt-get install chromium (the browser tests need it)")
    return found


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    s = Served(build_folder(tmp_path_factory.mktemp("export"), n=600), TOKEN, None)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright  # a dev dependency: only this test needs it
    except ImportError:
        pytest.fail("playwright is not installed: pip install 'playwright>=1.50' (and apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield b
        b.close()


def ready(page, *, hash_has: str = "") -> None:
    """Wait until the page's current route has rendered (its root is marked ready)."""
    page.wait_for_function("(h) => location.hash.includes(h) && document.querySelector('#page[data-ready]')",
                           arg=hash_has, timeout=20_000)


def number(text: str) -> int:
    return int(text.replace(",", ""))


def test_dashboard_in_chromium(served, browser, tmp_path):
    source = open_source(served.folder)
    stats = source.get_statistics()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    dialogs: list[str] = []
    errors: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    # ?token=T once: the cookie it sets carries the page's API requests
    page.goto(f"{served.base}/?token={TOKEN}")
    assert page.url == f"{served.base}/"
    ready(page)
    card = lambda key: page.locator(f"#totals [data-key={key}] dd").inner_text()
    assert number(card("total_events")) == stats["total_events"] == 603
    assert number(card("unique_users")) == stats["unique_users"]
    assert number(card("unique_sessions")) == stats["unique_sessions"]
    assert number(card("failure_count")) == stats["failure_count"]
    assert card("success_rate") == f"{stats['success_rate'] * 100:.2f}%"
    assert page.locator("#view svg.chart rect").count() > 20  # the charts drew their bars
    page.wait_for_function("() => !document.querySelector('#integrity-badge').textContent.includes('checking')")
    assert page.locator("#integrity-badge").inner_text() == "integrity: ok (603 events)"
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000

    # the event table, filtered by one user through the form
    page.click("nav a[data-route=events]")
    ready(page, hash_has="/events")
    user = "user_00003"
    page.fill("#event-filters input[name=user_id]", user)
    page.click("#event-filters button[type=submit]")
    ready(page, hash_has=f"user_id={user}")
    want = source.scan(user_id=user).select(pl.len()).collect().item()
    assert 0 < want < 100
    cells = page.locator("#events-table tbody td[data-col=user_id]").all_inner_texts()
    assert cells == [user] * want
    assert page.locator("#events-count").get_attribute("data-total") == str(want)

    # the hostile id: typed into the filter, listed as text, its page reached through its link
    page.fill("#event-filters input[name=user_id]", HOSTILE)
    page.click("#event-filters button[type=submit]")
    ready(page, hash_has="user_id=")
    assert page.locator("#events-table tbody td[data-col=user_id]").all_inner_texts() == [HOSTILE] * 3
    page.locator("#events-table tbody a.user-link").first.click()
    ready(page, hash_has="/user/")
    assert unquote(page.url.split("#/user/", 1)[1]) == HOSTILE
    assert page.locator("#user-title").inner_text() == HOSTILE
    assert number(page.locator("#user-totals [data-key=total_operations] dd").inner_text()) == 3
    assert page.locator("#user-sessions tbody tr").count() == 1
    assert page.locator("#user-events tbody tr").count() == 3
    assert page.locator("img").count() == 0  # shown as text, never parsed into an element
    assert dialogs == [] and errors == []
    page.close()
