"""The route table: every endpoint, its method and its view, in one place."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from views import (
    accounts,
    admin,
    audit,
    chatter,
    docs,
    email,
    google,
    google_web,
    health,
    identities,
    jwks,
    me,
    page,
    passkeys,
    passwords,
    refresh,
    sessions,
    step_up,
    totp,
)

View = Callable[[web.Request], Awaitable[web.StreamResponse]]

# (method, path, view); paths are served with and without the trailing slash.
ROUTES: list[tuple[str, str, View]] = [
    ("GET", "/getchatts/", chatter.get_chatts),
    ("GET", "/chatts", chatter.list_chatts),
    ("POST", "/postchatt/", chatter.post_chatt),
    ("POST", "/postauth/", chatter.post_auth),
    ("POST", "/adduser/", google.add_user),
    ("POST", "/register", accounts.register),
    ("POST", "/login", accounts.login),
    ("GET", "/get-user", accounts.get_user),
    ("POST", "/logout", accounts.logout),
    ("POST", "/totp/setup", totp.totp_setup),
    ("POST", "/totp/enable", totp.totp_enable),
    ("DELETE", "/chatts/{id}", chatter.delete_chatt),
    ("POST", "/token/refresh", refresh.refresh),
    ("POST", "/totp/recovery-codes", totp.totp_recovery_codes),
    ("POST", "/totp/disable", totp.totp_disable),
    ("GET", "/audit", audit.list_events),
    ("GET", "/sessions", sessions.list_sessions),
    # Hex and dashes only, so that /sessions/revoke-others is no session id (malformed ids are a 404 either way).
    ("DELETE", "/sessions/{id:[0-9A-Fa-f-]+}", sessions.delete_session),
    ("POST", "/sessions/revoke-others", sessions.revoke_others),
    ("GET", "/identities", identities.list_identities),
    ("POST", "/identities/google", identities.link_google),
    ("POST", "/identities/password", identities.add_password),
    # DELETE /identities/{kind}, one route per kind there is.
    ("DELETE", "/identities/password", identities.remove_password),
    ("DELETE", "/identities/google", identities.unlink_google),
    ("DELETE", "/identities/passkey", identities.remove_passkey),
    ("GET", "/me/export", me.export),
    ("DELETE", "/me", me.delete_account),
    # Ids are digits: anything else names no user (404).
    ("GET", "/admin/users", admin.list_users),
    ("GET", "/admin/users/{id:[0-9]+}", admin.get_user),
    ("PUT", "/admin/users/{id:[0-9]+}/role", admin.set_role),
    ("POST", "/admin/users/{id:[0-9]+}/ban", admin.ban),
    ("DELETE", "/admin/users/{id:[0-9]+}/ban", admin.unban),
    ("GET", "/.well-known/jwks.json", jwks.jwks),
    ("GET", "/auth/google/login", google_web.google_login),
    ("GET", "/auth/google/callback", google_web.google_callback),
    ("POST", "/email", email.set_email),
    ("POST", "/email/verify", email.verify_email),
    ("POST", "/password/forgot", passwords.forgot),
    ("POST", "/password/reset", passwords.reset),
    ("POST", "/password/change", passwords.change),
    ("POST", "/reauthenticate", step_up.reauthenticate),
    ("POST", "/passkeys/register/options", passkeys.register_options),
    ("POST", "/passkeys/register", passkeys.register),
    ("GET", "/passkeys", passkeys.list_passkeys),
    # An id is a UUID: so that /passkeys/login and its neighbours are never taken for one.
    ("DELETE", "/passkeys/{id:[0-9a-fA-F-]{36}}", passkeys.delete_passkey),
    ("POST", "/passkeys/login/options", passkeys.login_options),
    ("POST", "/passkeys/login", passkeys.login),
    ("GET", "/.well-known/assetlinks.json", passkeys.asset_links),
    ("GET", "/.well-known/apple-app-site-association", passkeys.apple_app_site_association),
    # operations, docs and the web page
    ("GET", "/healthz", health.healthz),
    ("GET", "/readyz", health.readyz),
    ("GET", "/metrics", health.metrics_view),
    ("GET", "/openapi.json", docs.openapi_json),
    ("GET", "/docs", docs.docs_page),
    ("GET", "/", page.index),
    ("GET", "/config.json", page.page_config),
    ("GET", "/account", page.account),
    ("POST", "/totp/qr", page.totp_qr),
]


def add_routes(app: web.Application) -> None:
    """Register every route of the table, with and without its trailing slash."""
    for method, path, view in ROUTES:
        stripped = path.rstrip("/")
        for variant in {stripped, stripped + "/"} if stripped else {"/"}:
            app.router.add_route(method, variant, view)
    docs.add_static_routes(app)
