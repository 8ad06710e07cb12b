"""Under gunicorn: metrics added up across workers (multiprocess mode) and JSON access lines with request ids."""

from __future__ import annotations

import aiohttp
import orjson
from prometheus_client.parser import text_string_to_metric_families

from tests.support.common import wait_for
from tests.support.launcher import Gunicorn, base_env

REQUESTS = 20


def getchatts_count(text: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "chatterd_http_requests_total" and sample.labels == {
                "method": "GET",
                "route": "/getchatts",
                "status": "200",
            }:
                total += sample.value
    return total


async def test_metrics_and_json_logs_under_two_workers(make_database, tmp_path):
    var_dir = tmp_path / "var"
    stale = var_dir / "prometheus" / "master-999999-gone" / "counter_999999.db"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left over from a previous run")
    env = base_env(DATABASE_URL=make_database(), CHATTERD_VAR_DIR=str(var_dir), LOG_FORMAT="json")
    env["ACCESS_LOG"] = "-"
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = Gunicorn(env, tmp_path / "gunicorn.log")
    await server.start()
    try:
        assert stale.exists(), "a master leaves other masters' folders alone"
        async with aiohttp.ClientSession() as session:
            # separate connections, so both workers are likely to serve some
            for i in range(REQUESTS):
                async with aiohttp.ClientSession() as one:
                    async with one.get(f"{server.url}/getchatts/?limit=5&token=secret{i}") as resp:
                        assert resp.status == 200
            async with session.get(f"{server.url}/healthz", headers={"X-Request-ID": "gunicorn-rid-1"}) as resp:
                assert resp.headers["X-Request-ID"] == "gunicorn-rid-1"

            async def counted() -> float | None:
                async with session.get(f"{server.url}/metrics") as resp:
                    count = getchatts_count(await resp.text())
                # the start-up check of the test helper also GETs /getchatts/
                return count if count >= REQUESTS else None

            await wait_for(counted, timeout=10, what="/metrics to count every request")
        own = set((var_dir / "prometheus").glob(f"master-{server.proc.pid}-*/*.db"))
        assert own, "workers keep their metrics in their master's folder"

        async def logged() -> bool:
            return "gunicorn-rid-1" in server.log()

        await wait_for(logged, timeout=10, what="the access line")
    finally:
        assert await server.stop() == 0
    log = server.log()
    json_lines = [orjson.loads(line) for line in log.splitlines() if line.startswith("{")]
    access = [line for line in json_lines if line.get("request_id") == "gunicorn-rid-1"]
    assert access and access[0]["status"] == 200 and access[0]["request"].startswith("GET /healthz")
    assert any(line["logger"] == "gunicorn.error" for line in json_lines), "gunicorn's own lines are JSON too"
    assert "secret1" not in log and "token=REDACTED" in log
