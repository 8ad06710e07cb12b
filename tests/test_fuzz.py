"""Property-based fuzzing of every JSON endpoint: whatever comes in, no 5xx, and every error is JSON {"message"}."""

from __future__ import annotations

import json
import os
import string
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_from_bytes

import orjson
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from tests.support.common import CLIENT_ID

# Each endpoint with the fields it reads, so that generated objects often reach past the first check.
JSON_ENDPOINTS: dict[str, tuple[str, ...]] = {
    "/postchatt/": ("username", "name", "message"),
    "/postauth/": ("chatterID", "message"),
    "/adduser/": ("clientID", "idToken"),
    "/register": ("username", "password"),
    "/login": ("username", "password", "otp"),
    "/totp/enable": ("otp",),
    "/totp/disable": ("otp",),
    "/token/refresh": ("refresh_token",),
    "/totp/qr": ("uri",),
    "/identities/google": ("clientID", "idToken"),
    "/identities/password": ("username", "password"),
}
PATHS = sorted(JSON_ENDPOINTS)
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "application/json; charset=no-such-charset",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=no-such-charset",
    "application/x-www-form-urlencoded; charset=utf-16",
    "multipart/form-data",
    "multipart/form-data; boundary=xyz",
    "multipart/form-data; boundary=",
    "text/plain",
    "application/octet-stream",
    "",
    "???",
]
# FUZZ_EXAMPLES=5000 for a longer hunt; the default keeps `make test` quick.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# What JSON can hold: nulls, booleans, big and small numbers, any text (lone surrogates included), nesting.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=300)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=15,
)
header_text = st.text(
    alphabet=string.printable.replace("\r", "").replace("\n", "").replace("\x0b", "").replace("\x0c", ""), max_size=200
)


@dataclass(frozen=True, slots=True)
class Caller:
    """Credentials the fuzzed requests may carry: a JWT (with TOTP set up, not enabled) and a chatterID."""

    token: str
    chatter_id: str


@pytest.fixture
async def target(make_client: Any, google: Any) -> tuple[TestClient[Any, Any], Caller]:
    """The real app with throttles opened wide (so the fuzzing reaches the views), and a signed-in caller."""
    client = await make_client(
        signup_max_per_address=10**6, login_max_failures_per_address=10**6, adduser_max_per_address=10**6
    )
    account = {"username": "fuzzer", "password": "correct horse battery"}
    assert (await client.post("/register", json=account)).status == 201
    token = (await (await client.post("/login", json=account)).json())["token"]
    assert (await client.post("/totp/setup", headers={"Authorization": f"Bearer {token}"})).status == 200
    id_token = google.id_token(client_id=CLIENT_ID, sub="fuzz", name="Fuzz")
    resp = await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": id_token})
    assert resp.status == 200
    return client, Caller(token, (await resp.json())["chatterID"])


def authorization(caller: Caller, choice: str) -> dict[str, str]:
    """No credential, one of the caller's, or junk, as the Authorization header."""
    return {
        "none": {},
        "jwt": {"Authorization": f"Bearer {caller.token}"},
        "chatterid": {"Authorization": f"Bearer {caller.chatter_id}"},
        "junk": {"Authorization": "Bearer not.a.token"},
    }[choice]


async def check(client: TestClient[Any, Any], method: str, url: str | URL, **kwargs: Any) -> int:
    """Send one request: it must not be a 5xx, and an error must be the contract's JSON {"message": str}."""
    resp = await client.request(method, url, **kwargs)
    body = await resp.read()
    assert resp.status < 500, (resp.status, body[:500])
    if resp.status >= 400:
        assert resp.content_type == "application/json", (resp.status, resp.content_type, body[:200])
        data = orjson.loads(body)
        assert isinstance(data, dict) and set(data) == {"message"} and isinstance(data["message"], str), data
    return resp.status


@FUZZ
@given(data=st.data(), path=st.sampled_from(PATHS), auth=st.sampled_from(["none", "jwt", "chatterid", "junk"]))
async def test_any_json_value_on_any_endpoint(target, data, path, auth):
    """Objects with the endpoint's own fields (any JSON values, extra keys), or any other JSON value at all."""
    client, caller = target
    fields = JSON_ENDPOINTS[path]
    shaped = st.fixed_dictionaries({}, optional={key: json_values for key in fields}) | st.dictionaries(
        st.sampled_from(fields) | st.text(max_size=10), json_values, max_size=6
    )
    body = data.draw(shaped | json_values)
    await check(
        client,
        "POST",
        path,
        data=json.dumps(body).encode(),  # stdlib: big integers; lone surrogates as \\u escapes
        headers={"Content-Type": "application/json", **authorization(caller, auth)},
    )


@FUZZ
@given(path=st.sampled_from(PATHS), body=st.binary(max_size=2048), content_type=st.sampled_from(CONTENT_TYPES))
async def test_any_bytes_with_any_content_type(target, path, body, content_type):
    """Arbitrary bytes declared as JSON, forms, multipart, text or nothing."""
    client, _ = target
    await check(client, "POST", path, data=body, headers={"Content-Type": content_type})


@FUZZ
@given(
    path=st.sampled_from([*PATHS, "/getchatts/", "/get-user"]),
    headers=st.dictionaries(
        st.sampled_from(
            [
                "Authorization",
                "Cookie",
                "Origin",
                "Referer",
                "X-Forwarded-For",
                "X-Request-ID",
                "Content-Encoding",
                "Accept",
                "Content-Type",
            ]
        ),
        header_text,
        max_size=5,
    ),
    body=st.sampled_from([b"", b"{}", b'{"message": "hi", "username": "u"}', b"\x1f\x8b\x08\x00garbage"]),
)
async def test_any_headers(target, path, headers, body):
    """Odd credentials, cookies, origins, forwarded addresses, request ids and encodings."""
    client, _ = target
    method = "GET" if path in {"/getchatts/", "/get-user"} else "POST"
    await check(client, method, path, data=body, headers=headers)


@FUZZ
@given(
    pairs=st.lists(
        st.tuples(st.sampled_from([b"limit", b"after", b"rid", b""]) | st.binary(max_size=10), st.binary(max_size=60)),
        max_size=4,
    )
)
async def test_any_getchatts_query_string(target, pairs):
    """/getchatts/ with any query string: repeated, empty, binary and out-of-range limit and after."""
    client, _ = target
    query = "&".join(f"{quote_from_bytes(key)}={quote_from_bytes(value)}" for key, value in pairs)
    status = await check(client, "GET", URL(f"/getchatts/?{query}", encoded=True))
    assert status in {200, 422}
