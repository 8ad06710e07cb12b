"""The application factory used alike by gunicorn, adev and the tests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import aiohttp
from aiohttp import web

from auth.activity import SessionActivity
from auth.credentials import Authenticator, RevocationStore
from auth.directory import Directory
from auth.password_policy import PasswordPolicy
from auth.passwords import PasswordHasher
from auth.refusals import RefusedAddresses
from auth.sessions import ended_retention, session_policy
from auth.tokens import TokenCodec
from chatter.feed import ChattFeed
from chatter.writer import ChattWriter
from core import metrics
from core.access_log import AccessLogger
from core.cors import setup_cors
from core.headers import setup_headers
from core.keys import (
    authenticator_key,
    db_key,
    events_key,
    feed_key,
    google_certs_key,
    google_discovery_key,
    http_session_key,
    password_hasher_key,
    password_policy_key,
    refused_addresses_key,
    settings_key,
    token_codec_key,
    writer_key,
)
from core.observability import install_access_redactor, install_malformed_request_filter
from db.connections import ConnectionPool
from db.embedded import EmbeddedPostgres
from db.events import Events, following
from db.migrations import migrate
from db.pool import Database, DatabaseUnavailable, connect_dsn, create_pool
from google_signin.certs import GoogleCertificates
from google_signin.oidc import OpenIdDiscovery
from mail.sender import MailSender, sending
from mail.smtp import LogTransport, SmtpTarget, SmtpTransport, Transport
from middlewares import request_middleware
from settings import Settings
from views import add_routes

logger = logging.getLogger(__name__)

# argon2 threads run at this nice value (0 normal, 19 lowest): a login storm then takes only the CPU the event
# loops leave, and the other requests keep their latency.
HASHING_NICENESS = 15
T = TypeVar("T")


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the pool (starting the embedded Postgres when no DATABASE_URL is set), migrate, and close it all after."""
    settings = app[settings_key]
    loop = asyncio.get_running_loop()
    embedded: EmbeddedPostgres | None = None
    url = settings.database_url
    if url is None:
        embedded = EmbeddedPostgres(settings.var_dir)
        url = await loop.run_in_executor(None, embedded.start)
    try:
        pool = await _connect_with_retry(url, settings)
        try:
            # LISTEN and the migration lock need a session of their own: a direct connection if DATABASE_URL pools.
            direct_dsn = connect_dsn(settings.database_listen_url or url, connect_timeout=settings.db_connect_timeout)
            db = Database(pool, acquire_timeout=settings.db_acquire_timeout, direct_dsn=direct_dsn)
            # The direct connection may fail where the pool's did not (another address); migrating again is safe.
            applied = await _retrying(lambda: migrate(db), DatabaseUnavailable, wait=settings.db_startup_wait)
            if applied:
                logger.info("database migrated: %s", ", ".join(applied))
            app[db_key] = db
            yield
        finally:
            pool.close()
            await pool.wait_closed()
    finally:
        if embedded is not None:
            await loop.run_in_executor(None, embedded.stop)


async def _connect_with_retry(url: str, settings: Settings) -> ConnectionPool:
    return await _retrying(
        lambda: create_pool(
            url,
            minsize=settings.db_pool_min,
            maxsize=settings.db_pool_max,
            connect_timeout=settings.db_connect_timeout,
            statement_timeout=settings.db_statement_timeout,
        ),
        Exception,
        wait=settings.db_startup_wait,
    )


