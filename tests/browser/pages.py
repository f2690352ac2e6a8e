"""What the browser tests do on the web page at ``/``, as a person would: draw with the mouse,
choose or drop a file, read the result and the history. Shared by the tests of the page with
authentication off (``test_web``) and with API keys (``test_keys``)."""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 667}
PAGE_SIZE = 10  # the history page size js/api.js asks for

# Strokes in canvas fractions (0..1): a 1 is one vertical stroke; a 7 a bar then a diagonal.
ONE = [[(0.50, 0.16), (0.50, 0.84)]]
SEVEN = [[(0.24, 0.20), (0.76, 0.20), (0.44, 0.86)]]
PERCENT = re.compile(r"^(\d): (\d{1,3}\.\d)%$")


def draw(page: Page, strokes: list[list[tuple[float, float]]]) -> None:
    """Draws with the mouse: each stroke is pressed, moved through its points and released."""
    pad = page.locator("#pad")
    pad.scroll_into_view_if_needed()
    # The page may still be scrolling a result into view: wait until the canvas stands still,
    # so that the strokes land where they are aimed.
    box = pad.bounding_box()
    for _ in range(50):
        page.wait_for_timeout(50)
        again = pad.bounding_box()
        if again == box:
            break
        box = again
    assert box is not None

    def at(point: tuple[float, float]) -> tuple[float, float]:
        return box["x"] + point[0] * box["width"], box["y"] + point[1] * box["height"]

    for stroke in strokes:
        page.mouse.move(*at(stroke[0]))
        page.mouse.down()
        for point in stroke[1:]:
            page.mouse.move(*at(point), steps=12)
        page.mouse.up()
    for stroke in strokes:  # every stroke landed where it was aimed
        x, y = stroke[len(stroke) // 2] if len(stroke) > 2 else stroke[0]
        dark = page.evaluate(
            """([x, y]) => {
                const pad = document.getElementById("pad");
                const px = Math.round(x * (pad.width - 1)), py = Math.round(y * (pad.height - 1));
                return pad.getContext("2d").getImageData(px, py, 1, 1).data[0] < 128;
            }""",
            [x, y],
        )
        assert dark, f"the stroke starting at {stroke[0]} did not land on the canvas"


def ink_fraction(page: Page) -> float:
    """Share of the canvas's pixels that are not white."""
    return float(
        page.evaluate(
            """() => {
                const pad = document.getElementById("pad");
                const data = pad.getContext("2d").getImageData(0, 0, pad.width, pad.height).data;
                let ink = 0;
                for (let i = 0; i < data.length; i += 4) if (data[i] < 128) ink += 1;
                return ink / (data.length / 4);
            }"""
        )
    )


def is_prediction_post(response: Any) -> bool:
    return bool(
        response.request.method == "POST" and urlsplit(response.url).path == "/v1/predictions"
    )


def shown_result(page: Page, prediction: dict[str, Any], *, with_key: bool = False) -> None:
    """The result panel shows this prediction: digit, confidence, ten bars, the model's input
    (loaded by the <img> itself, or, ``with_key``, fetched with the key and shown from a blob:
    URL)."""
    result = page.locator("#result")
    expect(result).to_have_attribute("data-prediction-id", prediction["id"])
    expect(page.locator("#result-digit")).to_have_text(str(prediction["digit"]))
    expect(page.locator("#result-confidence")).to_have_text(
        f"{prediction['confidence'] * 100:.1f}%"
    )
    bars = page.locator("#bars > li")
    expect(bars).to_have_count(10)
    for digit in range(10):
        label = bars.nth(digit).get_attribute("aria-label") or ""
        match = PERCENT.match(label)
        assert match, label
        assert int(match.group(1)) == digit
        assert float(match.group(2)) == pytest.approx(
            prediction["probabilities"][digit] * 100, abs=0.051
        )
    winner = page.locator("#bars > li.is-winner")
    expect(winner).to_have_count(1)
    expect(winner).to_have_attribute("data-digit", str(prediction["digit"]))
    # The bar lengths follow the probabilities: the winner's is the longest.
    widths = [
        bars.nth(digit).locator(".bar-fill").evaluate("e => e.getBoundingClientRect().width")
        for digit in range(10)
    ]
    assert max(widths) == widths[prediction["digit"]]
    # The winner stands out: its bar and figure are coloured unlike every other bar's.
    style = "e => { const s = getComputedStyle(e); return s.color + '|' + s.backgroundColor; }"
    looks = [
        (
            bars.nth(digit).locator(".bar-fill").evaluate(style),
            bars.nth(digit).locator(".bar-value").evaluate(style),
        )
        for digit in range(10)
    ]
    winner_look = looks[prediction["digit"]]
    for digit, look in enumerate(looks):
        if digit != prediction["digit"]:
            assert look[0] != winner_look[0], (digit, look, winner_look)
            assert look[1] != winner_look[1], (digit, look, winner_look)
    # The 28x28 image the model saw, loaded and shown scaled up without smoothing.
    image = page.locator("#result-input")
    if with_key:
        expect(image).to_have_attribute("src", re.compile(r"^blob:http://"))
    else:
        expect(image).to_have_attribute("src", f"/v1/predictions/{prediction['id']}/input.png")
    page.wait_for_function(
        "() => { const i = document.getElementById('result-input');"
        " return i.complete && i.naturalWidth === 28 && i.naturalHeight === 28; }"
    )
    assert image.evaluate("e => getComputedStyle(e).imageRendering") == "pixelated"
    shown = image.bounding_box()
    assert shown is not None
    assert shown["width"] >= 28 * 3


def settled(page: Page) -> None:
    """Waits until the page has finished with the last upload (one runs at a time)."""
    expect(page.locator("#result-body")).to_have_attribute("aria-busy", "false")
    expect(page.locator("#recognise")).not_to_have_attribute("aria-disabled", "true")


def recognise(page: Page, *, with_key: bool = False) -> dict[str, Any]:
    """Clicks Recognise and returns the prediction the API answered, once it is shown."""
    with page.expect_response(is_prediction_post) as answer:
        page.get_by_role("button", name="Recognise", exact=True).click()
    response = answer.value
    assert response.status == 201, response.text()
    prediction: dict[str, Any] = response.json()
    settled(page)
    shown_result(page, prediction, with_key=with_key)
    return prediction


def upload(page: Page, name: str, data: bytes, mime: str = "image/png") -> Any:
    """Chooses a file with the file input; returns the API's response."""
    with page.expect_response(is_prediction_post) as answer:
        page.locator("#file-input").set_input_files(
            files=[{"name": name, "mimeType": mime, "buffer": data}]
        )
    settled(page)
    return answer.value


def drop(page: Page, name: str, data: bytes, mime: str = "image/png") -> Any:
    """Drops a file onto the drop zone, with the drag events a browser sends."""
    with page.expect_response(is_prediction_post) as answer:
        page.locator("#dropzone").evaluate(
            """(zone, [name, mime, b64]) => {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                const transfer = new DataTransfer();
                transfer.items.add(new File([bytes], name, { type: mime }));
                for (const type of ["dragenter", "dragover", "drop"]) {
                    zone.dispatchEvent(new DragEvent(type, {
                        bubbles: true, cancelable: true, dataTransfer: transfer }));
                }
            }""",
            [name, mime, base64.b64encode(data).decode()],
        )
    settled(page)
    return answer.value


def history_ids(page: Page) -> list[str]:
    return page.locator("#history > li").evaluate_all("items => items.map(i => i.dataset.id)")
