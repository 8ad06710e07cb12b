"""The page's account section and admins' users table, end to end in headless Chromium.

Google's sign-in script is the one outside party: the browser gets a small stand-in for it (a button that hands the
page an ID token the test's fake Google signed), so the page's own code signs in and links accounts for real.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from tests.support.browser import ARTIFACTS, WAIT_MS, chromium_page, needs_chromium
from tests.support.common import CLIENT_ID, bearer, truncate_all
from tests.support.identities import PASSWORD, password_user, rows, whoami

pytestmark = needs_chromium

GIS_CLIENT = "https://accounts.google.com/gsi/client"
# What the page uses of Google Identity Services: initialize() with a callback, renderButton(); the button answers
# with whatever ID token the test put in window.nextIdToken.
GIS_STAND_IN = """
window.google = { accounts: { id: {
  initialize(config) { window.gisConfig = config; },
  renderButton(parent) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "gis-stand-in";
    b.textContent = "Continue with Google";
    b.addEventListener("click", () => window.gisConfig.callback({ credential: window.nextIdToken }));
    parent.replaceChildren(b);
  },
  prompt() {},
} } };
"""


@pytest.fixture
async def browser_page():
    async with chromium_page() as (page, errors):
        await page.route(
            GIS_CLIENT, lambda route: route.fulfill(status=200, content_type="text/javascript", body=GIS_STAND_IN)
        )
        yield page, errors


async def google_button(page, where, google, sub, **claims):
    """Click the Google button in `where` with an ID token for `sub`."""
    token = google.id_token(client_id=CLIENT_ID, sub=sub, **claims)
    await page.evaluate("token => { window.nextIdToken = token; }", token)
    await page.locator(f"{where} button.gis-stand-in").click()


async def test_account_ways_in_export_and_deletion(make_client, browser_page, google):
    page, errors = browser_page
    client = await make_client(cookie_secure=False)
    await truncate_all(client.app)
    await page.goto(str(client.make_url("/")))
    assert await page.is_hidden("#my-account")

    # Signed in with Google: one way in, which cannot be removed.
    await page.locator("#google-button button.gis-stand-in").wait_for(timeout=WAIT_MS)
    await google_button(page, "#google-button", google, "g-gina", name="Gina Google", email="gina@example.com")
    await page.locator("#whoami-name", has_text="Gina Google").wait_for(timeout=WAIT_MS)
    ways = page.locator("#identities-list li")
    await page.locator("#identities-list li", has_text="gina@example.com").wait_for(timeout=WAIT_MS)
    assert await ways.count() == 1 and await page.locator("#identities-list button.remove").count() == 0
    assert await page.is_hidden("#admin")

    # Add a password: the login name is the account's name from now on.
    await page.fill("#add-password-form [name=username]", "gina")
    await page.fill("#add-password-form [name=password]", PASSWORD)
    await page.click("#add-password-form button[type=submit]")
    await page.locator("#whoami-name", has_text="gina").wait_for(timeout=WAIT_MS)
    await page.locator("#identities-list li[data-kind=password]").wait_for(timeout=WAIT_MS)
    await page.locator("#add-password-form").wait_for(state="hidden", timeout=WAIT_MS)

    # Link a second Google account with the button in the account section; one already a user of its own is refused.
    other = await client.post(
        "/adduser/", json={"clientID": CLIENT_ID, "idToken": google.id_token(client_id=CLIENT_ID, sub="g-taken")}
    )
    assert other.status == 200
    await google_button(page, "#link-google-button", google, "g-taken")
    await page.locator("#status", has_text="already a user of its own").wait_for(timeout=WAIT_MS)
    await google_button(page, "#link-google-button", google, "g-work", email="gina@work.example")
    await page.locator("#identities-list li", has_text="gina@work.example").wait_for(timeout=WAIT_MS)
    assert await ways.count() == 3
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "account.png"), full_page=True)

    # Remove the first Google account.
    await page.locator("#identities-list li", has_text="gina@example.com").locator("button.remove").click()
    await page.locator("#identities-list li", has_text="gina@example.com").wait_for(state="detached", timeout=WAIT_MS)
    assert await ways.count() == 2

    # Export: a download of the whole document.
    await page.fill("#post-message", "mine")
    await page.click("#post-form button[type=submit]")
    await page.locator("#chatts li", has_text="mine").wait_for(timeout=WAIT_MS)
    async with page.expect_download(timeout=WAIT_MS) as download_info:
        await page.click("#export-account")
    download = await download_info.value
    assert download.suggested_filename == "chatterd-export.json"
    exported = orjson.loads(await asyncio.to_thread(Path(await download.path()).read_bytes))
    assert exported["profile"]["username"] == "gina"
    assert [i["kind"] for i in exported["identities"]] == ["password", "google"]
    assert [c["message"] for c in exported["chatts"]] == ["mine"]

    # Delete the account: the page signs out, the chatt stays under "[deleted]".
    (user_id,) = (await rows(client, "SELECT id FROM users WHERE username = 'gina'"))[0]
    await page.click("#delete-account-form button[type=submit]")  # the box is not ticked: the browser refuses
    assert await rows(client, "SELECT count(*) FROM users WHERE id = %s", user_id) == [(1,)]
    await page.check("#delete-account-form [name=sure]")
    await page.click("#delete-account-form button[type=submit]")
    await page.locator("#status", has_text="account is deleted").wait_for(timeout=WAIT_MS)
    await page.locator("#login-form").wait_for(state="visible", timeout=WAIT_MS)
    assert await page.is_hidden("#my-account")
    assert await rows(client, "SELECT count(*) FROM users WHERE id = %s", user_id) == [(0,)]
    await page.reload()  # (the page appends new chatts; it does not re-read the ones it shows)
    await page.locator("#chatts li", has_text="mine").locator(".who", has_text="[deleted]").wait_for(timeout=WAIT_MS)
    assert not errors, errors


async def test_admins_search_change_roles_and_ban(make_client, browser_page):
    page, errors = browser_page
    client = await make_client(google_client_ids=(), cookie_secure=False, signup_max_per_address=100)
    await truncate_all(client.app)
    await password_user(client, "boss", role="admin")
    ann = await password_user(client, "annabel")
    for n in range(22):
        await password_user(client, f"extra{n:02d}")
    await page.goto(str(client.make_url("/")))
    await page.fill("#login-form [name=username]", "boss")
    await page.fill("#login-form [name=password]", PASSWORD)
    await page.click("#login-form button[type=submit]")
    rows_shown = page.locator("#users-rows tr")
    await page.locator("#users-rows tr", has_text="extra21").wait_for(timeout=WAIT_MS)
    assert await rows_shown.count() == 20  # a page; the rest behind "More users" (the cursor)
    await page.click("#users-more")
    await page.locator("#users-rows tr", has_text="boss").wait_for(timeout=WAIT_MS)
    assert await rows_shown.count() == 24

    await page.fill("#users-q", "NNAB")
    await page.click("#users-search-form button[type=submit]")
    await page.locator("#users-rows tr", has_text="extra00").wait_for(state="detached", timeout=WAIT_MS)
    row = page.locator("#users-rows tr", has_text="annabel")
    assert await rows_shown.count() == 1

    await row.locator("select.role").select_option("moderator")
    await page.locator("#status", has_text="annabel is now moderator").wait_for(timeout=WAIT_MS)
    assert (await whoami(client, ann["token"]))[1]["role"] == "moderator"

    await row.locator("input.reason").fill("spam")
    await row.locator("button.ban-button").click()
    await page.locator("#users-rows tr", has_text="annabel").locator("button.unban").wait_for(timeout=WAIT_MS)
    assert "no end" in await page.locator("#users-rows tr", has_text="annabel").inner_text()
    refused = await client.post("/login", json={"username": "annabel", "password": PASSWORD})
    assert refused.status == 403 and (await refused.json())["error"] == "banned"
    assert (await whoami(client, ann["token"]))[0] == 401
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "admin-users.png"), full_page=True)

    await page.locator("#users-rows tr", has_text="annabel").locator("button.unban").click()
    await page.locator("#users-rows tr", has_text="annabel").locator("button.ban-button").wait_for(timeout=WAIT_MS)
    assert (await client.post("/login", json={"username": "annabel", "password": PASSWORD})).status == 200
    assert (await client.get("/admin/users", headers=bearer(ann["token"]))).status == 401  # ended by the ban
    assert not errors, errors
