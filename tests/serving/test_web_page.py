"""The web page in a real browser: headless Debian Chromium driven by Playwright, against a
server on loopback. A screenshot of each view goes to test-artifacts/ (and, with
SELFTUNE_UPDATE_DOCS_IMG=1, the "give me N" view to docs/img/ for the docs)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no /usr/bin/chromium: apt-get install chromium chromium-driver"
)


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-background-networking"],
        )
        yield b
        b.close()


@pytest.fixture
def page_server(make_state, tmp_path):
    from selftune.server import create_app

    from .conftest import LiveServer

    report = tmp_path / "reports" / "20261123-000000"
    report.mkdir(parents=True)
    pair = {
        "context": [{"author": "Tobias", "text": "are you coming sunday?"}],
        "real": "yes! bringing the honey",
        "generated": "maybe, depends on the bees",
    }
    (report / "blind_pairs.jsonl").write_text(json.dumps(pair) + "\n")
    with LiveServer(create_app(make_state())) as server:
        yield server


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_pick_from_n_candidates_then_keep_and_rate(browser, page_server, tmp_path):
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(page_server.url + "/#pick")
    page.fill("#pick-prompt", "Here is a list of ideas for my next tattoo: 1.")
    page.fill("#pick-n", "3")
    page.fill("#pick-max", "12")
    page.click("#pick-go")
    page.wait_for_selector("#candidates .card >> nth=2", timeout=60_000)
    assert page.locator("#candidates .card").count() == 3
    cards = page.locator("#candidates .card")
    cards.nth(1).locator("textarea").fill("a bee, small, on the wrist")
    cards.nth(1).locator("button.rate").first.click()
    cards.nth(1).locator("button.keep").click()
    page.wait_for_selector("#candidates .card.kept")
    assert "Kept candidate 2 (edited)" in page.inner_text("#pick-status")
    path = shot(page, "give-me-n")
    if os.environ.get("SELFTUNE_UPDATE_DOCS_IMG"):
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS_IMG / "give-me-n.png")
    db = sqlite3.connect(tmp_path / "store.sqlite")
    picked, edited = db.execute("SELECT picked, edited FROM samples ORDER BY id DESC").fetchone()
    assert (picked, edited) == (1, "a bee, small, on the wrist")
    assert db.execute("SELECT candidate, rating FROM ratings").fetchall() == [(1, 1)]


def test_chat_streams_a_reply(browser, page_server):
    page = browser.new_page(viewport={"width": 900, "height": 700})
    page.goto(page_server.url + "/")
    page.fill("#chat-input", "how are the bees?")
    page.click("#chat-send")
    page.wait_for_function(
        "document.querySelectorAll('#chat-log li').length === 2 && "
        "!document.querySelector('#chat-send').disabled",
        timeout=60_000,
    )
    assert page.locator("#chat-log li.user").inner_text() == "how are the bees?"
    assert "⚠" not in page.locator("#chat-log li.assistant").inner_text()
    shot(page, "chat")


def test_blind_game_keeps_the_score_on_a_phone(browser, page_server):
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    page.goto(page_server.url + "/#blind")
    page.wait_for_selector("#blind-options .option >> nth=1")
    options = page.locator("#blind-options .option")
    real = next(i for i in range(2) if "honey" in options.nth(i).inner_text())
    options.nth(real).click()
    page.wait_for_selector(".option.right")
    assert page.inner_text("#blind-score") == "Score: 1 of 1"
    # the page fits a phone: nothing wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "blind-phone")


def test_blind_game_says_when_there_are_no_pairs(browser, make_state):
    from selftune.server import create_app

    from .conftest import LiveServer

    with LiveServer(create_app(make_state())) as server:
        page = browser.new_page()
        page.goto(server.url + "/#blind")
        page.wait_for_selector("#blind-empty:not([hidden])")
        assert "selftune eval" in page.inner_text("#blind-empty")
        shot(page, "blind-empty")
