"""The page in each state it can be in, end to end in headless Chromium: anonymous (quiet: no 401 asked for), an empty
feed, signed chatts told from anonymous ones, a password user with two-factor sign-in off and on, and a phone-sized
screen. (A Google user, offered no two-factor sign-in: test_browser.py's Google web sign-in.)"""

from __future__ import annotations

import time
from typing import Any

import pyotp
import pytest

from core.keys import db_key
from tests.support.accounts import PASSWORD, signed_in
from tests.support.browser import ARTIFACTS, WAIT_MS, chromium_page, needs_chromium
from tests.support.common import bearer, truncate_all, wait_for

pytestmark = needs_chromium

PHONE = {"width": 390, "height": 844}


@pytest.fixture
async def browser_page():
    """A page whose uncaught errors, console errors and failed answers (4xx, 5xx) are all collected."""
    async with chromium_page() as (page, errors):
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("response", lambda resp: errors.append(f"{resp.status} {resp.url}") if resp.status >= 400 else None)
        yield page, errors


def shot(name: str) -> str:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return str(ARTIFACTS / name)


async def sign_in_on_page(page: Any, username: str, otp: str = "") -> None:
    await page.fill("#login-form [name=username]", username)
    await page.fill("#login-form [name=password]", PASSWORD)
    await page.fill("#login-form [name=otp]", otp)
    await page.click("#login-form button[type=submit]")
    await page.locator("#whoami-name", has_text=username).wait_for(timeout=WAIT_MS)


async def test_an_anonymous_visit_asks_no_401_and_shows_the_empty_feed(make_client, browser_page):
    page, errors = browser_page
    client = await make_client(google_client_ids=())
    await truncate_all(client.app)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url.removeprefix(str(client.make_url("")))))
    await page.goto(str(client.make_url("/")))
    empty = page.locator("#chatts-empty")
    await empty.wait_for(timeout=WAIT_MS)
    assert "No chatts yet" in await empty.inner_text()
    assert await page.is_hidden("#whoami") and await page.is_hidden("#totp")
    assert await page.is_visible("#login-form") and await page.is_visible("#post-username")
    assert "/account" in asked and "/get-user" not in asked  # nobody signed in: nothing to ask /get-user
    icon = await page.get_attribute("link[rel=icon]", "href")
    resp = await client.get(icon)
    assert resp.status == 200 and resp.content_type == "image/svg+xml"
    await page.screenshot(path=shot("state-anonymous-empty.png"), full_page=True)

    # A token this tab kept that no longer works (expired, say): the page just shows it signed out, quietly.
    await page.evaluate("sessionStorage.setItem('chatterd.token', 'expired.or.revoked')")
    await page.reload()
    await page.locator("#login-form").wait_for(timeout=WAIT_MS)
    assert await page.evaluate("sessionStorage.length") == 0
    assert await page.is_hidden("#whoami")

    # The first chatt ends the empty state; messages the API words for programs are put in plain words.
    await page.fill("#post-username", "x" * 255)
    await page.fill("#post-message", "first!")
    await page.click("#post-form button[type=submit]")
    await page.locator("#chatts li", has_text="first!").wait_for(timeout=WAIT_MS)
    assert await page.is_hidden("#chatts-empty")
    assert await page.get_attribute("#chatts li", "class") == "anonymous"
    assert not errors, errors


