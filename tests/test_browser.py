"""End to end in headless Chromium: the page loads, posts a chatt, shows it, and shows others' chatts as they come."""

from __future__ import annotations

from typing import Any

import pyotp
import pytest

from core.keys import db_key
from tests.support.browser import ARTIFACTS, WAIT_MS, chromium_page, needs_chromium
from tests.support.common import CLIENT_ID, truncate_all
from tools.fake_google import CERTS_PATH, DISCOVERY_PATH

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"

pytestmark = needs_chromium


@pytest.fixture
async def browser_page():
    async with chromium_page() as page_and_errors:
        yield page_and_errors


async def register_on_page(page, username: str) -> None:
    """Register an account with the page's form; the page then shows it signed in."""
    await page.fill("#register-form [name=username]", username)
    await page.fill("#register-form [name=password]", "correct horse battery")
    await page.click("#register-form button[type=submit]")
    await page.locator("#whoami-name", has_text=username).wait_for(timeout=WAIT_MS)


async def test_post_a_chatt_from_the_page_and_see_others_arrive(make_client, browser_page):
    page, errors = browser_page
    client = await make_client(google_client_ids=())  # no Google button: it would load Google's script
    await truncate_all(client.app)
    await page.goto(str(client.make_url("/")))
    assert await page.title() == "chatter"
    assert await page.is_hidden("#google")
    assert await page.is_visible("#login-form") and await page.is_visible("#register-form")

    await page.fill("#post-username", "browser")
    await page.fill("#post-message", "hello from chromium")
    await page.click("#post-form button[type=submit]")
    mine = page.locator("#chatts li", has_text="hello from chromium")
    await mine.wait_for(timeout=WAIT_MS)
    assert await mine.locator(".who").inner_text() == "browser"
    assert await page.input_value("#post-message") == ""

    # Someone else posts through the API; the page's polling (GET /getchatts/?after=...) shows it.
    hostile = '<img src=x onerror="window.pwned=1">'
    resp = await client.post("/postchatt/", json={"username": "mobile", "message": hostile})
    assert resp.status == 200
    theirs = page.locator("#chatts li", has_text="onerror")
    await theirs.wait_for(timeout=WAIT_MS)
    assert await theirs.locator(".text").inner_text() == hostile  # shown as text, never as HTML
    assert await page.evaluate("window.pwned") is None
    assert await page.locator("#chatts li").count() == 2

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "chatter-page.png"), full_page=True)
    assert not errors, errors


async def test_docs_page_renders_the_api(make_client, browser_page):
    page, errors = browser_page
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
    client = await make_client()
    await page.goto(str(client.make_url("/docs")))
    await page.locator(".opblock-summary-path", has_text="/getchatts/").first.wait_for(timeout=WAIT_MS)
    assert await page.locator(".opblock").count() >= 19
    # Open an operation and try it: Swagger UI draws its parameters and responses, then calls this server.
    await page.locator(".opblock-summary", has_text="/getchatts/").first.click()
    await page.locator(".try-out__btn").first.click()
    await page.locator(".execute").first.click()
    await page.locator(".live-responses-table .response-col_status", has_text="200").first.wait_for(timeout=WAIT_MS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "docs-page.png"))
    assert not errors, errors
    assert not console, console  # nothing the page's Content-Security-Policy refused, nothing missing


async def test_register_post_signed_in_turn_on_totp_and_log_out(make_client, browser_page):
    page, errors = browser_page
    client = await make_client(google_client_ids=(), cookie_secure=False)
    await truncate_all(client.app)
    await page.goto(str(client.make_url("/")))

    await register_on_page(page, "carol")
    assert await page.is_hidden("#account") and await page.is_hidden("#post-username-label")

    await page.fill("#post-message", "signed in and posting")
    await page.click("#post-form button[type=submit]")
    mine = page.locator("#chatts li", has_text="signed in and posting")
    await mine.wait_for(timeout=WAIT_MS)
    assert await mine.locator(".who").inner_text() == "carol"  # stored under the account, via /postauth/

    await page.click("#totp-setup")
    await page.locator("#totp-details").wait_for(timeout=WAIT_MS)
    await page.wait_for_function("document.getElementById('totp-qr').naturalWidth > 0", timeout=WAIT_MS)
    secret = await page.inner_text("#totp-secret")
    assert (await page.inner_text("#totp-uri")).startswith("otpauth://")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "totp-setup.png"), full_page=True)
    await page.fill("#totp-enable-form [name=otp]", pyotp.TOTP(secret).now())
    await page.click("#totp-enable-form button[type=submit]")
    await page.locator("#status", has_text="Two-factor sign-in is on").wait_for(timeout=WAIT_MS)

    await page.click("#logout")
    await page.locator("#login-form").wait_for(state="visible", timeout=WAIT_MS)
    assert await page.is_hidden("#whoami")

    # Signing in again needs the one-time code now.
    await page.fill("#login-form [name=username]", "carol")
    await page.fill("#login-form [name=password]", "correct horse battery")
    await page.click("#login-form button[type=submit]")
    await page.locator("#status", has_text="one-time code").wait_for(timeout=WAIT_MS)
    assert await page.is_hidden("#whoami")
    assert not errors, errors


