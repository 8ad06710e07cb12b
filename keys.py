"""Typed keys for what the application and each request carry."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from db import Database
from models import User
from settings import Settings

settings_key = web.AppKey("settings", Settings)
db_key = web.AppKey("db", Database)

# The caller, filled by the auth middleware before any view runs; None when anonymous.
user_key = web.RequestKey("user", User | None)  # type: ignore[arg-type]
# The parsed JSON body, kept so the middleware and the view parse it once between them.
json_body_key = web.RequestKey("json_body", dict[str, Any])
