"""The web page and the API documents with API keys, in a real headless Chromium against a real
``mnist-api serve`` that needs them (``secured_server``: two workers, keys trusted for 1 s).

A person signs in with a key, as they would: the page asks for it once, checks it, keeps it in
the tab's sessionStorage and sends it in a header, never in an address. Each key sees its own
history; a revoked key sends the person back to the form with a reason. Every page, on both
servers, runs under the service's Content-Security-Policy without a single violation.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Route,
    expect,
)

from tests.browser.pages import (
    DESKTOP,
    ONE,
    PHONE,
    draw,
    history_ids,
    recognise,
    settled,
    shown_result,
    upload,
)
from tests.fixtures.servers import LiveServer, SecuredServer, mnist_api

pytestmark = pytest.mark.browser

STORAGE_KEY = "mnist-api-key"  # where js/session.js keeps the key, in sessionStorage
WRONG_KEY = "mnist_0123456789ab_" + "A" * 43  # well formed, but no such key
# ReDoc's logo, from its maker's CDN (see test_docs). ReDoc 2.5.4 always adds this <img>, and the
# service's policy (img-src 'self' data: blob:) refuses it, as it should: ReDoc then hides it.
# That one refusal is the only violation tolerated, and only on /redoc.
BRANDING = "https://cdn.redoc.ly/redoc/logo-mini.svg"
# Reports an init script makes of every Content-Security-Policy violation, before any of the
# page's own scripts run.
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(
    `${e.violatedDirective} blocked ${e.blockedURI || "(inline)"}`
      + ` at ${e.sourceFile}:${e.lineNumber}`
  );
});
"""


@dataclass
class Watch:
    """What a browser context did: every request, and anything that went wrong (a page error, a
    console error, a CSP violation, a request that left the service)."""

    host: str
    requests: list[Request] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    tolerated: list[str] = field(default_factory=list)  # ReDoc's logo refused, on /redoc

    def guard(self, route: Route) -> None:
        url = route.request.url
        scheme = urlsplit(url).scheme
        if scheme in ("data", "blob") or urlsplit(url).netloc == self.host:
            route.continue_()
            return
        if url != BRANDING:
            self.problems.append(f"request outside the service: {url}")
        route.abort()

    @staticmethod
    def is_branding(text: str, page_url: str) -> bool:
        return BRANDING in text and urlsplit(page_url).path == "/redoc"

    def on_request(self, request: Request) -> None:
        self.requests.append(request)

    def on_console(self, message: ConsoleMessage) -> None:
        text = message.text
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            if self.is_branding(text, message.page.url if message.page else ""):
                self.tolerated.append(text)
            else:
                self.problems.append(f"CSP: {text}")
        # The browser logs every 4xx/5xx answer; those are expected (a wrong key is a 401).
        elif message.type == "error" and "Failed to load resource" not in text:
            self.problems.append(f"console error: {text}")

    def attach(self, context: BrowserContext) -> None:
        context.route("**/*", self.guard)
        context.add_init_script(CSP_LISTENER)
        context.on("request", self.on_request)
        context.on("console", self.on_console)
        context.on("weberror", lambda error: self.problems.append(f"page error: {error.error}"))

    def violations(self, page: Page) -> list[str]:
        """The CSP violations the page saw (its listener's and the console's)."""
        seen: list[str] = page.evaluate("window.__cspViolations || []")
        return [v for v in seen if not self.is_branding(v, page.url)] + [
            p for p in self.problems if p.startswith("CSP")
        ]


OpenPage = Callable[..., tuple[Page, Watch]]


def new_watched_page(
    browser: Browser, server: LiveServer, contexts: list[BrowserContext], **options: Any
) -> tuple[Page, Watch]:
    options.setdefault("viewport", DESKTOP)
    options.setdefault("reduced_motion", "reduce")
    context = browser.new_context(base_url=server.url, **options)
    contexts.append(context)
    watch = Watch(host=urlsplit(server.url).netloc)
    watch.attach(context)
    return context.new_page(), watch