async def test_signed_chatts_are_told_from_anonymous_ones(make_client, browser_page):
    page, errors = browser_page
    client = await make_client(google_client_ids=(), cookie_secure=False)
    await truncate_all(client.app)
    token = await signed_in(client, "ann")
    assert (await client.post("/postauth/", json={"message": "really ann"}, headers=bearer(token))).status == 200
    assert (await client.post("/postchatt/", json={"username": "ann", "message": "someone as ann"})).status == 200
    await page.goto(str(client.make_url("/")))
    real = page.locator("#chatts li", has_text="really ann")
    fake = page.locator("#chatts li", has_text="someone as ann")
    await fake.wait_for(timeout=WAIT_MS)
    assert await real.locator(".who").inner_text() == await fake.locator(".who").inner_text() == "ann"
    assert await real.get_attribute("class") == "signed" and await real.locator(".badge").inner_text() == "signed in"
    assert await fake.get_attribute("class") == "anonymous"
    assert await fake.locator(".badge").inner_text() == "not signed in"
    assert "any name" in await fake.locator(".badge").get_attribute("title")

    # New ones arrive marked too: one posted from the page while signed in, one by anybody through the API.
    await sign_in_on_page(page, "ann")
    await page.fill("#post-message", "from the page")
    await page.click("#post-form button[type=submit]")
    await page.locator("#chatts li.signed", has_text="from the page").wait_for(timeout=WAIT_MS)
    assert (await client.post("/postchatt/", json={"username": "ann", "message": "again not ann"})).status == 200
    await page.locator("#chatts li.anonymous", has_text="again not ann").wait_for(timeout=WAIT_MS)
    await page.screenshot(path=shot("state-signed-and-anonymous.png"), full_page=True)
    assert not errors, errors


async def test_a_password_user_turns_two_factor_on_gets_recovery_codes_and_turns_it_off(make_client, browser_page):
    page, errors = browser_page
    client = await make_client(google_client_ids=(), cookie_secure=False)
    await truncate_all(client.app)
    assert (await client.post("/register", json={"username": "pat", "password": PASSWORD})).status == 201
    await page.goto(str(client.make_url("/")))
    await sign_in_on_page(page, "pat")
    assert await page.inner_text("#whoami-kind") == "with a password"
    await page.locator("#totp-state.off").wait_for(timeout=WAIT_MS)
    assert await page.is_visible("#totp-setup") and await page.is_hidden("#totp-on")
    await page.screenshot(path=shot("state-totp-off.png"), full_page=True)

    await page.click("#totp-setup")
    await page.locator("#totp-details").wait_for(timeout=WAIT_MS)
    totp = pyotp.TOTP(await page.inner_text("#totp-secret"))
    await page.fill("#totp-enable-form [name=otp]", "000000" if totp.now() != "000000" else "111111")
    await page.click("#totp-enable-form button[type=submit]")
    await page.locator("#status", has_text="type the code your authenticator app shows now").wait_for(timeout=WAIT_MS)
    await page.fill("#totp-enable-form [name=otp]", totp.now())
    await page.click("#totp-enable-form button[type=submit]")
    await page.locator("#totp-state.on").wait_for(timeout=WAIT_MS)
    assert await page.is_hidden("#totp-setup") and await page.is_hidden("#totp-details")
    assert "no recovery codes" in await page.inner_text("#recovery-left")

    # Recovery codes: the sign-in is recent, so no prompt; ten are shown once, and they work.
    await page.click("#recovery-codes-new")
    codes = page.locator("#recovery-codes-list li")
    await codes.first.wait_for(timeout=WAIT_MS)
    shown = await codes.all_inner_texts()
    assert len(shown) == 10
    await page.locator("#recovery-left", has_text="10 unused").wait_for(timeout=WAIT_MS)
    await page.screenshot(path=shot("state-totp-on.png"), full_page=True)
    login = await client.post("/login", json={"username": "pat", "password": PASSWORD, "otp": shown[0]})
    assert login.status == 200
    client.session.cookie_jar.clear()

    # Turning it off when the sign-in is an hour old: confirm it's you first (password and the next code), then the
    # recovery code typed in the form turns it off.
    async with client.app[db_key].cursor() as cur:
        await cur.execute("UPDATE sessions SET authenticated_at = now() - interval '1 hour'")
    await page.fill("#totp-disable-form [name=otp]", shown[1])
    await page.click("#totp-disable-form button[type=submit]")
    await page.locator("#reauth").wait_for(state="visible", timeout=WAIT_MS)
    await page.fill("#reauth-form [name=password]", PASSWORD)
    await page.fill("#reauth-form [name=otp]", totp.at(time.time() + 30))
    await page.click("#reauth-form button[type=submit]")
    await page.locator("#totp-state.off").wait_for(timeout=WAIT_MS)
    await page.locator("#status", has_text="Two-factor sign-in is off").wait_for(timeout=WAIT_MS)
    assert await page.is_visible("#totp-setup") and await page.is_hidden("#recovery-codes")
    account = await (await client.get("/account", headers=bearer(await signed_in_token(client, "pat")))).json()
    assert account["totp_enabled"] is False
    # The wrong code typed at set-up (422), and the step-up's question (401 reauth_required): nothing else failed.
    failed = {e for e in errors if e[:3].isdigit()}
    assert failed == {f"422 {client.make_url('/totp/enable')}", f"401 {client.make_url('/totp/disable')}"}, errors
    assert all(e in failed or "Failed to load resource" in e for e in errors), errors


