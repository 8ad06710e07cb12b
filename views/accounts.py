"""Password accounts: register, log in (JSON, form, cookie), who am I, log out."""

from __future__ import annotations

from aiohttp import web

import models
from auth import email_addresses, signin
from auth.cookies import clear_login_cookie
from auth.throttling import limit_rate, request_address, request_user_agent
from auth.usernames import username_problem
from core.bodies import accepts_form, json_response, parse, read_body
from core.errors import Conflict, Unprocessable
from core.keys import (
    authenticator_key,
    credential_key,
    db_key,
    password_hasher_key,
    password_policy_key,
    settings_key,
)
from core.origins import refuse_cross_site_sign_in
from core.shapes import Login, Register
from middlewares import current_user, login_required


@accepts_form
async def register(request: web.Request) -> web.Response:
    """POST /register: create a password account."""
    settings = request.app[settings_key]
    data = await read_body(request)
    username, password, email = parse(Register, data)
    if problem := username_problem(username):
        raise Unprocessable(problem)
    if email is not None:
        email_addresses.check_address(email)
    address = request_address(request)
    await limit_rate(
        request.app[db_key],
        address,
        "register",
        limit=settings.signup_max_per_address,
        window=settings.signup_window_seconds,
    )
    await request.app[password_policy_key].check(password, user_inputs=[username, email])
    password_hash = await request.app[password_hasher_key].hash(password)
    if email is not None:
        user = await email_addresses.register(
            request.app, username=username, password_hash=password_hash, email=email, address=address
        )
        return json_response({"id": user.id, "username": user.username}, status=201)
    try:
        user = await models.create_password_user(request.app[db_key], username, password_hash)
    except models.UsernameTaken:
        raise Conflict("That username is already taken.") from None
    return json_response({"id": user.id, "username": user.username}, status=201)


@accepts_form
async def login(request: web.Request) -> web.Response:
    """POST /login: check the password (and one-time code), then issue a JWT in the body and a cookie."""
    refuse_cross_site_sign_in(request)  # login CSRF: another site's form must not sign the browser in
    data = await read_body(request)
    username, password, otp = parse(Login, data)
    issued = await signin.with_password(
        request.app,
        username=username,
        password=password,
        otp=otp,
        address=request_address(request),
        user_agent=request_user_agent(request),
    )
    return issued.response(request.app[settings_key], cookie=True)


@login_required
async def get_user(request: web.Request) -> web.Response:
    """GET /get-user: the caller as this worker's directory knows them (no database query for a JWT)."""
    user = current_user(request)
    return json_response(
        {
            "user": {
                "id": user.id,
                "username": user.username,
                "role": user.role,
                "email": user.email,
                "email_verified": user.email_verified,
            }
        }
    )


@login_required
async def logout(request: web.Request) -> web.Response:
    """POST /logout: the session of the credential used ends everywhere; `?everywhere=true` ends all the user's."""
    user, credential = current_user(request), request[credential_key]
    assert credential is not None  # set with the user by the auth middleware
    authenticator = request.app[authenticator_key]
    address = request_address(request)
    if request.query.get("everywhere", "").lower() in {"1", "true", "yes"}:
        await authenticator.revoke_all(user.id, address=address, reason="logout")
    else:
        await authenticator.logout(credential, user.id, address)
    response = web.Response(status=204)
    clear_login_cookie(response, secure=request.app[settings_key].cookie_secure)
    return response
