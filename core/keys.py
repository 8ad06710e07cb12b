"""Typed keys for what the application and each request carry."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web

from auth.credentials import Authenticator, Credential
from auth.password_policy import PasswordPolicy
from auth.passwords import PasswordHasher
from auth.refusals import RefusedAddresses
from auth.tokens import TokenCodec
from chatter.feed import ChattFeed
from chatter.writer import ChattWriter
from core.errors import ApiError
from db.events import Events
from db.pool import Database
from google_signin.certs import GoogleCertificates
from google_signin.oidc import OpenIdDiscovery
from models.records import User
from settings import Settings

settings_key = web.AppKey("settings", Settings)
db_key = web.AppKey("db", Database)
token_codec_key = web.AppKey("token_codec", TokenCodec)
authenticator_key = web.AppKey("authenticator", Authenticator)
http_session_key = web.AppKey("http_session", aiohttp.ClientSession)
google_certs_key = web.AppKey("google_certs", GoogleCertificates)
password_hasher_key = web.AppKey("password_hasher", PasswordHasher)
feed_key = web.AppKey("feed", ChattFeed)
writer_key = web.AppKey("writer", ChattWriter)
google_discovery_key = web.AppKey("google_discovery", OpenIdDiscovery)
refused_addresses_key = web.AppKey("refused_addresses", RefusedAddresses)
events_key = web.AppKey("events", Events)
password_policy_key = web.AppKey("password_policy", PasswordPolicy)

# The caller, filled by the auth middleware before any view runs; None when anonymous.
user_key: web.RequestKey[User | None] = web.RequestKey("user")
# How the caller authenticated (for logout); None when anonymous.
credential_key: web.RequestKey[Credential | None] = web.RequestKey("credential")
# Why a presented credential was not accepted ("invalid", "csrf" or "ambiguous"), for the 401/403 the guards give.
auth_problem_key = web.RequestKey("auth_problem", str)
# The body's fields (or why it could not be read), kept so the middleware and the view read it once between them.
body_key: web.RequestKey[dict[str, Any] | ApiError] = web.RequestKey("body")
