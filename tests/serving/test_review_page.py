"""The Review tab in a real browser (Debian Chromium via Playwright) and its API routes: what
waits, keep with the keyboard, edit and keep, reject all, skip; bad picks refused."""

from __future__ import annotations

import sqlite3

import httpx
import pytest

from .test_web_page import CHROMIUM, browser, shot  # noqa: F401  (the browser fixture)

TAG = "#[[twin says]] "


def _waiting(state, count: int = 3) -> list[int]:
    ids = []
    for i in range(count):
        prompt = {
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": f"sunday {i}?"},
            ]
        }
        candidates = [f"{TAG}yes! {i}", f"{TAG}maybe {i}", f"{TAG}no {i}"]
        ids.append(state.log.add("amplify", "twin", prompt, {"kind": "chat"}, candidates))
    return ids


@pytest.fixture
def review_server(make_state):
    from selftune.server import create_app

    from .conftest import LiveServer

    state = make_state(tag_prefix=TAG)
    ids = _waiting(state)
    with LiveServer(create_app(state)) as server:
        server.ids = ids
        yield server


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")
def test_review_tab_keeps_edits_rejects_and_skips(browser, review_server, tmp_path):  # noqa: F811
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(review_server.url + "/#review")
    page.wait_for_selector("#review-candidates .card >> nth=2")
    assert "3 waiting" in page.inner_text("#review-counts")
    assert "them: sunday 0?" in page.inner_text("#review-context")
    # the tag the server put in front is not shown for review
    assert page.locator("#review-candidates textarea").first.input_value() == "yes! 0"
    page.keyboard.press("2")  # keep candidate 2 with the keyboard
    page.wait_for_function("document.querySelector('#review-status').textContent.includes('Kept')")
    assert f"Kept candidate 2 of sample {review_server.ids[0]}: {TAG}maybe 0" in page.inner_text(
        "#review-status"
    )
    assert "2 waiting · 1 picked" in page.inner_text("#review-counts")
    # edit the second sample's first candidate and keep it
    cards = page.locator("#review-candidates .card")
    cards.nth(0).locator("textarea").fill("yes! bringing honey")
    cards.nth(0).locator("button.keep").click()
    page.wait_for_function(
        "document.querySelector('#review-counts').textContent.includes('(1 edited)')"
    )
    shot(page, "review")
    page.click("#review-reject")  # the third: none sounds like me
    page.wait_for_selector("#review-empty:not([hidden])")
    assert "selftune amplify" in page.inner_text("#review-empty")
    db = sqlite3.connect(tmp_path / "store.sqlite")
    rows = db.execute("SELECT id, picked, edited FROM samples ORDER BY id").fetchall()
    assert [r[1:] for r in rows] == [(1, None), (0, "yes! bringing honey"), (None, None)]
    assert db.execute("SELECT candidate, rating FROM ratings WHERE sample_id = ?", (rows[2][0],)).fetchall() == [
        (0, -1), (1, -1), (2, -1),
    ]  # fmt: skip


def test_review_api_lists_and_refuses_bad_picks(review_server, tmp_path):
    url = review_server.url
    listed = httpx.get(url + "/api/review").json()
    assert [s["id"] for s in listed["waiting"]] == review_server.ids
    assert listed["counts"]["waiting"] == 3 and listed["tag_prefix"] == TAG
    first = review_server.ids[0]
    for path, body in (
        (f"/api/review/{first}/pick", {"candidate": 7}),
        ("/api/review/999/pick", {"candidate": 0}),
        (f"/api/review/{first}/rate", {"candidate": 0, "rating": 3}),
        ("/api/review/999/reject", {}),
    ):
        r = httpx.post(url + path, json=body)
        assert r.status_code in (400, 404) and r.json()["error"]["message"], (path, r.text)
    db = sqlite3.connect(tmp_path / "store.sqlite")
    assert db.execute("SELECT count(*) FROM ratings").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM samples WHERE picked IS NOT NULL").fetchone()[0] == 0
    kept = httpx.post(url + f"/api/review/{first}/pick", json={"candidate": 0}).json()
    assert kept["kept"] == f"{TAG}yes! 0" and kept["counts"]["picked"] == 1


def test_generate_puts_candidates_best_first_only_when_asked(make_state):
    from selftune.server import create_app

    from .conftest import LiveServer

    class Longest:
        def scores(self, texts):
            return [len(t) for t in texts]

    state = make_state()
    state.ranker = Longest()
    body = {"prompt": "Dear diary,", "n": 4, "max_tokens": 8, "seed": 3}
    with LiveServer(create_app(state)) as server:
        plain = httpx.post(server.url + "/generate", json=body, timeout=60).json()["candidates"]
        ranked = httpx.post(server.url + "/generate", json=body | {"rank": True}, timeout=60).json()
    assert sorted(plain, key=len, reverse=True) == ranked["candidates"]
    assert len(ranked["finish_reasons"]) == 4