async def test_google_web_sign_in_from_the_page(make_client, browser_page, google, google_certs_url):
    page, errors = browser_page
    secret = google.register_client(CLIENT_ID)
    discovery_url = google_certs_url.replace(CERTS_PATH, DISCOVERY_PATH)
    client = await make_client(google_client_secret=secret, google_discovery_url=discovery_url, cookie_secure=False)
    await truncate_all(client.app)
    await page.goto(str(client.make_url("/")))
    link = page.locator("#google-web-link")
    await link.wait_for(timeout=WAIT_MS)
    assert await page.is_hidden("#google")  # the redirect flow needs no Google script on the page

    # To the fake provider, which consents at once, back to the callback, and to the page signed in by cookie.
    failed: list[str] = []
    page.on("response", lambda resp: failed.append(f"{resp.status} {resp.url}") if resp.status >= 400 else None)
    await link.click()
    await page.locator("#whoami-name", has_text="Test User").wait_for(timeout=WAIT_MS)
    assert page.url == str(client.make_url("/"))
    assert await page.evaluate("sessionStorage.length") == 0  # no token for scripts: it is in an HttpOnly cookie
    # How this sign-in was made; and no two-factor offer: the account has no password to guard, Google guards it.
    await page.locator("#whoami-kind", has_text="with Google").wait_for(timeout=WAIT_MS)
    await page.locator("#sessions-list li", has_text="This device").wait_for(timeout=WAIT_MS)
    assert await page.is_hidden("#totp")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "state-google.png"), full_page=True)
    await page.reload()  # found again by the cookie alone
    await page.locator("#whoami-kind", has_text="with Google").wait_for(timeout=WAIT_MS)
    assert await page.is_hidden("#totp") and not failed, failed

    await page.fill("#post-message", "signed in with the Google redirect")
    await page.click("#post-form button[type=submit]")
    mine = page.locator("#chatts li", has_text="signed in with the Google redirect")
    await mine.wait_for(timeout=WAIT_MS)
    assert await mine.locator(".who").inner_text() == "Test User"  # /postauth/ by the cookie, same-origin

    await page.click("#logout")
    await page.locator("#login-form").wait_for(state="visible", timeout=WAIT_MS)
    await page.reload()
    await page.locator("#google-web-link").wait_for(timeout=WAIT_MS)
    assert await page.is_hidden("#whoami")

    google.consent_error = "access_denied"
    await page.click("#google-web-link")
    await page.locator("#status", has_text="access_denied").wait_for(timeout=WAIT_MS)
    assert page.url == str(client.make_url("/"))  # the fragment is gone once shown
    assert not errors, errors


async def test_email_verify_change_password_forget_and_reset_from_the_page(make_client, browser_page, smtp):
    page, errors = browser_page
    client = await make_client(google_client_ids=(), cookie_secure=False, smtp_url=smtp.url())
    await truncate_all(client.app)
    await page.goto(str(client.make_url("/")))

    # Register with an address; the code comes by mail, and verifies it.
    await page.fill("#register-form [name=username]", "dana")
    await page.fill("#register-form [name=password]", "correct horse battery")
    await page.fill("#register-form [name=email]", "dana@example.com")
    await page.click("#register-form button[type=submit]")
    await page.locator("#email-state", has_text="(not verified)").wait_for(timeout=WAIT_MS)
    await page.fill("#verify-form [name=code]", await smtp.code_for("dana@example.com"))
    await page.click("#verify-form button[type=submit]")
    await page.locator("#email-state", has_text="(verified)").wait_for(timeout=WAIT_MS)
    assert await page.is_hidden("#verify-form")

    # Change the password (a weak one is refused, saying why), and the account is told.
    await page.fill("#change-password-form [name=current_password]", "correct horse battery")
    await page.fill("#change-password-form [name=password]", "password1")
    await page.click("#change-password-form button[type=submit]")
    await page.locator("#status", has_text="too easy to guess").wait_for(timeout=WAIT_MS)
    await page.fill("#change-password-form [name=password]", "a new long passphrase")
    await page.click("#change-password-form button[type=submit]")
    await page.locator("#status", has_text="Your password was changed").wait_for(timeout=WAIT_MS)
    await smtp.wait_for_mail("dana@example.com", 2)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "email-and-password.png"), full_page=True)

    # Forget it: a code to the verified address resets it, and the new one signs in.
    await page.click("#logout")
    await page.locator("#forgot-form").wait_for(state="visible", timeout=WAIT_MS)
    await page.fill("#forgot-form [name=account]", "dana@example.com")
    await page.click("#forgot-form button[type=submit]")
    await page.locator("#status", has_text="a code is on its way").wait_for(timeout=WAIT_MS)
    assert await page.input_value("#reset-form [name=account]") == "dana@example.com"
    await page.fill("#reset-form [name=code]", await smtp.code_for("dana@example.com", nth=2))
    await page.fill("#reset-form [name=password]", "yet another passphrase")
    await page.click("#reset-form button[type=submit]")
    await page.locator("#status", has_text="Your password was reset").wait_for(timeout=WAIT_MS)
    await page.fill("#login-form [name=username]", "dana")
    await page.fill("#login-form [name=password]", "yet another passphrase")
    await page.click("#login-form button[type=submit]")
    await page.locator("#whoami-name", has_text="dana").wait_for(timeout=WAIT_MS)
    assert not errors, errors


