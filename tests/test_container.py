"""The container image and the compose file: built and run where a container engine can, read everywhere.

The image is built from the Dockerfile (two stages, a user without privileges, a health check on /readyz) and
run against the tests' Postgres, through a relay on loopback since the image reaches Postgres over TCP. Where no
engine is installed, or it cannot build or run containers on this machine, those tests skip and say why.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import psycopg2.extensions
import pytest
import yaml

from settings import VERSION
from tests.support.common import PROJECT_DIR, free_port, wait_for
from tests.support.pgproxy import PgProxy

DOCKERFILE = PROJECT_DIR / "Dockerfile"
COMPOSE = PROJECT_DIR / "compose.yaml"
BASE_IMAGE = re.search(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.M)[1]  # type: ignore[index]
# A TLS-inspecting proxy's certificates, when the build host trusts one: handed to pip in the build stage.
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
BUILD_TIMEOUT = 900


def engine(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ENGINE, *args], capture_output=True, text=True, timeout=timeout, check=False)


ENGINE = shutil.which("podman") or shutil.which("docker") or ""


def first_line(result: subprocess.CompletedProcess[str]) -> str:
    return next((line for line in (result.stderr + result.stdout).splitlines() if line.strip()), "no output")


@pytest.fixture(scope="module")
def image() -> Any:
    """The image built from the Dockerfile, removed after; skips, saying why, where that cannot be done."""
    if not ENGINE:
        pytest.skip("no container engine: install podman (apt-get install podman) or docker")
    if engine("image", "inspect", BASE_IMAGE).returncode != 0:
        pulled = engine("pull", BASE_IMAGE, timeout=300)
        if pulled.returncode != 0:
            pytest.skip(f"the base image {BASE_IMAGE} is not here and cannot be pulled: {first_line(pulled)}")
    probe = engine("run", "--rm", "--network", "none", BASE_IMAGE, "true")
    if probe.returncode != 0:
        pytest.skip(f"{Path(ENGINE).name} cannot run containers on this machine: {first_line(probe)}")
    tag = f"localhost/chatterd-test:{secrets.token_hex(4)}"
    build = ["build", "-t", tag, "-f", str(DOCKERFILE)]
    if Path(ENGINE).name == "podman":
        build += ["--format", "docker"]  # OCI images have no HEALTHCHECK
        if HOST_CA.exists():
            build += ["-v", f"{HOST_CA}:/run/host-ca.crt:ro", "--build-arg", "PIP_CERT=/run/host-ca.crt"]
    built = engine(*build, str(PROJECT_DIR), timeout=BUILD_TIMEOUT)
    if built.returncode != 0 and "pip" in built.stdout + built.stderr and "Could not" in built.stdout + built.stderr:
        pytest.skip(f"the image cannot fetch its requirements from here: {first_line(built)}")
    assert built.returncode == 0, built.stdout + built.stderr
    yield tag
    engine("rmi", "-f", tag)


def ready_on(port: int) -> Callable[[], Awaitable[bool]]:
    """A condition for wait_for: chatterd on this loopback port answers /readyz with a 200."""

    async def ready() -> bool:
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as resp:
                    return resp.status == 200
        except aiohttp.ClientError:
            return False

    return ready


def inspect(tag: str, template: str) -> str:
    result = engine("image", "inspect", tag, "--format", template)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_image_is_multi_stage_runs_as_nobody_in_particular_and_checks_readiness(image):
    assert len(re.findall(r"^FROM ", DOCKERFILE.read_text(), re.M)) == 2
    assert inspect(image, "{{.Config.User}}") == "chatterd"
    assert "/readyz" in inspect(image, "{{json .Config.Healthcheck}}")
    # The runtime stage holds the virtualenv but no compiler and no pip cache.
    listing = engine("run", "--rm", "--network", "none", image, "sh", "-c", "command -v gcc cc pip3; ls /root/.cache")
    assert listing.stdout.strip() == "", listing.stdout


async def test_the_image_serves_against_postgres_and_reports_healthy(image, make_database):
    params = psycopg2.extensions.parse_dsn(make_database())
    relay = PgProxy.for_dsn_params(params)
    await relay.start()
    port = free_port()
    name = f"chatterd-test-{secrets.token_hex(4)}"
    database_url = f"postgresql://{params.get('user', 'postgres')}@127.0.0.1:{relay.port}/{params['dbname']}"
    run = [
        "run", "-d", "--name", name, "--network", "host",
        "-e", f"DATABASE_URL={database_url}",
        "-e", f"SECRET_KEY={secrets.token_urlsafe(48)}",
        "-e", f"CHATTERD_BIND=127.0.0.1:{port}",  # host network: loopback only, on a free port
        image,
    ]  # fmt: skip
    started = await asyncio.to_thread(engine, *run)
    assert started.returncode == 0, started.stderr
    try:
        await wait_for(ready_on(port), timeout=120, what=f"the container to be ready:\n{engine('logs', name).stderr}")
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{port}/postchatt/", json={"username": "box", "message": "hi"}):
                pass
            async with session.get(f"http://127.0.0.1:{port}/getchatts/") as resp:
                assert [row[:2] for row in await resp.json()] == [["box", "hi"]]
            async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                assert (await resp.json())["version"] == VERSION

        async def healthy() -> bool:
            if Path(ENGINE).name == "podman":
                return (await asyncio.to_thread(engine, "healthcheck", "run", name)).returncode == 0
            status = await asyncio.to_thread(engine, "inspect", "--format", "{{.State.Health.Status}}", name)
            return status.stdout.strip() == "healthy"

        await wait_for(healthy, timeout=60, what="the image's health check to pass")
        whoami = await asyncio.to_thread(engine, "exec", name, "id", "-u")
        assert whoami.stdout.strip() not in {"", "0"}, "the server does not run as root"
        stopped = await asyncio.to_thread(engine, "stop", "-t", "40", name)
        assert stopped.returncode == 0, stopped.stderr
        exited = await asyncio.to_thread(engine, "inspect", "--format", "{{.State.ExitCode}}", name)
        assert exited.stdout.strip() == "0", engine("logs", name).stderr
    finally:
        await asyncio.to_thread(engine, "rm", "-f", name)
        await relay.close()


def test_the_compose_file_runs_chatterd_after_a_healthy_postgres():
    compose = yaml.safe_load(COMPOSE.read_text())
    db, chatterd = compose["services"]["db"], compose["services"]["chatterd"]
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert chatterd["build"] == "."
    assert chatterd["depends_on"]["db"]["condition"] == "service_healthy"
    assert "@db:5432/" in chatterd["environment"]["DATABASE_URL"]
    assert ":?" in chatterd["environment"]["SECRET_KEY"], "no default secret: compose refuses to start without one"
    assert all(port.startswith("127.0.0.1:") for port in chatterd["ports"]), "published on loopback only"
    assert "pgdata" in compose["volumes"]


def compose_command() -> list[str] | None:
    for command in (["podman", "compose"], ["docker", "compose"], ["podman-compose"]):
        if (
            shutil.which(command[0])
            and subprocess.run([*command, "version"], capture_output=True, check=False).returncode == 0
        ):
            return command
    return None


async def test_compose_brings_up_chatterd_and_postgres(image):
    command = compose_command()
    if command is None:
        pytest.skip("no compose tool (podman compose, docker compose or podman-compose)")
    postgres = yaml.safe_load(COMPOSE.read_text())["services"]["db"]["image"]
    if engine("image", "inspect", postgres).returncode != 0 and engine("pull", postgres, timeout=300).returncode != 0:
        pytest.skip(f"the Postgres image {postgres} is not here and cannot be pulled")
    port = free_port()
    env = {**os.environ, "SECRET_KEY": secrets.token_urlsafe(48), "PORT": str(port)}
    project = ["-p", f"chatterd-test-{secrets.token_hex(4)}", "-f", str(COMPOSE)]
    up = await asyncio.to_thread(
        subprocess.run, [*command, *project, "up", "-d", "--build"], env=env, capture_output=True, text=True,
        timeout=BUILD_TIMEOUT, check=False,
    )  # fmt: skip
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        await wait_for(ready_on(port), timeout=180, what="chatterd in compose to be ready")
    finally:
        await asyncio.to_thread(
            subprocess.run, [*command, *project, "down", "-v"], env=env, capture_output=True, timeout=120, check=False
        )
