"""The web page at ``/`` in a real headless Chromium against the real ``mnist-api serve``.

The page is driven like a person would: drawing with the mouse (and a finger on the phone
layout), choosing and dropping files, clicking and tabbing. Every request the page makes must go
to the service itself; anything else is aborted and fails the test, as does any JavaScript error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, expect

from tests.browser.pages import (
    DESKTOP,
    ONE,
    PAGE_SIZE,
    PHONE,
    SEVEN,
    draw,
    drop,
    history_ids,
    ink_fraction,
    is_prediction_post,
    recognise,
    settled,
    shown_result,
    upload,
)

pytestmark = pytest.mark.browser


class Server(Protocol):
    url: str


OpenPage = Callable[..., Page]


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
def api(live_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        yield client


@pytest.fixture
def open_page(browser: Browser, live_server: Server) -> Iterator[OpenPage]:
    """Opens ``/`` in a fresh browser context; fails the test on page errors or on any request
    that leaves the service (the page must work with no network)."""
    contexts = []
    problems: list[str] = []
    host = urlsplit(live_server.url).netloc

    def guard(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).netloc == host:
            route.continue_()
        else:
            problems.append(f"request outside the service: {url}")
            route.abort()

    def on_console(message: ConsoleMessage) -> None:
        # The browser logs every 4xx/5xx answer; those are expected in the error tests.
        if message.type == "error" and "Failed to load resource" not in message.text:
            problems.append(f"console error: {message.text}")

    def _open(viewport: dict[str, int] | None = None, **options: Any) -> Page:
        options.setdefault("reduced_motion", "reduce")  # no smooth scrolling under the mouse
        context = browser.new_context(
            base_url=live_server.url, viewport=viewport or DESKTOP, **options
        )
        contexts.append(context)
        context.route("**/*", guard)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on("console", on_console)
        page.goto("/", wait_until="networkidle")
        expect(page.get_by_role("heading", level=1)).to_have_text("Handwritten digit recognition")
        return page

    yield _open
    for context in contexts:
        context.close()
    assert not problems, problems


# ---------------------------------------------------------------------------- helpers


def all_ids(api: httpx.Client) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/v1/predictions", params=params).raise_for_status().json()
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            return ids


# ---------------------------------------------------------------------------- tests


def test_draw_digits_with_the_mouse(open_page: OpenPage, shots: Path) -> None:
    """(a) A 1 drawn with the mouse is recognised as 1, with its bars and the model's input."""
    page = open_page()
    expect(page.locator("#result-empty")).to_be_visible()
    expect(page.locator("#result-body")).to_be_hidden()
    pad = page.locator("#pad")
    assert pad.evaluate("e => getComputedStyle(e).touchAction") == "none"
    assert ink_fraction(page) == 0.0
    page.screenshot(path=shots / "01-empty-page.png", full_page=True)

    draw(page, ONE)
    assert 0.02 < ink_fraction(page) < 0.2  # a pen-like stroke, not a hairline nor a blot
    one = recognise(page)
    assert one["digit"] == 1, one["probabilities"]
    expect(page.locator("#alert")).to_be_hidden()
    page.screenshot(path=shots / "02-prediction-drawn-1.png", full_page=True)

    page.get_by_role("button", name="Clear", exact=True).click()
    assert ink_fraction(page) == 0.0
    draw(page, SEVEN)
    seven = recognise(page)  # shown whatever it is; the model usually says 7
    if seven["digit"] == 7:
        expect(page.locator("#result-digit")).to_have_text("7")
    page.screenshot(path=shots / "03-prediction-drawn-7.png", full_page=True)

    # Recognise with nothing drawn explains itself instead of sending a blank page.
    page.get_by_role("button", name="Clear", exact=True).click()
    page.get_by_role("button", name="Recognise", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("Draw a digit")
    draw(page, ONE)  # drawing answers the message
    expect(page.locator("#alert")).to_be_hidden()


def test_upload_and_drop_files(open_page: OpenPage, golden: dict[int, bytes]) -> None:
    """(b) A file chosen with the file input, and one dropped on the drop zone, are recognised."""
    page = open_page()
    picker = page.locator("#file-input")
    assert picker.get_attribute("type") == "file"
    assert picker.get_attribute("accept") == "image/*"

    response = upload(page, "three.png", golden[3])
    assert response.status == 201, response.text()
    shown_result(page, response.json())
    expect(page.locator("#result-digit")).to_have_text("3")

    response = drop(page, "four.png", golden[4])
    assert response.status == 201, response.text()
    shown_result(page, response.json())
    expect(page.locator("#result-digit")).to_have_text("4")


def test_history_newest_first(open_page: OpenPage, golden: dict[int, bytes]) -> None:
    """(c) A drawing and then an upload are at the top of the history, newest first, with their
    thumbnails, digits, confidence and time; the server's order matches after a reload."""
    page = open_page()
    draw(page, ONE)
    drawn = recognise(page)
    uploaded = upload(page, "three.png", golden[3]).json()
    shown_result(page, uploaded)

    top = page.locator("#history > li")
    expect(top.first).to_have_attribute("data-id", uploaded["id"])
    assert history_ids(page)[:2] == [uploaded["id"], drawn["id"]]
    newest = top.first
    expect(newest.locator(".history-digit-value")).to_have_text("3")
    expect(newest.locator(".history-confidence")).to_contain_text(
        f"{uploaded['confidence'] * 100:.1f}%"
    )
    expect(newest.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\d"))
    expect(newest.locator("time")).not_to_be_empty()
    expect(top.nth(1).locator(".history-digit-value")).to_have_text("1")
    for item in (top.nth(0), top.nth(1)):
        thumb = item.locator("img.thumb")
        expect(thumb).to_have_attribute("alt", re.compile(r"recognised as \d"))
        thumb.evaluate("i => i.decode()")  # the thumbnail really loads
        assert thumb.evaluate("i => i.naturalWidth") > 0

    page.reload(wait_until="networkidle")
    assert history_ids(page)[:2] == [uploaded["id"], drawn["id"]]


def test_correct_a_label(
    open_page: OpenPage, golden: dict[int, bytes], api: httpx.Client, shots: Path
) -> None:
    """(d) One click on a digit in a history item stores the label; the page shows it, and the
    API and a reloaded page agree."""
    page = open_page()
    prediction = upload(page, "five.png", golden[5]).json()
    item = page.locator(f'#history > li[data-id="{prediction["id"]}"]')
    expect(item).to_be_visible()
    expect(item.locator(".badge-label")).to_be_hidden()
    group = item.get_by_role("group", name="Correct digit")
    expect(group.get_by_role("button")).to_have_count(10)

    with page.expect_response(lambda r: r.request.method == "PUT") as answer:
        group.get_by_role("button", name="Label as 6").click()
    assert answer.value.status == 200, answer.value.text()
    expect(item.locator(".badge-label")).to_have_text("labelled 6")
    expect(group.get_by_role("button", name="Label as 6")).to_have_attribute("aria-pressed", "true")
    expect(group.get_by_role("button", name="Label as 5")).to_have_attribute(
        "aria-pressed", "false"
    )
    expect(page.locator("#status")).to_have_text("Prediction labelled 6.")
    item.scroll_into_view_if_needed()
    page.screenshot(path=shots / "04-history-with-correction.png", full_page=True)

    stored = api.get(f"/v1/predictions/{prediction['id']}").raise_for_status().json()
    assert stored["label"] == 6
    assert stored["labeled_at"] is not None
    assert stored["digit"] == prediction["digit"]

    page.reload(wait_until="networkidle")
    item = page.locator(f'#history > li[data-id="{prediction["id"]}"]')
    expect(item.locator(".badge-label")).to_have_text("labelled 6")

    # A correction the service cannot take is reported on the item, and nothing changes.
    def busy(route: Route) -> None:
        route.fulfill(
            status=503,
            headers={"Retry-After": "2", "Content-Type": "application/problem+json"},
            body='{"type":"/problems/store-unavailable","title":"Storage unavailable",'
            '"status":503,"detail":"the database cannot be reached"}',
        )

    page.route("**/label", busy)
    item.get_by_role("button", name="Label as 9").click()
    expect(item.get_by_role("alert")).to_have_text(
        "Correction not saved. Service busy — try again in 2 s. The database cannot be reached."
    )
    expect(item.locator(".badge-label")).to_have_text("labelled 6")
    stored = api.get(f"/v1/predictions/{prediction['id']}").raise_for_status().json()
    assert stored["label"] == 6


def test_errors_are_readable(open_page: OpenPage, golden: dict[int, bytes], shots: Path) -> None:
    """(e) A text file, an oversized file, a busy service and a lost network each give a
    readable message in the alert area, and a later success clears it."""
    page = open_page()
    alert = page.get_by_role("alert")

    response = upload(page, "notes.txt", b"these are notes, not a digit\n", "text/plain")
    assert response.status in (415, 422)
    assert response.headers["content-type"].startswith("application/problem+json")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("Not an image we can read")
    expect(alert).to_contain_text(response.json()["detail"], ignore_case=True)
    assert "{" not in alert.inner_text()
    page.screenshot(path=shots / "05-error-not-an-image.png", full_page=True)
    expect(page.locator("#result-body")).to_be_hidden()  # no result was invented

    response = upload(page, "huge.png", b"\x89PNG\r\n\x1a\n" + bytes(6 * 1024 * 1024))
    assert response.status == 413
    expect(alert).to_contain_text("File too large")

    response = upload(page, "three.png", golden[3])
    assert response.status == 201
    expect(alert).to_be_hidden()

    # A busy service (503 with Retry-After) and a network failure, staged in the browser.
    def busy(route: Route) -> None:
        route.fulfill(
            status=503,
            headers={"Retry-After": "7", "Content-Type": "application/problem+json"},
            body='{"type":"/problems/overloaded","title":"Service busy","status":503,'
            '"detail":"the inference queue is full"}',
        )

    page.route("**/v1/predictions", busy)
    draw(page, ONE)
    with page.expect_response(is_prediction_post) as staged:
        page.get_by_role("button", name="Recognise", exact=True).click()
    assert staged.value.status == 503
    expect(alert).to_contain_text("Service busy — try again in 7 s")
    expect(alert).to_contain_text("The inference queue is full.")
    settled(page)
    page.unroute("**/v1/predictions", busy)

    page.route("**/v1/predictions", lambda route: route.abort("internetdisconnected"))
    page.get_by_role("button", name="Recognise", exact=True).click()
    expect(alert).to_contain_text("Cannot reach the service")


def test_load_more(
    open_page: OpenPage, golden: dict[int, bytes], api: httpx.Client, shots: Path
) -> None:
    """(f) The history shows a page at a time; Load more follows the cursor without gaps or
    repeats, in the server's newest-first order."""
    for n in range(PAGE_SIZE + 3):
        digit = n % 10
        files = {"file": (f"{digit}.png", golden[digit], "image/png")}
        api.post("/v1/predictions", files=files).raise_for_status()
    expected = all_ids(api)
    assert len(expected) > PAGE_SIZE

    page = open_page()
    items = page.locator("#history > li")
    expect(items).to_have_count(PAGE_SIZE)
    assert history_ids(page) == expected[:PAGE_SIZE]
    more = page.get_by_role("button", name="Load more")
    expect(more).to_be_visible()

    more.click()
    shown = min(2 * PAGE_SIZE, len(expected))
    expect(items).to_have_count(shown)
    assert history_ids(page) == expected[:shown]
    if len(expected) > shown:
        expect(more).to_be_visible()
    else:
        expect(more).to_be_hidden()
    expect(page.locator("#status")).to_have_text(f"{shown - PAGE_SIZE} more predictions loaded.")

    while more.is_visible():  # to the end of the history, however long it is
        with page.expect_response(lambda r: "cursor=" in r.url):
            more.click()
        expect(page.locator("#load-more:disabled")).to_have_count(0)
    assert history_ids(page) == expected
    items.last.scroll_into_view_if_needed()
    page.screenshot(path=shots / "06-history-all-loaded.png")


def test_phone_layout_with_touch(open_page: OpenPage, shots: Path) -> None:
    """(g) On a 375x667 phone: one column, nothing wider than the screen, the canvas fits the
    width, and a digit drawn with a finger is recognised."""
    page = open_page(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)

    def no_sideways_scroll() -> None:
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], width

    no_sideways_scroll()
    page.screenshot(path=shots / "07-phone-empty.png")
    draw_card = page.locator(".card-draw").bounding_box()
    upload_card = page.locator(".card-upload").bounding_box()
    result_card = page.locator(".card-result").bounding_box()
    assert draw_card is not None
    assert upload_card is not None
    assert result_card is not None
    assert upload_card["y"] >= draw_card["y"] + draw_card["height"]  # stacked, not side by side
    assert result_card["y"] >= upload_card["y"] + upload_card["height"]
    # The canvas and its buttons fit the first screen: draw and recognise without scrolling.
    button = page.get_by_role("button", name="Recognise", exact=True).bounding_box()
    assert button is not None
    assert button["y"] + button["height"] <= PHONE["height"], button
    pad = page.locator("#pad")
    box = pad.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= PHONE["width"]
    assert box["width"] >= 0.75 * PHONE["width"]
    assert box["y"] >= 0
    assert box["y"] + box["height"] <= PHONE["height"]  # the whole canvas fits on screen

    # A finger: real touch events through the DevTools protocol, turned into pointer events.
    cdp = page.context.new_cdp_session(page)
    scrolled = page.evaluate("window.scrollY")
    x = box["x"] + box["width"] / 2
    top, bottom = box["y"] + 0.16 * box["height"], box["y"] + 0.84 * box["height"]
    cdp.send(
        "Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": top}]}
    )
    steps = 20
    for step in range(1, steps + 1):
        y = top + (bottom - top) * step / steps
        cdp.send(
            "Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]}
        )
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    assert ink_fraction(page) > 0.02
    assert page.evaluate("window.scrollY") == scrolled  # the finger drew; the page stayed put
    page.screenshot(path=shots / "08-phone-drawn.png")

    prediction = recognise(page)
    assert prediction["digit"] == 1, prediction["probabilities"]
    no_sideways_scroll()
    # The result is below the fold on a phone: the page brings it into view.
    shown = page.locator("#result").bounding_box()
    assert shown is not None
    assert -1 <= shown["y"] < PHONE["height"] / 2, shown
    page.locator("#result").scroll_into_view_if_needed()
    page.screenshot(path=shots / "09-phone-result.png")
    page.screenshot(path=shots / "10-phone-full-page.png", full_page=True)


