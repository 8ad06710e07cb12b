"""GET /.well-known/jwks.json and ES256/EdDSA signing end to end: sign-in, verification, rotation, refusals."""

from __future__ import annotations

import dataclasses
import secrets
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from auth.cookies import HOST_COOKIE_NAME
from settings import ConfigError, Settings
from tests.support.common import CLIENT_ID
from tests.support.signing import (
    expected_kid,
    header_of,
    hmac_token,
    new_key,
    pem,
    public_pem,
    unb64url,
    unsigned_token,
    write_key,
)
from web import create_app

PASSWORD = "correct horse battery"
JWKS = "/.well-known/jwks.json"
ALGORITHMS = ["ES256", "EdDSA"]
OTHER = {"ES256": "EdDSA", "EdDSA": "ES256"}


async def login_token(client: Any, username: str = "ann") -> str:
    """Register `username` (once per database) and sign in; the JWT."""
    credentials = {"username": username, "password": PASSWORD}
    resp = await client.post("/register", json=credentials)
    assert resp.status in {201, 409}, await resp.text()
    resp = await client.post("/login", json=credentials)
    assert resp.status == 200, await resp.text()
    token: str = (await resp.json())["token"]
    return token


async def me(client: Any, token: str) -> int:
    resp = await client.get("/get-user", headers={"Authorization": f"Bearer {token}"})
    assert resp.headers.get("WWW-Authenticate", "Bearer") == "Bearer"
    return resp.status


async def jwks(client: Any) -> dict[str, Any]:
    resp = await client.get(JWKS)
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "public, max-age=300"
    assert resp.content_type == "application/json"
    body: dict[str, Any] = await resp.json()
    return body


def verify_with_jwks(token: str, key_set: dict[str, Any]) -> dict[str, Any]:
    """What a client does: pick the key by kid from the JWK Set alone and verify with that key's own algorithm."""
    key = jwt.PyJWKSet.from_dict(key_set)[header_of(token)["kid"]]
    payload: dict[str, Any] = jwt.decode(
        token, key, algorithms=[key.algorithm_name], audience="chatterd", issuer="chatterd"
    )
    return payload


async def test_hs256_default_publishes_no_keys(client: Any, settings: Settings) -> None:
    assert await jwks(client) == {"keys": []}
    assert (await client.get(JWKS + "/")).status == 200
    token = await login_token(client)
    assert header_of(token) == {"alg": "HS256", "typ": "JWT"}
    assert await me(client, token) == 200
    assert settings.secret_key not in await (await client.get(JWKS)).text()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_sign_in_and_get_user_with_asymmetric_keys(make_client, tmp_path, google, algorithm):
    path, private = write_key(tmp_path, algorithm)
    client = await make_client(jwt_algorithm=algorithm, jwt_signing_key_files=(path,))
    kid = expected_kid(private)

    token = await login_token(client)
    assert header_of(token) == {"alg": algorithm, "typ": "JWT", "kid": kid}
    resp = await client.get("/get-user", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200
    assert (await resp.json())["user"]["username"] == "ann"
    # The login cookie carries the same token.
    assert (await client.get("/get-user", headers={"Cookie": f"{HOST_COOKIE_NAME}={token}"})).status == 200

    # Google sign-in mints with the same key.
    id_token = google.id_token(client_id=CLIENT_ID, name="Gail")
    body = await (await client.post("/adduser/", json={"clientID": CLIENT_ID, "idToken": id_token})).json()
    assert header_of(body["token"])["kid"] == kid
    assert await me(client, body["token"]) == 200

    key_set = await jwks(client)
    assert [jwk["kid"] for jwk in key_set["keys"]] == [kid]
    payload = verify_with_jwks(token, key_set)
    assert payload["name"] == "ann" and payload["role"] == "user"


async def test_jwks_lists_every_key_signing_first(make_client, tmp_path):
    (new_path, new), (old_path, old) = write_key(tmp_path, "ES256"), write_key(tmp_path, "ES256")
    client = await make_client(jwt_algorithm="ES256", jwt_signing_key_files=(new_path, old_path))
    keys = (await jwks(client))["keys"]
    assert [jwk["kid"] for jwk in keys] == [expected_kid(new), expected_kid(old)]
    for jwk, private in zip(keys, (new, old), strict=True):
        assert set(jwk) == {"kty", "crv", "x", "y", "kid", "alg", "use"}  # no "d": public keys only
        assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "P-256", "ES256", "sig")
        numbers = private.public_key().public_numbers()
        assert int.from_bytes(unb64url(jwk["x"]), "big") == numbers.x and len(unb64url(jwk["x"])) == 32
        assert int.from_bytes(unb64url(jwk["y"]), "big") == numbers.y and len(unb64url(jwk["y"])) == 32