async def test_where_youre_signed_in_sign_out_one_device_then_every_other(make_client, browser_page):
    page, errors = browser_page
    client = await make_client(google_client_ids=(), cookie_secure=False)
    await truncate_all(client.app)
    account = {"username": "dana", "password": "correct horse battery"}
    assert (await client.post("/register", json=account)).status == 201
    others = {}
    for name, agent in [("phone", "swiftUIChatter/1 CFNetwork/1568.100.1 Darwin/24.0.0"), ("firefox", FIREFOX)]:
        resp = await client.post("/login", json=account, headers={"User-Agent": agent})
        others[name] = {"Authorization": "Bearer " + (await resp.json())["token"]}
    client.session.cookie_jar.clear()

    await page.goto(str(client.make_url("/")))
    await page.fill("#login-form [name=username]", "dana")
    await page.fill("#login-form [name=password]", "correct horse battery")
    await page.click("#login-form button[type=submit]")
    listed = page.locator("#sessions-list li")
    await page.locator("#sessions-list li", has_text="chatter iOS app").wait_for(timeout=WAIT_MS)
    assert await listed.count() == 3
    mine = page.locator("#sessions-list li", has_text="This device")
    assert await mine.count() == 1 and "HeadlessChrome" in await mine.inner_text()
    assert await page.is_visible("#sessions-revoke-others")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "sessions.png"), full_page=True)

    # Sign the phone out: it is gone from the list, and its JWT is refused.
    await page.locator("#sessions-list li", has_text="chatter iOS app").locator("button.sign-out").click()
    await page.locator("#sessions-list li", has_text="chatter iOS app").wait_for(state="detached", timeout=WAIT_MS)
    assert await listed.count() == 2
    assert (await client.get("/get-user", headers=others["phone"])).status == 401
    assert (await client.get("/get-user", headers=others["firefox"])).status == 200

    # Every other device: only this one is left, still signed in.
    await page.click("#sessions-revoke-others")
    await page.locator("#status", has_text="Signed out everywhere else").wait_for(timeout=WAIT_MS)
    await page.locator("#sessions-revoke-others").wait_for(state="hidden", timeout=WAIT_MS)
    assert await listed.count() == 1 and await mine.count() == 1
    assert (await client.get("/get-user", headers=others["firefox"])).status == 401
    await page.fill("#post-message", "still signed in here")
    await page.click("#post-form button[type=submit]")
    posted = page.locator("#chatts li", has_text="still signed in here")
    await posted.wait_for(timeout=WAIT_MS)
    assert await posted.locator(".who").inner_text() == "dana"
    assert not errors, errors


# A platform authenticator as Chrome's DevTools emulate it: built in, keeping passkeys, verifying its user.
VIRTUAL_AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


async def virtual_authenticator(page: Any) -> tuple[Any, str]:
    """Chrome's DevTools session of the page, with a virtual authenticator added to it, and that authenticator's id."""
    devtools = await page.context.new_cdp_session(page)
    await devtools.send("WebAuthn.enable")
    added = await devtools.send("WebAuthn.addVirtualAuthenticator", {"options": VIRTUAL_AUTHENTICATOR})
    return devtools, added["authenticatorId"]


async def add_passkey_on_page(page: Any, name: str) -> Any:
    """Add a passkey named `name` with the page's form; its entry in the list, once it shows."""
    await page.fill("#passkey-add-form [name=name]", name)
    await page.click("#passkey-add-form button[type=submit]")
    entry = page.locator("#passkeys-list li", has_text=name)
    await entry.wait_for(timeout=WAIT_MS)
    return entry