def test_keyboard_and_accessible_names(
    open_page: OpenPage, golden: dict[int, bytes], api: httpx.Client
) -> None:
    """(h) Tab reaches the controls in a sensible order with a visible focus ring; they have
    accessible names; the drop zone opens the file picker on Enter and Space; a correction can
    be made with the keyboard alone."""
    files = {"file": ("8.png", golden[8], "image/png")}
    api.post("/v1/predictions", files=files).raise_for_status()  # a history to tab through
    page = open_page()
    expect(page.get_by_role("banner")).to_be_visible()
    expect(page.get_by_role("main")).to_be_visible()
    expect(page.get_by_role("contentinfo")).to_be_visible()
    for name in ("Draw a digit", "Upload an image", "Result", "Recent predictions"):
        expect(page.get_by_role("heading", level=2, name=name)).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("Drawing area"))).to_be_visible()
    expect(page.get_by_role("button", name="Clear", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Recognise", exact=True)).to_be_visible()
    zone = page.get_by_role("button", name="Choose an image file, or drop one here")
    expect(zone).to_be_visible()
    # The file input itself stays out of the way: labelled, but no extra Tab stop or button.
    picker = page.locator("#file-input")
    assert picker.evaluate("e => e.labels.length") == 1
    expect(picker).to_have_attribute("aria-hidden", "true")

    # Tab through the page: the main controls come in reading order, each visibly focused.
    page.locator("body").focus()
    stops: list[str] = []
    for _ in range(60):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            """() => {
                const e = document.activeElement;
                const style = getComputedStyle(e);
                const seen = e.dataset.tabSeen === "1";
                e.dataset.tabSeen = "1";
                return { name: e.id || `${e.tagName.toLowerCase()}.${e.className}`, seen,
                         body: e === document.body, outline: style.outlineStyle,
                         width: parseFloat(style.outlineWidth) };
            }"""
        )
        if focused["body"] or focused["seen"]:
            break  # past the last control
        stops.append(focused["name"])
        assert focused["outline"] != "none", focused  # a visible focus ring everywhere
        assert focused["width"] >= 2, focused
    wanted = ["clear", "recognise", "dropzone"]
    assert [s for s in stops if s in wanted] == wanted, stops
    assert stops[0] == "a.skip-link", stops
    # One stop per history item (arrows move among its digits), then Load more if shown.
    items = page.locator("#history > li").count()
    assert items >= 1
    assert sum(s.startswith("button.digit-button") for s in stops) == items, stops
    assert ("load-more" in stops) == page.locator("#load-more").is_visible(), stops
    assert "file-input" not in stops  # the drop zone stands for it; no hidden stop

    # Enter and Space on the drop zone open the file picker; the chosen file is recognised.
    # (A standing listener makes Playwright intercept file choosers before the key is pressed;
    # expect_file_chooser alone switches interception on without waiting for it.)
    page.on("filechooser", lambda _chooser: None)
    page.evaluate("1")
    zone.focus()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    with page.expect_response(is_prediction_post) as answer:
        chooser.value.set_files(
            files=[{"name": "two.png", "mimeType": "image/png", "buffer": golden[2]}]
        )
    prediction = answer.value.json()
    settled(page)
    shown_result(page, prediction)
    expect(page.locator("#result-digit")).to_have_text("2")
    zone.focus()
    with page.expect_file_chooser():
        page.keyboard.press(" ")

    # In a history item the digits are one Tab stop; arrows move, Enter labels.
    item = page.locator(f'#history > li[data-id="{prediction["id"]}"]')
    buttons = item.get_by_role("button")
    expect(buttons).to_have_count(10)
    assert item.locator('button[tabindex="0"]').count() == 1
    item.locator('button[tabindex="0"]').focus()
    start = int(page.evaluate("document.activeElement.dataset.digit"))
    page.keyboard.press("ArrowRight")
    target = (start + 1) % 10
    assert page.evaluate("document.activeElement.dataset.digit") == str(target)
    with page.expect_response(lambda r: r.request.method == "PUT"):
        page.keyboard.press("Enter")
    expect(item.locator(".badge-label")).to_have_text(f"labelled {target}")
    expect(item.get_by_role("button", name=f"Label as {target}")).to_be_focused()
