"""CORS: only the configured origins, with credentials and the API's methods and headers; none configured, none sent."""

from __future__ import annotations

import pytest

from core.cors import check_origin
from settings import ConfigError, Settings

ALLOWED = "https://app.example.com"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "Authorization, Content-Type, X-Request-ID",
}


@pytest.fixture
async def cors_client(make_client):
    return await make_client(cors_origins=(ALLOWED, "http://localhost:3000"))


async def test_preflight_from_an_allowed_origin(cors_client):
    resp = await cors_client.options("/postchatt/", headers={"Origin": ALLOWED, **PREFLIGHT})
    assert resp.status in {200, 204}
    assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert resp.headers["Access-Control-Allow-Credentials"] == "true"
    allowed_headers = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "x-request-id"} <= allowed_headers
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]


async def test_preflight_without_trailing_slash_too(cors_client):
    headers = {"Origin": ALLOWED, "Access-Control-Request-Method": "GET"}
    resp = await cors_client.options("/getchatts", headers=headers)
    assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED


async def test_preflight_from_a_disallowed_origin_gets_no_allow_origin(cors_client):
    resp = await cors_client.options("/postchatt/", headers={"Origin": "https://evil.example", **PREFLIGHT})
    assert "Access-Control-Allow-Origin" not in resp.headers
    assert resp.status == 403
    assert set(await resp.json()) == {"message"}


async def test_preflight_for_a_header_not_allowed_is_refused(cors_client):
    headers = {"Origin": ALLOWED, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "X-Evil"}
    resp = await cors_client.options("/postchatt/", headers=headers)
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_actual_request_from_an_allowed_origin_exposes_headers(cors_client):
    resp = await cors_client.get("/getchatts/", headers={"Origin": ALLOWED})
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert resp.headers["Access-Control-Allow-Credentials"] == "true"
    assert "X-Request-ID" in resp.headers["Access-Control-Expose-Headers"]


async def test_actual_request_from_another_origin_gets_no_cors_headers(cors_client):
    resp = await cors_client.get("/getchatts/", headers={"Origin": "https://evil.example"})
    assert resp.status == 200
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_no_origins_configured_means_no_cors_headers(client):
    resp = await client.options("/postchatt/", headers={"Origin": ALLOWED, **PREFLIGHT})
    assert resp.status == 405
    assert "Access-Control-Allow-Origin" not in resp.headers
    resp = await client.get("/getchatts/", headers={"Origin": ALLOWED})
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_cors_origins_from_the_environment():
    settings = Settings.from_env({"SECRET_KEY": "k" * 40, "CORS_ORIGINS": f" {ALLOWED} , http://localhost:3000,"})
    assert settings.cors_origins == (ALLOWED, "http://localhost:3000")


@pytest.mark.parametrize("bad", ["*", "app.example.com", "https://app.example.com/path", "ftp://x", "https://"])
def test_bad_origins_are_refused_at_start(bad):
    with pytest.raises(ConfigError):
        check_origin(bad)


async def test_app_with_a_bad_origin_does_not_start(make_client):
    with pytest.raises(ConfigError):
        await make_client(cors_origins=("*",))


async def test_answers_vary_on_origin(cors_client):
    # Caches must not hand one origin's CORS answer (or another's lack of one) to the next caller.
    for headers in [{"Origin": ALLOWED}, {"Origin": "https://evil.example"}, {}]:
        resp = await cors_client.get("/getchatts/", headers=headers)
        assert "origin" in {v.strip().lower() for v in resp.headers.get("Vary", "").split(",")}, headers
    resp = await cors_client.options("/postchatt/", headers={"Origin": ALLOWED, **PREFLIGHT})
    assert "Origin" in resp.headers["Vary"]