async def test_add_a_passkey_sign_out_and_sign_in_with_it(make_client, browser_page):
    page, errors = browser_page
    client = await make_client(google_client_ids=(), cookie_secure=False)
    await truncate_all(client.app)
    devtools, authenticator = await virtual_authenticator(page)
    # localhost, not 127.0.0.1: an address cannot be a relying party ID, and localhost is a secure context.
    await page.goto(f"http://localhost:{client.server.port}/")
    await page.locator("#passkey-login").wait_for(timeout=WAIT_MS)
    await register_on_page(page, "erin")
    assert await page.is_hidden("#passkey-signin") and await page.is_visible("#passkeys")

    added = await add_passkey_on_page(page, "This Chromium")
    assert "never used" in await added.inner_text()
    [kept] = (await devtools.send("WebAuthn.getCredentials", {"authenticatorId": authenticator}))["credentials"]
    assert kept["isResidentCredential"] and kept["rpId"] == "localhost"

    await page.click("#logout")
    await page.locator("#passkey-login").wait_for(state="visible", timeout=WAIT_MS)
    assert await page.is_hidden("#whoami")
    # Nothing typed: the authenticator offers the passkey it keeps for the site (a discoverable credential).
    await page.click("#passkey-login")
    await page.locator("#whoami-name", has_text="erin").wait_for(timeout=WAIT_MS)
    await page.locator("#status", has_text="Signed in with a passkey").wait_for(timeout=WAIT_MS)
    await page.locator("#sessions-list li", has_text="passkey").wait_for(timeout=WAIT_MS)
    await page.locator("#passkeys-list li", has_text="last used").wait_for(timeout=WAIT_MS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "passkeys.png"), full_page=True)
    assert not errors, errors


async def test_a_sensitive_action_asks_to_confirm_its_you(make_client, browser_page):
    page, errors = browser_page
    client = await make_client(google_client_ids=(), cookie_secure=False)
    await truncate_all(client.app)
    devtools, authenticator = await virtual_authenticator(page)
    await page.goto(f"http://localhost:{client.server.port}/")
    await register_on_page(page, "finn")
    for name in ("First", "Second"):
        await add_passkey_on_page(page, name)
        if name == "First":  # as if made on another device: this authenticator keeps only the second
            await devtools.send("WebAuthn.clearCredentials", {"authenticatorId": authenticator})

    async def sign_in_long_ago() -> None:
        async with client.app[db_key].cursor() as cur:
            await cur.execute("UPDATE sessions SET authenticated_at = now() - interval '1 hour'")

    # With a password: the prompt opens, a wrong password keeps it open, the right one lets the deletion through.
    await sign_in_long_ago()
    await page.locator("#passkeys-list li", has_text="First").locator("button.delete").click()
    await page.locator("#reauth").wait_for(state="visible", timeout=WAIT_MS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "reauth-prompt.png"))
    await page.fill("#reauth-form [name=password]", "not my password")
    await page.click("#reauth-form button[type=submit]")
    await page.locator("#reauth-error", has_text="Wrong").wait_for(timeout=WAIT_MS)
    assert await page.is_visible("#reauth")
    await page.fill("#reauth-form [name=password]", "correct horse battery")
    await page.click("#reauth-form button[type=submit]")
    await page.locator("#passkeys-list li", has_text="First").wait_for(state="detached", timeout=WAIT_MS)
    assert await page.is_hidden("#reauth")

    # With a passkey.
    await sign_in_long_ago()
    await page.locator("#passkeys-list li", has_text="Second").locator("button.delete").click()
    await page.locator("#reauth").wait_for(state="visible", timeout=WAIT_MS)
    await page.click("#reauth-passkey")
    await page.locator("#passkeys-list li", has_text="Second").wait_for(state="detached", timeout=WAIT_MS)

    # Cancelled: nothing is deleted.
    await add_passkey_on_page(page, "Third")
    await sign_in_long_ago()
    await page.locator("#passkeys-list li", has_text="Third").locator("button.delete").click()
    await page.locator("#reauth").wait_for(state="visible", timeout=WAIT_MS)
    await page.click("#reauth-cancel")
    await page.locator("#status", has_text="Cancelled").wait_for(timeout=WAIT_MS)
    assert await page.locator("#passkeys-list li", has_text="Third").count() == 1
    async with client.app[db_key].cursor() as cur:
        await cur.execute("SELECT kind FROM auth_events WHERE event = 'reauthenticate' ORDER BY id")
        assert await cur.fetchall() == [("password",), ("passkey",)]
    assert not errors, errors
