"""Passkeys: register, list and delete them; sign in with one; the documents that let native apps use them."""

from __future__ import annotations

from aiohttp import web

import models
from auth import app_links, passkeys
from auth.ceremonies import relying_party
from auth.sessions import Client
from auth.throttling import request_address
from core.bodies import canonical_uuid, json_response, parse, read_body
from core.errors import Conflict, NotFound
from core.keys import db_key, settings_key
from core.origins import refuse_cross_site_sign_in
from core.shapes import PasskeyAssertion, PasskeyLoginOptions, PasskeyRegistration
from middlewares import current_user, login_required, requires_recent_auth

NO_SUCH_PASSKEY = "You have no passkey with that id."
# The app stores fetch these now and then; an hour keeps a changed setting from waiting long.
APP_LINKS_CACHE = "public, max-age=3600"


@requires_recent_auth
async def register_options(request: web.Request) -> web.Response:
    """POST /passkeys/register/options: creation options for a new passkey of the caller."""
    options = await passkeys.start_registration(request.app, relying_party(request), current_user(request))
    return json_response(options)


@requires_recent_auth
async def register(request: web.Request) -> web.Response:
    """POST /passkeys/register: keep the passkey the authenticator made from those options."""
    credential, name = parse(PasskeyRegistration, await read_body(request))
    user = current_user(request)
    entry = await passkeys.finish_registration(
        request.app, relying_party(request), user, credential, name, Client.of(request)
    )
    return json_response({"id": entry.id, "name": entry.name, "created_at": entry.created_at}, status=201)


@login_required
async def list_passkeys(request: web.Request) -> web.Response:
    """GET /passkeys: the caller's passkeys, oldest first."""
    entries = await models.list_passkeys(request.app[db_key], current_user(request).id)
    return json_response(
        {
            "passkeys": [
                {"id": e.id, "name": e.name, "created_at": e.created_at, "last_used_at": e.last_used_at}
                for e in entries
            ]
        }
    )


@requires_recent_auth
async def delete_passkey(request: web.Request) -> web.Response:
    """DELETE /passkeys/{id}: remove one of the caller's passkeys; 404 for an unknown id or another user's, 409 when it
    is the last way to sign in (as DELETE /identities/passkey?id=)."""
    passkey_id = canonical_uuid(request.match_info["id"])
    user = current_user(request)
    if passkey_id is None:
        raise NotFound(NO_SUCH_PASSKEY)
    try:
        await passkeys.remove(request.app, user, passkey_id, address=request_address(request))
    except (models.NoSuchIdentity, models.UnknownUser):
        raise NotFound(NO_SUCH_PASSKEY) from None
    except models.LastWayIn:
        raise Conflict("That is the last way to sign in to this account: add another first.") from None
    return web.Response(status=204)


async def login_options(request: web.Request) -> web.Response:
    """POST /passkeys/login/options: request options, for one account's passkeys or for any discoverable one."""
    body = await read_body(request) if request.body_exists else {}
    username = parse(PasskeyLoginOptions, body).username
    rp = relying_party(request)
    return json_response(await passkeys.start_sign_in(request.app, rp, username, request_address(request)))


async def login(request: web.Request) -> web.Response:
    """POST /passkeys/login: sign in with the authenticator's assertion; a JWT, a refresh token and the cookie."""
    refuse_cross_site_sign_in(request)  # it sets the login cookie: as /login, never for another site's page
    credential = parse(PasskeyAssertion, await read_body(request)).credential
    issued = await passkeys.sign_in(request.app, relying_party(request), credential, Client.of(request))
    return issued.response(request.app[settings_key], cookie=True)


async def asset_links(request: web.Request) -> web.Response:
    """GET /.well-known/assetlinks.json: the Android apps that may use the site's passkeys."""
    document = app_links.asset_links(request.app[settings_key])
    return json_response(document, headers={"Cache-Control": APP_LINKS_CACHE})


async def apple_app_site_association(request: web.Request) -> web.Response:
    """GET /.well-known/apple-app-site-association: the Apple apps that may use the site's passkeys."""
    document = app_links.apple_app_site_association(request.app[settings_key])
    return json_response(document, headers={"Cache-Control": APP_LINKS_CACHE})