@pytest.fixture
def open_secured(browser: Browser, secured_server: SecuredServer) -> Iterator[OpenPage]:
    """Opens ``/`` of the secured server in a fresh browser context (a new tab: nothing in its
    sessionStorage); fails the test on anything its Watch caught."""
    contexts: list[BrowserContext] = []
    watches: list[Watch] = []

    def _open(**options: Any) -> tuple[Page, Watch]:
        page, watch = new_watched_page(browser, secured_server, contexts, **options)
        watches.append(watch)
        page.goto("/", wait_until="networkidle")
        return page, watch

    yield _open
    for context in contexts:
        context.close()
    problems = [problem for watch in watches for problem in watch.problems]
    assert not problems, problems


# ---------------------------------------------------------------------------- helpers


def key_id(secret: str) -> str:
    """The public id of a key: the 12 hex digits after ``mnist_``."""
    return secret.split("_")[1]


def stored_key(page: Page) -> str | None:
    value: str | None = page.evaluate(f"sessionStorage.getItem({STORAGE_KEY!r})")
    return value


def asks_for_a_key(page: Page) -> None:
    """The page shows the key form, and nothing of the app."""
    expect(page.get_by_role("heading", level=2, name="Enter your API key")).to_be_visible()
    expect(page.get_by_label("API key", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.locator("#app")).to_be_hidden()
    expect(page.locator("#keybar")).to_be_hidden()


def sign_in(page: Page, secret: str, name: str) -> None:
    """Enters a key in the form; the page checks it and shows itself for that key."""
    field = page.get_by_label("API key", exact=True)
    field.fill(secret)
    with page.expect_response(lambda r: urlsplit(r.url).path == "/v1/keys/me") as answer:
        page.get_by_role("button", name="Sign in").click()
    assert answer.value.status == 200, answer.value.text()
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#signin")).to_be_hidden()
    expect(page.locator("#key-name")).to_have_text(name)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(field).to_have_value("")  # the key is not left in the page
    assert stored_key(page) == secret
    page.wait_for_load_state("networkidle")


def thumbnails_from_blobs(page: Page, ids: list[str]) -> None:
    """Each of these history items shows its image, fetched with the key (a blob: URL)."""
    for prediction_id in ids:
        thumb = page.locator(f'#history > li[data-id="{prediction_id}"] img.thumb')
        thumb.scroll_into_view_if_needed()
        expect(thumb).to_have_attribute("src", re.compile(r"^blob:http://"))
        thumb.evaluate("i => i.decode()")
        assert thumb.evaluate("i => i.naturalWidth") > 0


def key_sent_only_in_headers(watch: Watch, secret: str) -> None:
    """Every API call carried the key in Authorization (the form's check too), and no address
    the page asked for holds it, or any part of it."""
    assert watch.requests
    secret_part = secret.split("_")[2]
    for request in watch.requests:
        assert secret_part not in request.url, request.url
        assert key_id(secret) not in request.url, request.url
    api_calls = [r for r in watch.requests if urlsplit(r.url).path.startswith("/v1/")]
    with_key = [r for r in api_calls if r.headers.get("authorization") == f"Bearer {secret}"]
    others = [r for r in api_calls if r not in with_key]
    # Only the first question (does the service need a key?) and the checks of the keys that
    # were refused go without this key.
    assert all(urlsplit(r.url).path == "/v1/keys/me" for r in others), [r.url for r in others]
    paths = {urlsplit(r.url).path for r in with_key}
    assert "/v1/predictions" in paths
    assert any(p.endswith("/input.png") for p in paths), paths
    assert any(p.endswith("/image") for p in paths), paths


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


# ---------------------------------------------------------------------------- tests


def test_sign_in_recognise_and_history(
    open_secured: OpenPage,
    secured_server: SecuredServer,
    golden: dict[int, bytes],
    shots: Path,
) -> None:
    """(a) The page asks for a key, refuses a wrong one with a readable message, accepts a real
    one; a drawn and an uploaded digit are recognised, the model's input and the thumbnails
    show from blob: URLs; the key is in sessionStorage, never in localStorage or an address."""
    secret = secured_server.key("laptop", "--rate", "200/s")
    page, watch = open_secured()
    asks_for_a_key(page)
    field = page.get_by_label("API key", exact=True)
    expect(field).to_be_focused()
    assert field.get_attribute("type") == "password"
    assert field.get_attribute("autocomplete") == "off"
    assert field.get_attribute("name") is None  # a form sent without JavaScript carries no key
    page.screenshot(path=shots / "12-key-prompt.png", full_page=True)

    # Nothing typed, a malformed key, an unknown key: each explained, the field marked invalid.
    page.get_by_role("button", name="Sign in").click()
    error = page.locator("#signin").get_by_role("alert")
    expect(error).to_contain_text("Enter your API key.")
    expect(field).to_be_focused()
    field.fill("let me in")
    page.keyboard.press("Enter")  # the form is sent with Enter too
    expect(error).to_contain_text("That key was not accepted. The API key is malformed")
    field.fill(WRONG_KEY)
    with page.expect_response(lambda r: urlsplit(r.url).path == "/v1/keys/me") as answer:
        page.get_by_role("button", name="Sign in").click()
    assert answer.value.status == 401
    expect(error).to_have_text("That key was not accepted. The API key is not valid.")
    expect(field).to_have_attribute("aria-invalid", "true")
    assert "signin-error" in (field.get_attribute("aria-describedby") or "")
    assert "{" not in error.inner_text()
    assert stored_key(page) is None
    asks_for_a_key(page)
    page.screenshot(path=shots / "13-key-rejected.png", full_page=True)

    sign_in(page, secret, "laptop")
    expect(error).to_be_hidden()
    expect(page.locator("#status")).to_have_text("Signed in with the API key laptop.")
    expect(page.get_by_role("heading", level=2, name="Draw a digit")).to_be_focused()
    expect(page.locator("#history-empty")).to_be_visible()  # a new key has no history
    assert page.evaluate("localStorage.length") == 0

    draw(page, ONE)
    drawn = recognise(page, with_key=True)
    assert drawn["digit"] == 1, drawn["probabilities"]
    assert drawn["owner"] == key_id(secret)
    response = upload(page, "three.png", golden[3])
    assert response.status == 201, response.text()
    uploaded = response.json()
    shown_result(page, uploaded, with_key=True)
    assert history_ids(page) == [uploaded["id"], drawn["id"]]
    thumbnails_from_blobs(page, [uploaded["id"], drawn["id"]])
    page.locator("#result").scroll_into_view_if_needed()
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=shots / "14-signed-in.png", full_page=True)

    # A reload keeps the key (the same tab) and shows the same history, with no form.
    page.reload(wait_until="networkidle")
    expect(page.locator("#key-name")).to_have_text("laptop")
    expect(page.locator("#signin")).to_be_hidden()
    expect(page.locator("#history > li")).to_have_count(2)
    thumbnails_from_blobs(page, [uploaded["id"], drawn["id"]])
    # A correction is sent with the key as well.
    item = page.locator(f'#history > li[data-id="{drawn["id"]}"]')
    with page.expect_response(lambda r: r.request.method == "PUT") as answer:
        item.get_by_role("button", name="Label as 7").click()
    assert answer.value.status == 200
    expect(item.locator(".badge-label")).to_have_text("labelled 7")
    assert secret not in page.content()

    key_sent_only_in_headers(watch, secret)

    # Another tab of the same browser starts without the key: sessionStorage is the tab's.
    other = page.context.new_page()
    other.goto("/", wait_until="networkidle")
    asks_for_a_key(other)
    other.close()

    # Sign out forgets the key and everything shown for it.
    page.get_by_role("button", name="Sign out").click()
    asks_for_a_key(page)
    assert stored_key(page) is None
    expect(page.locator("#history > li")).to_have_count(0)
    expect(page.locator("#result-body")).to_be_hidden()
    assert page.locator("#result-input").get_attribute("src") is None
    expect(page.locator("#status")).to_have_text(re.compile("Signed out"))
    expect(field).to_be_focused()


