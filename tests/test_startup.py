"""What a server says when it starts: each warning once for all its workers, and one line when it cannot start."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.support.cli import run_manage
from tests.support.common import free_port
from tests.support.launcher import Gunicorn, base_env

SECRET_WARNING = "SECRET_KEY is not set"
GOOGLE_WARNING = "GOOGLE_CLIENT_IDS is not set"
PUBLIC_URL_WARNING = "PUBLIC_URL is not set"
SMTP_WARNING = "SMTP_URL is not set"


async def test_each_warning_is_said_once_per_server_not_once_per_worker(make_database, tmp_path):
    env = base_env(DATABASE_URL=make_database(), CHATTERD_VAR_DIR=str(tmp_path / "var"))
    for unset in ("SECRET_KEY", "GOOGLE_CLIENT_IDS", "PUBLIC_URL"):
        env.pop(unset, None)
    server = Gunicorn(env, tmp_path / "g.log", workers=3)
    await server.start()
    assert await server.stop() == 0
    log = server.log()
    assert log.count("chatterd worker") == 3
    assert log.count(SECRET_WARNING) == 1 and log.count(GOOGLE_WARNING) == 1, log
    assert log.count(SMTP_WARNING) == 1, log


async def test_the_public_url_warning_too(make_database, tmp_path):
    env = base_env(
        DATABASE_URL=make_database(),
        CHATTERD_VAR_DIR=str(tmp_path / "var"),
        GOOGLE_CLIENT_IDS="web-client",
        GOOGLE_CLIENT_SECRET="not-a-real-secret",
    )
    env.pop("PUBLIC_URL", None)
    server = Gunicorn(env, tmp_path / "g.log")
    await server.start()
    assert await server.stop() == 0
    assert server.log().count(PUBLIC_URL_WARNING) == 1, server.log()


def the_end(log: str) -> str:
    """The last line of a failed start, after checking that it is the only error and no traceback came."""
    errors = [line for line in log.splitlines() if " ERROR " in line or "CRITICAL" in line]
    assert len(errors) == 1 and "Traceback" not in log and "Booting worker" not in log, log
    assert log.strip().splitlines()[-1] == errors[0], log
    return errors[0]


@pytest.fixture
def closed_port() -> int:
    return free_port()  # nothing listens there


BAD_URLS = {
    "refused": ("postgresql://chatterd@127.0.0.1:{port}/chatterd", "127.0.0.1:{port}"),
    "unknown host": ("postgresql://chatterd@no-such-host.invalid:5433/chatterd", "no-such-host.invalid:5433"),
    "not a URL": ("postgres is over there", "DATABASE_URL is not a libpq URI"),
}


@pytest.mark.parametrize("kind", sorted(BAD_URLS))
async def test_a_bad_database_url_ends_in_one_line_naming_host_and_port(kind, closed_port, tmp_path):
    url, named = (text.format(port=closed_port) for text in BAD_URLS[kind])
    env = base_env(DATABASE_URL=url, CHATTERD_VAR_DIR=str(tmp_path / "var"), DB_STARTUP_WAIT="1")
    server = Gunicorn(env, tmp_path / "g.log")
    assert await server.refused(timeout=30) == 1
    end = the_end(server.log())
    assert "cannot start" in end and named in end


async def test_a_database_that_refuses_us_is_said_at_once(database_url, tmp_path):
    wrong = database_url.replace("dbname=", "dbname=no_such_") if "dbname=" in database_url else database_url + "x"
    env = base_env(DATABASE_URL=wrong, CHATTERD_VAR_DIR=str(tmp_path / "var"))  # the default wait: 30 s
    server = Gunicorn(env, tmp_path / "g.log")
    assert await server.refused(timeout=20) == 1, "an answer that will not change is not waited on"
    assert "does not exist" in the_end(server.log())


async def test_a_bad_setting_is_one_line(tmp_path):
    env = base_env(JWT_LIFETIME="soon", CHATTERD_VAR_DIR=str(tmp_path / "var"))
    server = Gunicorn(env, tmp_path / "g.log")
    assert await server.refused(timeout=30) == 1
    assert "JWT_LIFETIME must be a whole number" in the_end(server.log())


def test_manage_says_a_bad_database_url_in_one_line(closed_port, settings):
    bad = replace(settings, database_url=f"postgresql://chatterd@127.0.0.1:{closed_port}/chatterd")
    result = run_manage("set-role", "ann", "admin", settings=bad, DB_STARTUP_WAIT="1")
    assert result.returncode == 1
    *_, last = result.stdout.strip().splitlines()
    assert last.startswith(f"cannot use Postgres at 127.0.0.1:{closed_port}"), result.stdout
    assert "Traceback" not in result.stdout + result.stderr