async def signed_in_token(client: Any, username: str) -> str:
    resp = await client.post("/login", json={"username": username, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    client.session.cookie_jar.clear()
    return str((await resp.json())["token"])


async def controls_fit(page: Any, selectors: list[str]) -> None:
    """Each control is shown, and wholly within the phone's width."""
    for selector in selectors:
        box = await page.locator(selector).bounding_box()
        assert box is not None and await page.is_visible(selector), selector
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (selector, box)


async def no_sideways_scrolling(page: Any) -> None:
    width = await page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide on a {PHONE['width']} px screen"
    # The list of chatts scrolls by itself (up and down): nothing in it may need scrolling sideways either.
    inner = await page.evaluate("(list => list.scrollWidth - list.clientWidth)(document.getElementById('chatts'))")
    assert inner <= 0, f"the chatts are {inner} px wider than their list"


async def test_a_phone_sized_screen_has_no_sideways_scrolling(make_client, browser_page):
    page, errors = browser_page
    await page.set_viewport_size(PHONE)
    client = await make_client(google_client_ids=(), cookie_secure=False)
    await truncate_all(client.app)
    # Long words from others must wrap, not widen the page.
    long = {"username": "w" * 255, "message": "https://example.com/" + "a" * 900}
    assert (await client.post("/postchatt/", json=long)).status == 200
    await page.goto(str(client.make_url("/")))
    await page.locator("#chatts li").wait_for(timeout=WAIT_MS)
    await no_sideways_scrolling(page)
    await controls_fit(
        page,
        [
            "#login-form button[type=submit]",
            "#register-form button[type=submit]",
            "#post-username",
            "#post-message",
            "#post-form button[type=submit]",
        ],
    )
    await page.screenshot(path=shot("mobile-anonymous.png"), full_page=True)

    await page.fill("#register-form [name=username]", "phone")
    await page.fill("#register-form [name=password]", PASSWORD)
    await page.click("#register-form button[type=submit]")
    await page.locator("#whoami-name", has_text="phone").wait_for(timeout=WAIT_MS)
    await page.locator("#sessions-list li").wait_for(timeout=WAIT_MS)
    await page.click("#totp-setup")
    await page.locator("#totp-details").wait_for(timeout=WAIT_MS)

    async def qr_drawn() -> bool:  # page.evaluate: wait_for_function's polling would eval(), which the CSP forbids
        return bool(await page.evaluate("document.getElementById('totp-qr').naturalWidth > 0"))

    await wait_for(qr_drawn, timeout=WAIT_MS / 1000, what="the QR code")
    await no_sideways_scrolling(page)
    await controls_fit(
        page,
        [
            "#logout",
            "#totp-enable-form button[type=submit]",
            "#totp-uri",
            "#sessions-list li",
            "#post-message",
            "#post-form button[type=submit]",
        ],
    )
    await page.screenshot(path=shot("mobile-signed-in.png"), full_page=True)
    assert not errors, errors
