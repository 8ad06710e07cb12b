"""Identities: the ways the caller signs in; link a Google account, add a password, remove one of them."""

from __future__ import annotations

from aiohttp import web

import models
from auth import passkeys
from auth.throttling import request_address
from auth.usernames import username_key, username_problem
from core.bodies import canonical_uuid, json_response, parse, read_body
from core.errors import Conflict, NotFound, Unauthorized, Unprocessable
from core.keys import authenticator_key, db_key, password_hasher_key, password_policy_key
from core.shapes import GOOGLE_ACCOUNTS_PER_USER, AddPassword, AddUser
from google_signin.signin import verify_app_id_token
from middlewares import current_user, login_required, requires_recent_auth

NO_SUCH_IDENTITY = "No such identity."
GONE = "This account no longer exists."


@login_required
async def list_identities(request: web.Request) -> web.Response:
    """GET /identities: the caller's ways to sign in."""
    user = current_user(request)
    return json_response({"identities": await models.list_identities(request.app[db_key], user.id)})


@requires_recent_auth
async def link_google(request: web.Request) -> web.Response:
    """POST /identities/google {clientID, idToken}: link that Google account (checked as /adduser/ checks it), so that
    its sign-ins land in the caller's account; 409 when it is a user of its own. Never by email."""
    user = current_user(request)
    client_id, id_token = parse(AddUser, await read_body(request))
    google = await verify_app_id_token(request.app, client_id=client_id, id_token=id_token)
    db = request.app[db_key]
    try:
        identity_id, new = await models.link_google(
            db,
            user_id=user.id,
            sub=google.sub,
            email=google.email,
            address=request_address(request),
            most=GOOGLE_ACCOUNTS_PER_USER,
        )
    except models.UnknownUser:
        raise Unauthorized(GONE) from None
    except models.IdentityTaken:
        raise Conflict("That Google account is already a user of its own.") from None
    except models.TooManyIdentities:
        raise Conflict(f"At most {GOOGLE_ACCOUNTS_PER_USER} Google accounts can be linked.") from None
    linked = next(i for i in await models.list_identities(db, user.id) if i.get("id") == identity_id)
    return json_response(linked, status=201 if new else 200)


@requires_recent_auth
async def add_password(request: web.Request) -> web.Response:
    """POST /identities/password {username, password}: a login name and password for a Google user."""
    user = current_user(request)
    username, password = parse(AddPassword, await read_body(request))
    if problem := username_problem(username):
        raise Unprocessable(problem)
    await request.app[password_policy_key].check(password, user_inputs=[username, user.email])  # as at /register
    password_hash = await request.app[password_hasher_key].hash(password)
    try:
        await models.add_password(
            request.app[db_key],
            user_id=user.id,
            username=username,
            key=username_key(username),
            password_hash=password_hash,
            address=request_address(request),
        )
    except models.UnknownUser:
        raise Unauthorized(GONE) from None
    except models.HasPassword:
        raise Conflict("This account already has a password.") from None
    except models.UsernameTaken:
        raise Conflict("That username is already taken.") from None
    # The account's name is the login name now: in force here at once (the users row's trigger tells every other).
    request.app[authenticator_key].standing_changed(user.id)
    return json_response({"kind": "password", "username": username}, status=201)


@requires_recent_auth
async def remove_password(request: web.Request) -> web.Response:
    """DELETE /identities/password: the caller no longer signs in with a password (nor has a login name)."""
    return await _remove(request, "password")


@requires_recent_auth
async def unlink_google(request: web.Request) -> web.Response:
    """DELETE /identities/google[?id=]: unlink a Google account (the one named by `id` when there are several)."""
    return await _remove(request, "google")


@requires_recent_auth
async def remove_passkey(request: web.Request) -> web.Response:
    """DELETE /identities/passkey[?id=]: remove a passkey (the one named by `id` when there are several)."""
    return await _remove(request, "passkey")


async def _remove(request: web.Request, kind: str) -> web.Response:
    """DELETE /identities/{kind}: remove a way to sign in; 409 for the last one, 404 for none such."""
    user = current_user(request)
    identity_id = request.query.get("id")
    if identity_id is not None:
        identity_id = canonical_uuid(identity_id)
        if identity_id is None:
            raise NotFound(NO_SUCH_IDENTITY)
    address = request_address(request)
    try:
        if kind == "passkey":  # told to the user, as every passkey removal is
            await passkeys.remove(request.app, user, identity_id, address=address)
        else:
            await models.unlink_identity(
                request.app[db_key], user_id=user.id, kind=kind, identity_id=identity_id, address=address
            )
    except models.UnknownUser:
        raise Unauthorized(GONE) from None
    except models.NoSuchIdentity:
        raise NotFound(NO_SUCH_IDENTITY) from None
    except models.WhichIdentity:
        raise Unprocessable(f"Several {kind} identities are linked: name one with ?id=.") from None
    except models.LastWayIn:
        raise Conflict("That is the last way to sign in to this account: add another first.") from None
    return web.Response(status=204)