def test_phone_layout_with_a_key(
    open_secured: OpenPage, secured_server: SecuredServer, shots: Path
) -> None:
    """(a) On a 375x667 phone the form and the signed-in page fit the width; signed in, the pad
    and its buttons still fit the first screen."""
    secret = secured_server.key("phone", "--rate", "200/s")
    page, _ = open_secured(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)

    def no_sideways_scroll() -> None:
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], width

    asks_for_a_key(page)
    no_sideways_scroll()
    button = page.get_by_role("button", name="Sign in").bounding_box()
    assert button is not None
    assert button["y"] + button["height"] <= PHONE["height"], button  # no scrolling to sign in
    page.screenshot(path=shots / "15-phone-key-prompt.png")

    sign_in(page, secret, "phone")
    page.evaluate("window.scrollTo(0, 0)")
    no_sideways_scroll()
    keybar = page.locator("#keybar").bounding_box()
    assert keybar is not None
    assert keybar["x"] >= 0
    assert keybar["x"] + keybar["width"] <= PHONE["width"]
    recognise_button = page.get_by_role("button", name="Recognise", exact=True).bounding_box()
    assert recognise_button is not None
    assert recognise_button["y"] + recognise_button["height"] <= PHONE["height"], recognise_button
    page.screenshot(path=shots / "16-phone-signed-in.png")
    draw(page, ONE)
    prediction = recognise(page, with_key=True)
    assert prediction["digit"] == 1, prediction["probabilities"]
    no_sideways_scroll()
    page.screenshot(path=shots / "17-phone-signed-in-full-page.png", full_page=True)