async def test_eddsa_jwk(make_client, tmp_path):
    path, private = write_key(tmp_path, "EdDSA")
    client = await make_client(jwt_algorithm="EdDSA", jwt_signing_key_files=(path,))
    (jwk,) = (await jwks(client))["keys"]
    assert jwk == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": jwk["x"],
        "kid": expected_kid(private),
        "alg": "EdDSA",
        "use": "sig",
    }
    assert len(unb64url(jwk["x"])) == 32


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_rotation_with_overlap(make_client, tmp_path, algorithm):
    old_path, old = write_key(tmp_path, algorithm)
    new_path, new = write_key(tmp_path, algorithm)
    before = await make_client(jwt_algorithm=algorithm, jwt_signing_key_files=(old_path,))
    old_token = await login_token(before)
    assert header_of(old_token)["kid"] == expected_kid(old)

    # 1. The new key is listed last: published and verifying, not yet signing.
    published = await make_client(jwt_algorithm=algorithm, jwt_signing_key_files=(old_path, new_path))
    assert header_of(await login_token(published))["kid"] == expected_kid(old)
    # 2. The new key is put first: it signs; the old one keeps verifying.
    during = await make_client(jwt_algorithm=algorithm, jwt_signing_key_files=(new_path, old_path))
    new_token = await login_token(during)
    assert header_of(new_token)["kid"] == expected_kid(new)
    assert await me(during, old_token) == 200
    assert await me(during, new_token) == 200
    assert await me(published, new_token) == 200  # a server still at step 1 accepts what step 2 signs
    key_set = await jwks(during)
    assert verify_with_jwks(old_token, key_set)["sub"] == verify_with_jwks(new_token, key_set)["sub"]
    # 3. Once JWT_LIFETIME has passed, the old key is dropped: its tokens stop verifying.
    after = await make_client(jwt_algorithm=algorithm, jwt_signing_key_files=(new_path,))
    assert await me(after, old_token) == 401
    assert await me(after, new_token) == 200
    assert [jwk["kid"] for jwk in (await jwks(after))["keys"]] == [expected_kid(new)]


async def test_switching_from_hs256_ends_hs256_tokens(client, make_client, tmp_path):
    hs_token = await login_token(client)
    path, _ = write_key(tmp_path, "ES256")
    es = await make_client(jwt_algorithm="ES256", jwt_signing_key_files=(path,))
    assert await me(es, hs_token) == 401
    assert await me(client, await login_token(es)) == 401  # and the other way round


def forged_tokens(genuine: str, algorithm: str, private: Any, kid: str, secret_key: str) -> dict[str, str]:
    """Tokens carrying the genuine token's claims that a server signing with `private` must refuse."""
    claims = jwt.decode(genuine, options={"verify_signature": False})
    claims = {**claims, "jti": secrets.token_urlsafe(8), "role": "admin"}
    other = OTHER[algorithm]
    return {
        "unknown kid": jwt.encode(claims, new_key(algorithm), algorithm=algorithm, headers={"kid": "not-ours"}),
        "stranger's key and kid": jwt.encode(
            claims, (stranger := new_key(algorithm)), algorithm=algorithm, headers={"kid": expected_kid(stranger)}
        ),
        "our kid, stranger's signature": jwt.encode(
            claims, new_key(algorithm), algorithm=algorithm, headers={"kid": kid}
        ),
        "no kid": jwt.encode(claims, private, algorithm=algorithm),
        "HS256 with the public key PEM": hmac_token(claims, public_pem(private), kid),
        "HS256 with SECRET_KEY": hmac_token(claims, secret_key.encode(), kid),
        "alg none": unsigned_token(claims, kid),
        "alg none without kid": unsigned_token(claims, None),
        f"{other} with our kid": jwt.encode(claims, new_key(other), algorithm=other, headers={"kid": kid}),
        "ES384 with our kid": jwt.encode(claims, new_key("P-384"), algorithm="ES384", headers={"kid": kid}),
        "RS256 with our kid": jwt.encode(claims, new_key("RSA"), algorithm="RS256", headers={"kid": kid}),
        "expired": jwt.encode(
            {**claims, "exp": int(time.time()) - 60}, private, algorithm=algorithm, headers={"kid": kid}
        ),
    }


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_forged_tokens_are_401(make_client, tmp_path, settings, algorithm):
    path, private = write_key(tmp_path, algorithm)
    client = await make_client(jwt_algorithm=algorithm, jwt_signing_key_files=(path,))
    genuine = await login_token(client)
    kid = expected_kid(private)
    # Control: the same claims, signed as the server signs, are accepted; so each refusal below is for its flaw.
    claims = jwt.decode(genuine, options={"verify_signature": False})
    assert await me(client, jwt.encode(claims, private, algorithm=algorithm, headers={"kid": kid})) == 200
    for what, token in forged_tokens(genuine, algorithm, private, kid, settings.secret_key).items():
        assert await me(client, token) == 401, what


