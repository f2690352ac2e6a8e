"""The verdicts on the web page and its Review view, in a real headless Chromium against the
real ``mnist-api serve``: the result says plainly when an upload is not a digit, and a person
labels the review queue from the keyboard (digit keys, N for "not a digit", S to skip)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.api.test_verdicts import noise_page
from tests.browser.pages import DESKTOP, upload

pytestmark = pytest.mark.browser


@pytest.fixture
def page(browser: Browser, live_server: Any) -> Iterator[Page]:
    context = browser.new_context(base_url=live_server.url, viewport=DESKTOP)
    errors: list[str] = []
    opened = context.new_page()
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.goto("/", wait_until="networkidle")
    yield opened
    context.close()
    assert not errors, errors


@pytest.fixture
def api(live_server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        yield client


def test_the_result_says_when_it_is_not_a_digit(page: Page, golden: dict[int, bytes]) -> None:
    answer = upload(page, "noise.png", noise_page(11))
    assert answer.status == 201
    prediction = answer.json()
    assert prediction["verdict"] == "not_a_digit"
    verdict = page.locator("#result-verdict")
    expect(verdict).to_have_attribute("data-verdict", "not_a_digit")
    expect(verdict).to_contain_text("Not a digit?")
    expect(verdict).to_contain_text("does not look like a digit")
    flag = page.locator(f'#history > li[data-id="{prediction["id"]}"] .badge-verdict')
    expect(flag).to_have_text("not a digit?")
    expect(flag).to_be_visible()

    answer = upload(page, "seven.png", golden[7])
    assert answer.json()["verdict"] == "digit"
    expect(verdict).to_have_attribute("data-verdict", "digit")
    expect(verdict).to_contain_text("The model reads a 7.")
    mine = page.locator(f'#history > li[data-id="{answer.json()["id"]}"] .badge-verdict')
    expect(mine).to_be_hidden()
    # The three verdicts do not look alike.
    colour = "e => getComputedStyle(e).backgroundColor"
    digit_colour = verdict.evaluate(colour)
    upload(page, "noise.png", noise_page(12))
    assert verdict.evaluate(colour) != digit_colour


def test_label_the_review_queue_from_the_keyboard(page: Page, api: httpx.Client) -> None:
    mine = []
    for seed in range(20, 23):
        made = api.post("/v1/predictions", files={"file": ("n.png", noise_page(seed))})
        assert made.status_code == 201
        assert made.json()["verdict"] == "not_a_digit"
        mine.append(made.json()["id"])
    plan = {mine[0]: "n", mine[1]: "4", mine[2]: "s"}  # not a digit, a 4, skipped
    done: set[str] = set()

    page.get_by_role("button", name="Start reviewing").click()
    item = page.locator("#review-item")
    expect(item).to_be_visible()
    expect(item).to_be_focused()
    for _ in range(200):  # the live server's queue holds other tests' uploads too: skip those
        if page.locator("#review-empty").is_visible():
            break
        shown = item.get_attribute("data-id")
        assert shown is not None
        expect(page.locator("#review-verdict")).not_to_have_text("")
        key = plan.get(shown, "s")
        if key in ("n", "4"):
            path = f"/{shown}/not-a-digit" if key == "n" else f"/{shown}/label"
            with page.expect_response(lambda r, path=path: r.url.endswith(path)) as answer:
                page.keyboard.press(key.upper() if key == "n" else key)
            assert answer.value.status == 200
        else:
            page.keyboard.press("s")
        done.add(shown)
        # The next item, or the end of the queue.
        page.wait_for_function(
            """(id) => !document.getElementById("review-empty").hidden
                || document.getElementById("review-item").dataset.id !== id""",
            arg=shown,
        )
    assert set(mine) <= done
    expect(page.locator("#review-empty")).to_contain_text("Nothing more to review: 2 labelled.")

    first, second, third = (api.get(f"/v1/predictions/{pid}").json() for pid in mine)
    assert (first["label"], first["labeled_not_a_digit"]) == (None, True)
    assert (second["label"], second["labeled_not_a_digit"]) == (4, False)
    assert third["labeled_at"] is None
    queued = {i["id"] for i in api.get("/v1/review", params={"limit": 100}).json()["items"]}
    assert mine[2] in queued
    assert not {mine[0], mine[1]} & queued