def test_two_keys_see_only_their_own_history(
    open_secured: OpenPage, secured_server: SecuredServer, golden: dict[int, bytes]
) -> None:
    """(b) Two people with two keys, in two browsers: each history holds that key's predictions
    only, as the API says, and neither can see the other's."""
    alice = secured_server.key("alice", "--rate", "200/s")
    bob = secured_server.key("bob", "--rate", "200/s")
    page_a, _ = open_secured()
    page_b, _ = open_secured()
    sign_in(page_a, alice, "alice")
    sign_in(page_b, bob, "bob")
    made_a = [upload(page_a, f"{d}.png", golden[d]).json()["id"] for d in (3, 5)]
    made_b = [upload(page_b, f"{d}.png", golden[d]).json()["id"] for d in (4,)]

    for page, secret, mine, theirs in (
        (page_a, alice, made_a, made_b),
        (page_b, bob, made_b, made_a),
    ):
        page.reload(wait_until="networkidle")
        shown = history_ids(page)
        listed = httpx.get(
            f"{secured_server.url}/v1/predictions", headers=bearer(secret), timeout=30
        ).raise_for_status()
        assert shown == [item["id"] for item in listed.json()["items"]]
        assert shown == list(reversed(mine))
        assert not set(theirs) & set(shown)
        thumbnails_from_blobs(page, mine)
        # Even asked for directly, another key's prediction does not exist for this one.
        status = page.evaluate(
            """async ([id, key]) => (await fetch(`/v1/predictions/${id}/image`,
                { headers: { Authorization: `Bearer ${key}` } })).status""",
            [theirs[0], secret],
        )
        assert status == 404


def test_a_revoked_key_is_asked_for_again(
    open_secured: OpenPage, secured_server: SecuredServer, golden: dict[int, bytes], shots: Path
) -> None:
    """(c) Once an administrator revokes the key, the page's next call (after the 1 s that
    workers trust a key) brings back the form, saying why, and forgets the key."""
    secret = secured_server.key("soon revoked", "--rate", "200/s")
    page, _ = open_secured()
    sign_in(page, secret, "soon revoked")
    first = upload(page, "two.png", golden[2])
    assert first.status == 201

    revoked = mnist_api(secured_server.env, "keys", "revoke", key_id(secret))
    assert revoked.returncode == 0, revoked.stderr
    # Workers trust a key they have read for 1 s: until then uploads may still work. The first
    # call refused (the upload, or the fetch of an image after it) brings back the form.
    deadline = time.monotonic() + 10
    form = page.locator("#signin")
    while not form.is_visible():
        assert time.monotonic() < deadline, "the revoked key was still accepted after 10 s"
        page.wait_for_timeout(300)
        status = upload(page, "two.png", golden[2]).status
        assert status in (201, 401), status

    asks_for_a_key(page)
    error = page.locator("#signin").get_by_role("alert")
    expect(error).to_have_text(
        "Your API key is no longer accepted. The API key was revoked. Enter another key to go on."
    )
    expect(page.get_by_label("API key", exact=True)).to_be_focused()
    assert stored_key(page) is None
    expect(page.locator("#history > li")).to_have_count(0)
    page.screenshot(path=shots / "18-key-revoked.png", full_page=True)

    # A reload does not bring the revoked key back; a new key works at once.
    page.reload(wait_until="networkidle")
    asks_for_a_key(page)
    expect(page.locator("#signin").get_by_role("alert")).to_be_hidden()
    replacement = secured_server.key("replacement", "--rate", "200/s")
    sign_in(page, replacement, "replacement")
    expect(page.locator("#history-empty")).to_be_visible()
    assert upload(page, "two.png", golden[2]).status == 201
    expect(page.locator("#history > li")).to_have_count(1)