# ---- settings -----------------------------------------------------------------------------------------------------


async def make_app(settings: Settings, **changes: Any) -> None:
    await create_app(dataclasses.replace(settings, **changes))


@pytest.mark.parametrize(
    ("algorithm", "kind", "needle"),
    [
        ("ES256", "EdDSA", "P-256"),
        ("ES256", "P-384", "P-256"),
        ("ES256", "RSA", "P-256"),
        ("EdDSA", "ES256", "Ed25519"),
        ("EdDSA", "RSA", "Ed25519"),
    ],
)
async def test_a_key_of_the_wrong_type_fails_at_start(settings, tmp_path, algorithm, kind, needle):
    path, _ = write_key(tmp_path, kind)
    with pytest.raises(ConfigError, match=needle):
        await make_app(settings, jwt_algorithm=algorithm, jwt_signing_key_files=(path,))


async def test_unreadable_or_bad_key_files_fail_at_start(settings, tmp_path):
    good, _ = write_key(tmp_path, "ES256")
    with pytest.raises(ConfigError, match="cannot read"):
        await make_app(settings, jwt_algorithm="ES256", jwt_signing_key_files=(good, tmp_path / "missing.pem"))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match="not a PEM private key"):
        await make_app(settings, jwt_algorithm="ES256", jwt_signing_key_files=(garbage,))
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(pem(new_key("ES256"), password=b"correct horse"))
    with pytest.raises(ConfigError, match="encrypted"):
        await make_app(settings, jwt_algorithm="ES256", jwt_signing_key_files=(encrypted,))


def test_inconsistent_settings_fail_at_start(settings, tmp_path):
    path, _ = write_key(tmp_path, "ES256")
    with pytest.raises(ConfigError, match="HS256 signs with SECRET_KEY"):
        dataclasses.replace(settings, jwt_signing_key_files=(path,))
    for algorithm in ALGORITHMS:
        with pytest.raises(ConfigError, match="needs JWT_SIGNING_KEY_FILES"):
            dataclasses.replace(settings, jwt_algorithm=algorithm)
    for algorithm in ["none", "RS256", "HS512", "es256", ""]:
        with pytest.raises(ConfigError, match="JWT_ALGORITHM must be one of"):
            dataclasses.replace(settings, jwt_algorithm=algorithm, jwt_signing_key_files=(path,))


def test_settings_from_the_environment(tmp_path):
    env = {"SECRET_KEY": "s" * 48, "CHATTERD_VAR_DIR": str(tmp_path / "var")}
    default = Settings.from_env(env)
    assert (default.jwt_algorithm, default.jwt_signing_key_files) == ("HS256", ())
    configured = Settings.from_env(
        {**env, "JWT_ALGORITHM": "EdDSA", "JWT_SIGNING_KEY_FILES": " var/new.pem, /keys/old.pem ,"}
    )
    assert configured.jwt_algorithm == "EdDSA"
    assert configured.jwt_signing_key_files == (Path("var/new.pem"), Path("/keys/old.pem"))
    with pytest.raises(ConfigError):
        Settings.from_env({**env, "JWT_ALGORITHM": "ES256"})
    # SECRET_KEY is still required whatever signs the JWTs.
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Settings.from_env({"SECRET_KEY": "short", "JWT_ALGORITHM": "EdDSA", "JWT_SIGNING_KEY_FILES": "k.pem"})