async def _retrying(attempt: Callable[[], Awaitable[T]], retry_on: type[Exception], *, wait: float) -> T:
    """`attempt()` again while it raises `retry_on`, for up to `wait` seconds (DB_STARTUP_WAIT)."""
    deadline = asyncio.get_running_loop().time() + wait
    delay = 0.2
    while True:
        try:
            return await attempt()
        except retry_on as exc:
            if asyncio.get_running_loop().time() + delay > deadline:
                raise DatabaseUnavailable(f"could not reach Postgres: {exc}") from exc
            logger.warning("Postgres not reachable yet (%s); retrying", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def events_ctx(app: web.Application) -> AsyncIterator[None]:
    """Follow the events channel for the life of the app (revocations, users' standing); record sessions' last use."""
    settings = app[settings_key]
    db = app[db_key]
    events = Events(db)
    store = RevocationStore(events, ended_retention(settings))
    directory = Directory(events)
    events.followers.extend([store, directory])
    app[events_key] = events
    activity = SessionActivity(db)
    app[authenticator_key] = Authenticator(
        app[token_codec_key], store, directory, db, activity, session_policy(settings)
    )
    app[feed_key] = ChattFeed(db)
    app[writer_key] = ChattWriter(db)
    try:
        async with following(events):
            yield
    finally:
        await activity.close()


async def google_ctx(app: web.Application) -> AsyncIterator[None]:
    """One HTTP client session for the app, and the Google certificate cache that uses it."""
    settings = app[settings_key]
    timeout = aiohttp.ClientTimeout(total=settings.http_client_timeout)
    async with aiohttp.ClientSession(timeout=timeout, raise_for_status=False) as session:
        app[http_session_key] = session
        app[google_certs_key] = GoogleCertificates(session, settings.google_certs_url)
        app[refused_addresses_key] = RefusedAddresses()
        yield


async def google_web_ctx(app: web.Application) -> AsyncIterator[None]:
    """The cache of Google's OpenID discovery document for web sign-in, on the app's one HTTP session."""
    settings = app[settings_key]
    app[google_discovery_key] = OpenIdDiscovery(
        app[http_session_key], settings.google_discovery_url, timeout=settings.http_client_timeout
    )
    if settings.google_client_secret:
        logger.info("Google web sign-in is on for client %s", settings.web_client_id)
    yield


def _lower_thread_priority() -> None:
    """Make the calling thread yield the CPU to the event loop's thread (Linux sets nice per thread)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)


async def password_ctx(app: web.Application) -> AsyncIterator[None]:
    """Hash passwords on a small pool of low-priority threads, so a login storm cannot starve the other requests;
    judge new passwords on one thread of their own (the strength estimate is not thread-safe)."""
    settings = app[settings_key]
    with (
        ThreadPoolExecutor(
            max_workers=settings.password_threads, thread_name_prefix="argon2", initializer=_lower_thread_priority
        ) as executor,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="password-policy") as policy_executor,
    ):
        app[password_hasher_key] = PasswordHasher(
            time_cost=settings.password_time_cost, memory_cost=settings.password_memory_cost, executor=executor
        )
        app[password_policy_key] = PasswordPolicy(
            executor=policy_executor, session=app[http_session_key], range_url=settings.pwned_passwords_url
        )
        yield


async def mail_ctx(app: web.Application) -> AsyncIterator[None]:
    """This worker's sender of the outbox, woken by the events channel; mail goes to SMTP_URL, or to the log."""
    settings = app[settings_key]
    transport: Transport
    if settings.smtp_url:
        transport = SmtpTransport(SmtpTarget.from_url(settings.smtp_url), ca_file=settings.smtp_ca_file)
    else:
        transport = LogTransport()  # said once per server among the settings' warnings
    events = app[events_key]
    sender = MailSender(
        events,
        transport,
        secret_key=settings.secret_key,
        email_from=settings.email_from,
        retry_seconds=settings.mail_retry_seconds,
        max_attempts=settings.mail_max_attempts,
    )
    events.followers.append(sender)
    async with sending(sender):
        yield


async def announce_ready(app: web.Application) -> None:
    """Log that this process serves; runs after every cleanup context has started."""
    logger.info("chatterd worker %d ready", os.getpid())


async def create_app(settings: Settings | None = None) -> web.Application:
    """Build the chatterd application; it does no I/O until it starts."""
    settings = settings or Settings.from_env()
    settings.log_warnings()
    install_access_redactor()
    install_malformed_request_filter()
    app = web.Application(
        middlewares=[request_middleware],
        client_max_size=settings.max_body_size,
        # aiohttp's keep-alive timer runs from a connection's opening (and from each answer) until a request's headers
        # have all arrived, however slowly they trickle in: so it bounds slow or unfinished headers (slowloris) as well
        # as idle connections. Set here, it holds under gunicorn (whose --keep-alive it replaces), adev and the tests.
        handler_args={"keepalive_timeout": settings.header_timeout, "access_log_class": AccessLogger},
    )
    app[settings_key] = settings
    app[token_codec_key] = TokenCodec.from_settings(settings)  # reads the signing key files, if any, once
    app.cleanup_ctx.extend([metrics.flushing, database_ctx, events_ctx, google_ctx, password_ctx, mail_ctx])
    app.cleanup_ctx.append(google_web_ctx)  # after google_ctx, whose HTTP session it uses
    app.on_startup.append(announce_ready)
    setup_headers(app)
    add_routes(app)
    setup_cors(app)  # after every route: it enables CORS per resource
    return app