def test_missing_scope_is_readable(
    open_secured: OpenPage, secured_server: SecuredServer, golden: dict[int, bytes]
) -> None:
    """A key that may only read: its history shows, and an upload says what the key lacks."""
    secret = secured_server.key("reader", "--scopes", "read", "--rate", "200/s")
    page, _ = open_secured()
    sign_in(page, secret, "reader")
    expect(page.locator("#history-empty")).to_be_visible()
    response = upload(page, "three.png", golden[3])
    assert response.status == 403
    alert = page.locator("#alert")
    expect(alert).to_have_text(
        "Not allowed with this API key This API key lacks the predict scope."
    )
    expect(page.locator("#keybar")).to_be_visible()  # still signed in
    assert stored_key(page) == secret


def test_rate_limit_is_readable(
    open_secured: OpenPage, secured_server: SecuredServer, golden: dict[int, bytes]
) -> None:
    """Over its key's rate limit, the page says how long to wait, in words."""
    # Two requests at once, then one every 10 s: the check and the history use them up.
    secret = secured_server.key("slow", "--rate", "0.1/s", "--burst", "2")
    page, _ = open_secured()
    sign_in(page, secret, "slow")
    response = upload(page, "three.png", golden[3])
    assert response.status == 429
    seconds = int(response.headers["retry-after"])
    assert 1 <= seconds <= 10
    alert = page.locator("#alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text(re.compile(r"Too many requests — try again in \d+ s"))
    expect(alert).to_contain_text("This API key may make 0.1 requests a second (bursts of 2).")
    expect(page.locator("#keybar")).to_be_visible()  # still signed in: the key is fine
    assert stored_key(page) == secret
    settled(page)


def test_swagger_ui_authorize(
    browser: Browser,
    secured_server: SecuredServer,
    golden: dict[int, bytes],
    tmp_path: Path,
    shots: Path,
) -> None:
    """(d) At /docs, Authorize with the key (bearerAuth), then "Try it out": GET /v1/keys/me
    answers 200 and an upload 201, shown in the page; before that, the service says 401."""
    secret = secured_server.key("swagger", "--rate", "200/s")
    contexts: list[BrowserContext] = []
    try:
        page, watch = new_watched_page(browser, secured_server, contexts)
        page.goto("/docs", wait_until="networkidle")
        me = page.locator("#operations-keys-get_current_key")
        expect(me).to_be_visible()
        me.locator(".opblock-summary").click()
        me.get_by_role("button", name="Try it out").click()
        with page.expect_response(lambda r: r.url.endswith("/v1/keys/me")) as answer:
            me.get_by_role("button", name="Execute").click()
        assert answer.value.status == 401
        status = me.locator(".live-responses-table tbody .response-col_status").first
        expect(status).to_contain_text("401")

        page.locator(".auth-wrapper").get_by_role("button", name="Authorize").click()
        dialog = page.locator(".modal-ux")
        expect(dialog).to_be_visible()
        scheme = dialog.locator(".auth-container").filter(has_text="bearerAuth")
        expect(scheme).to_be_visible()
        scheme.locator("input").fill(secret)
        scheme.get_by_role("button", name="Apply credentials").click()  # its "Authorize"
        expect(scheme.get_by_role("heading", name="Authorized")).to_be_visible()
        expect(scheme.get_by_role("button", name="Remove authorization")).to_be_visible()
        scheme.get_by_role("button", name="Close").click()
        expect(dialog).to_be_hidden()
        expect(page.locator(".auth-wrapper .authorize")).to_have_class(re.compile("locked"))

        with page.expect_response(lambda r: r.url.endswith("/v1/keys/me")) as answer:
            me.get_by_role("button", name="Execute").click()
        assert answer.value.status == 200
        assert answer.value.request.headers.get("authorization") == f"Bearer {secret}"
        expect(status).to_contain_text("200")
        body = me.locator(".live-responses-table tbody .response-col_description").first
        expect(body).to_contain_text('"name": "swagger"')

        create = page.locator("#operations-predictions-create_prediction")
        create.locator(".opblock-summary").click()
        create.get_by_role("button", name="Try it out").click()
        digit = tmp_path / "seven.png"
        digit.write_bytes(golden[7])
        create.locator('input[type="file"]').set_input_files(digit)
        with page.expect_response(lambda r: r.url.endswith("/v1/predictions")) as answer:
            create.get_by_role("button", name="Execute").click()
        assert answer.value.status == 201
        assert answer.value.json()["owner"] == key_id(secret)
        shown = create.locator(".live-responses-table tbody .response-col_status").first
        expect(shown).to_contain_text("201")
        shown.scroll_into_view_if_needed()
        page.screenshot(path=shots / "19-swagger-ui-authorized.png")
        for request in watch.requests:
            assert secret.split("_")[2] not in request.url
        assert not watch.problems, watch.problems
    finally:
        for context in contexts:
            context.close()


@pytest.mark.parametrize("path", ["/", "/docs", "/redoc"])
@pytest.mark.parametrize("which", ["auth off", "auth required"])
def test_no_content_security_policy_violation(
    browser: Browser,
    live_server: LiveServer,
    secured_server: SecuredServer,
    golden: dict[int, bytes],
    which: str,
    path: str,
) -> None:
    """(e) Each page runs under the service's Content-Security-Policy (no inline script, no
    inline style on the page) with no violation reported, on both servers; on ``/`` with a
    prediction shown (its images from blob: URLs when a key is needed)."""
    server = secured_server if which == "auth required" else live_server
    contexts: list[BrowserContext] = []
    try:
        page, watch = new_watched_page(browser, server, contexts)
        answer = page.goto(path, wait_until="networkidle")
        assert answer is not None
        assert answer.status == 200
        policy = answer.headers.get("content-security-policy", "")
        assert "script-src 'self'" in policy, policy
        assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
        if path == "/":
            assert "style-src 'self';" in policy, policy
            if server is secured_server:
                asks_for_a_key(page)
                sign_in(page, secured_server.key("csp", "--rate", "200/s"), "csp")
            upload(page, "eight.png", golden[8])
            expect(page.locator("#result-body")).to_be_visible()
            page.wait_for_function(
                "() => document.getElementById('result-input').naturalWidth === 28"
            )
            expect(page.locator("#history > li").first).to_be_visible()
            # Styles set through the CSSOM (the bars' widths) are allowed; no other element has
            # a style attribute.
            styled = page.locator("[style]").evaluate_all("all => all.map(e => e.className)")
            assert set(styled) <= {"bar-fill"}, styled
        elif path == "/docs":
            expect(page.locator("#operations-predictions-create_prediction")).to_be_visible()
        else:
            title = page.locator("h2", has_text="Recognise the digit in an uploaded image").first
            expect(title).to_be_visible()
        page.wait_for_load_state("networkidle")
        assert watch.violations(page) == []
        assert not watch.problems, watch.problems
    finally:
        for context in contexts:
            context.close()


def test_the_watch_sees_a_violation(browser: Browser, live_server: LiveServer) -> None:
    """The check above can fail: an inline script and a style attribute added to ``/`` are
    refused by the policy, and both refusals are seen."""
    contexts: list[BrowserContext] = []
    try:
        page, watch = new_watched_page(browser, live_server, contexts)
        page.goto("/", wait_until="networkidle")
        page.evaluate(
            """() => {
                const script = document.createElement("script");
                script.textContent = "window.inlineRan = true;";
                document.body.append(script);
                document.getElementById("pad").setAttribute("style", "border-color: red");
            }"""
        )
        page.wait_for_function("() => window.__cspViolations.length >= 2")
        assert page.evaluate("window.inlineRan") is None
        seen = watch.violations(page)
        assert any(v.startswith("script-src") for v in seen), seen
        assert any(v.startswith("style-src") for v in seen), seen
    finally:
        for context in contexts:
            context.close()
