"""Tests for tokens.py: access JWTs and chatterIDs, with real signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from auth.tokens import (
    AccessClaims,
    InvalidToken,
    TokenCodec,
    hash_chatter_id,
    looks_like_jwt,
    new_chatter_id,
)

# 64 bytes, so forging with HS384/HS512 under the same key does not trip PyJWT's short-key warning.
SECRET = "test-secret-0123456789abcdef0123456789abcdef0123456789abcdef0123"
OTHER_SECRET = "another-secret-0123456789abcdef0123456789abcdef0123456789abcdef"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def b64url_json(obj: object) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def unb64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@pytest.fixture
def codec() -> TokenCodec:
    return TokenCodec(SECRET)


def good_payload(**changes: Any) -> dict[str, Any]:
    """A payload the codec would accept, with keys changed (or removed when the value is ...)."""
    now = time.time()
    payload: dict[str, Any] = {
        "sub": "42",
        "name": "alice",
        "role": "user",
        "jti": "some-unique-id",
        "iss": "chatterd",
        "aud": "chatterd",
        "iat": now,
        "exp": int(now) + 600,
    }
    for key, value in changes.items():
        if value is ...:
            payload.pop(key, None)
        else:
            payload[key] = value
    return payload


def forge(payload: dict[str, Any], *, key: str | bytes = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=algorithm)


def sign_raw(payload: dict[str, Any]) -> str:
    """HS256-sign a payload by hand, for claims PyJWT itself refuses to encode."""
    signing_input = f"{b64url_json({'alg': 'HS256', 'typ': 'JWT'})}.{b64url_json(payload)}"
    signature = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def test_round_trip(codec: TokenCodec) -> None:
    token, claims = codec.mint(42, "alice", "moderator")
    assert isinstance(token, str)
    assert looks_like_jwt(token)
    assert codec.decode(token) == claims
    assert claims == AccessClaims(
        user_id=42,
        username="alice",
        role="moderator",
        jti=claims.jti,
        issued_at=claims.issued_at,
        expires_at=claims.expires_at,
    )
    assert abs(claims.issued_at - time.time()) < 5
    assert claims.issued_at < claims.expires_at <= claims.issued_at + codec.lifetime


def test_claims_on_the_wire(codec: TokenCodec) -> None:
    token, claims = codec.mint(7, "bob", "admin", now=1_700_000_000.123456)
    header = json.loads(unb64url(token.split(".")[0]))
    payload = json.loads(unb64url(token.split(".")[1]))
    assert header["alg"] == "HS256"
    assert payload == {
        "sub": "7",
        "name": "bob",
        "role": "admin",
        "jti": claims.jti,
        "iss": "chatterd",
        "aud": "chatterd",
        # Millisecond precision, rounded down.
        "iat": 1_700_000_000.123,
        "exp": 1_700_000_000 + 900,
    }
    assert claims.issued_at == 1_700_000_000.123
    assert claims.expires_at == 1_700_000_900.0


def test_lifetime_override_and_default() -> None:
    codec = TokenCodec(SECRET, lifetime=60)
    assert codec.lifetime == 60
    now = time.time()
    _, claims = codec.mint(1, "a", "user", now=now)
    assert claims.expires_at == int(claims.issued_at) + 60
    _, claims = codec.mint(1, "a", "user", now=now, lifetime=5)
    assert claims.expires_at == int(claims.issued_at) + 5


def test_unicode_username_round_trip(codec: TokenCodec) -> None:
    token, _ = codec.mint(3, "Zoë 🦜 \u0000x", "user")
    assert codec.decode(token).username == "Zoë 🦜 \u0000x"


def test_jti_unique_across_mints(codec: TokenCodec) -> None:
    now = time.time()
    jtis = {codec.mint(1, "alice", "user", now=now)[1].jti for _ in range(1000)}
    assert len(jtis) == 1000


def test_identical_mints_still_differ(codec: TokenCodec) -> None:
    now = time.time()
    assert codec.mint(1, "alice", "user", now=now)[0] != codec.mint(1, "alice", "user", now=now)[0]


@pytest.mark.parametrize("key", ["", "short", "x" * 31, "é" * 15 + "x"])
def test_secret_key_too_short(key: str) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        TokenCodec(key)


def test_secret_key_counted_in_bytes() -> None:
    # 16 two-byte characters are 32 bytes: enough.
    codec = TokenCodec("é" * 16)
    token, claims = codec.mint(1, "a", "user")
    assert codec.decode(token) == claims


@pytest.mark.parametrize(("issuer", "audience"), [("", "chatterd"), ("chatterd", "")])
def test_empty_issuer_or_audience(issuer: str, audience: str) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        TokenCodec(SECRET, issuer=issuer, audience=audience)


@pytest.mark.parametrize("lifetime", [0, -1, True])
def test_bad_lifetime(lifetime: int) -> None:
    with pytest.raises(ValueError, match="lifetime"):
        TokenCodec(SECRET, lifetime=lifetime)
    with pytest.raises(ValueError, match="lifetime"):
        TokenCodec(SECRET).mint(1, "a", "user", lifetime=lifetime)


@pytest.mark.parametrize(
    ("user_id", "role"),
    [(-1, "user"), (True, "user"), (10**19, "user"), (1, "root"), (1, "Admin"), (1, "")],
)
def test_mint_refuses_what_decode_would_refuse(codec: TokenCodec, user_id: int, role: str) -> None:
    with pytest.raises(ValueError):
        codec.mint(user_id, "alice", role)


def test_forged_payload_with_right_secret_is_accepted(codec: TokenCodec) -> None:
    # Guards the helpers below: a refusal in the tests that follow is due to the one thing they change.
    claims = codec.decode(forge(good_payload()))
    assert (claims.user_id, claims.username, claims.role, claims.jti) == (42, "alice", "user", "some-unique-id")


# --- refusals -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", ""])
@pytest.mark.parametrize("signature", ["", "keep"])
def test_alg_none_refused(codec: TokenCodec, alg: str, signature: str) -> None:
    genuine, _ = codec.mint(1, "mallory", "user")
    header = b64url_json({"alg": alg, "typ": "JWT"})
    payload = b64url_json(good_payload(sub="1", name="mallory", role="admin"))
    sig = genuine.split(".")[2] if signature == "keep" else ""
    token = f"{header}.{payload}.{sig}"
    with pytest.raises(InvalidToken):
        codec.decode(token)


def test_header_without_alg_refused(codec: TokenCodec) -> None:
    genuine, _ = codec.mint(1, "mallory", "user")
    _, payload, sig = genuine.split(".")
    with pytest.raises(InvalidToken):
        codec.decode(f"{b64url_json({'typ': 'JWT'})}.{payload}.{sig}")


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_hmac_algorithm_with_right_secret_refused(codec: TokenCodec, algorithm: str) -> None:
    with pytest.raises(InvalidToken):
        codec.decode(forge(good_payload(), algorithm=algorithm))


@pytest.fixture(scope="module")
def rsa_private_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_rs256_refused(codec: TokenCodec, rsa_private_pem: bytes) -> None:
    with pytest.raises(InvalidToken):
        codec.decode(forge(good_payload(), key=rsa_private_pem, algorithm="RS256"))


def test_wrong_secret_refused(codec: TokenCodec) -> None:
    with pytest.raises(InvalidToken):
        codec.decode(forge(good_payload(), key=OTHER_SECRET))
    token, _ = TokenCodec(OTHER_SECRET).mint(42, "alice", "user")
    with pytest.raises(InvalidToken):
        codec.decode(token)


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud", "sub", "jti", "name", "role"])
def test_missing_claim_refused(codec: TokenCodec, claim: str) -> None:
    with pytest.raises(InvalidToken):
        codec.decode(forge(good_payload(**{claim: ...})))


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud", "sub", "jti", "name", "role"])
def test_null_claim_refused(codec: TokenCodec, claim: str) -> None:
    with pytest.raises(InvalidToken):
        codec.decode(sign_raw(good_payload(**{claim: None})))


def test_sign_raw_helper_makes_acceptable_tokens(codec: TokenCodec) -> None:
    assert codec.decode(sign_raw(good_payload())).user_id == 42


def test_expired_beyond_leeway_refused(codec: TokenCodec) -> None:
    token, _ = codec.mint(1, "alice", "user", now=time.time() - codec.lifetime - 30)
    with pytest.raises(InvalidToken):
        codec.decode(token)


def test_expired_within_leeway_accepted() -> None:
    codec = TokenCodec(SECRET, leeway=60)
    token, claims = codec.mint(1, "alice", "user", now=time.time() - codec.lifetime - 10)
    assert claims.expires_at < time.time()
    assert codec.decode(token) == claims


def test_issued_in_the_future_refused(codec: TokenCodec) -> None:
    token, _ = codec.mint(1, "alice", "user", now=time.time() + 120)
    with pytest.raises(InvalidToken):
        codec.decode(token)


@pytest.mark.parametrize(
    ("issuer", "audience"),
    [("someone-else", "chatterd"), ("chatterd", "someone-else"), ("Chatterd", "chatterd"), ("chatterd", "chatterd ")],
)
def test_wrong_issuer_or_audience_refused(codec: TokenCodec, issuer: str, audience: str) -> None:
    other = TokenCodec(SECRET, issuer=issuer, audience=audience)
    token, _ = other.mint(1, "alice", "user")
    assert other.decode(token).user_id == 1
    with pytest.raises(InvalidToken):
        codec.decode(token)


@pytest.mark.parametrize("aud", [["chatterd"], ["chatterd", "other"], 5, {"a": "chatterd"}])
def test_audience_must_be_our_single_string(codec: TokenCodec, aud: object) -> None:
    with pytest.raises(InvalidToken):
        codec.decode(forge(good_payload(aud=aud)))


@pytest.mark.parametrize("iss", [5, ["chatterd"]])
def test_issuer_must_be_a_string(codec: TokenCodec, iss: object) -> None:
    # PyJWT refuses to encode a non-string iss, so build this one by hand.
    with pytest.raises(InvalidToken):
        codec.decode(sign_raw(good_payload(iss=iss)))


@pytest.mark.parametrize("role", ["admin", "moderator"])
def test_tampered_payload_with_original_signature_refused(codec: TokenCodec, role: str) -> None:
    token, _ = codec.mint(5, "eve", "user")
    header, payload, sig = token.split(".")
    claims = json.loads(unb64url(payload))
    claims["role"] = role
    with pytest.raises(InvalidToken):
        codec.decode(f"{header}.{b64url_json(claims)}.{sig}")


def test_tampered_signature_refused(codec: TokenCodec) -> None:
    token, _ = codec.mint(5, "eve", "user")
    header, payload, sig = token.split(".")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    with pytest.raises(InvalidToken):
        codec.decode(f"{header}.{payload}.{flipped}")


@pytest.mark.parametrize(
    "sub",
    [
        "abc",
        "",
        "-1",
        "+1",
        "01",
        " 1",
        "1 ",
        "1.0",
        "1e3",
        "0x10",
        "\u0661\u0662",
        "\uff11\uff12",
        "99999999999999999999",
        5,
        1.5,
        True,
    ],
)
def test_sub_must_be_a_decimal_int_string(codec: TokenCodec, sub: object) -> None:
    with pytest.raises(InvalidToken):
        codec.decode(forge(good_payload(sub=sub)))


@pytest.mark.parametrize("name", [5, 1.5, True, ["alice"], {"n": "alice"}])
def test_name_must_be_a_string(codec: TokenCodec, name: object) -> None:
    with pytest.raises(InvalidToken):
        codec.decode(forge(good_payload(name=name)))


@pytest.mark.parametrize("role", ["superuser", "Admin", "ADMIN", " admin", "", 1, ["admin"], True])
def test_role_must_be_known(codec: TokenCodec, role: object) -> None:
    with pytest.raises(InvalidToken):
        codec.decode(forge(good_payload(role=role)))


@pytest.mark.parametrize("role", ["user", "moderator", "admin"])
def test_each_known_role_accepted(codec: TokenCodec, role: str) -> None:
    assert codec.decode(forge(good_payload(role=role))).role == role


@pytest.mark.parametrize("version", ["7", 7.0, True, ["7"], None])
def test_the_standing_version_is_a_whole_number_when_present(codec: TokenCodec, version: object) -> None:
    token, _ = codec.mint(3, "ann", "user", standing_version=7)
    assert codec.decode(token).standing_version == 7
    if version is None:
        assert codec.decode(forge(good_payload())).standing_version is None
    else:
        with pytest.raises(InvalidToken):
            codec.decode(forge(good_payload(sv=version)))


@pytest.mark.parametrize("jti", [5, ["x"], {"x": 1}])
def test_jti_must_be_a_string(codec: TokenCodec, jti: object) -> None:
    with pytest.raises(InvalidToken):
        codec.decode(forge(good_payload(jti=jti)))


@pytest.mark.parametrize("claim", ["iat", "exp"])
@pytest.mark.parametrize("kind", ["string", "bool", "list"])
def test_times_must_be_numbers(codec: TokenCodec, claim: str, kind: str) -> None:
    good = good_payload()[claim]
    value = {"string": str(int(good)), "bool": True, "list": [good]}[kind]
    with pytest.raises(InvalidToken):
        codec.decode(forge(good_payload(**{claim: value})))


@pytest.mark.parametrize("token", [None, 123, 1.5, b"a.b.c", ["a", "b", "c"], object()])
def test_non_str_refused(codec: TokenCodec, token: Any) -> None:
    with pytest.raises(InvalidToken):
        codec.decode(token)


def test_over_long_token_refused(codec: TokenCodec) -> None:
    token, _ = codec.mint(1, "x" * 4000, "user")
    assert len(token) > 4096
    with pytest.raises(InvalidToken):
        codec.decode(token)


def test_long_but_acceptable_token(codec: TokenCodec) -> None:
    token, claims = codec.mint(1, "x" * 2000, "user")
    assert 2000 < len(token) <= 4096
    assert codec.decode(token) == claims


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "..",
        "...",
        "a.b.c",
        "not a token",
        "eyJ.eyJ.",
        "a" * 64,
        "\x00.\x00.\x00",
        "é.é.é",
        b64url_json({"alg": "HS256"}) + ".." + "AAAA",
        b64url_json({"alg": "HS256"}) + "." + b64url(b"not json") + ".AAAA",
        b64url_json({"alg": "HS256"}) + "." + b64url_json([1, 2, 3]) + ".AAAA",
        b64url(b"[" * 2000) + "." + b64url_json({}) + ".AAAA",
        b64url_json({"alg": "HS256"}) + "." + b64url(b"[" * 2000) + ".AAAA",
        b64url(b"\xff\xfe") + "." + b64url_json({}) + ".AAAA",
        "eyJhbGciOiJIUzI1NiJ9.e30.!!!!",
    ],
)
def test_garbage_refused(codec: TokenCodec, token: str) -> None:
    with pytest.raises(InvalidToken):
        codec.decode(token)


def test_invalid_token_chains_the_cause(codec: TokenCodec) -> None:
    with pytest.raises(InvalidToken) as info:
        codec.decode(forge(good_payload(), key=OTHER_SECRET))
    assert isinstance(info.value.__cause__, jwt.InvalidSignatureError)


# --- shapes ---------------------------------------------------------------------------------------------------


def test_looks_like_jwt(codec: TokenCodec) -> None:
    token, _ = codec.mint(1, "alice", "user")
    assert looks_like_jwt(token)
    # Unsigned tokens must still be routed to decode(), which refuses them.
    assert looks_like_jwt(b64url_json({"alg": "none"}) + "." + b64url_json({}) + ".")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "a.b",
        "a.b.c.d",
        ".b.c",
        "a..c",
        "a b.c.d",
        "a.b.c=",
        "a+b.c.d",
        "a/b.c.d",
        "a.b.c\n",
        "é.b.c",
        "a" * 64,
        "0123456789abcdef" * 4,
        "a." + "b" * 5000 + ".c",
        None,
        123,
        b"a.b.c",
    ],
)
def test_does_not_look_like_jwt(value: Any) -> None:
    assert looks_like_jwt(value) is False


def test_new_chatter_id_shape() -> None:
    chatter_id, digest = new_chatter_id()
    assert len(chatter_id) == 64
    assert all(c in "0123456789abcdef" for c in chatter_id)
    assert digest == hashlib.sha256(chatter_id.encode()).digest()
    assert len(digest) == 32
    assert hash_chatter_id(chatter_id) == digest
    assert not looks_like_jwt(chatter_id)


def test_new_chatter_ids_are_unique() -> None:
    ids = {new_chatter_id()[0] for _ in range(1000)}
    assert len(ids) == 1000


def test_hash_chatter_id_matches_sha256() -> None:
    value = "0123456789abcdef" * 4
    assert hash_chatter_id(value) == hashlib.sha256(value.encode()).digest()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "0123456789ABCDEF" * 4,
        "0123456789abcdef" * 4 + "0",
        ("0123456789abcdef" * 4)[:-1],
        ("0123456789abcdef" * 4)[:-1] + "g",
        "0123456789abcdef" * 4 + "\n",
        " " + ("0123456789abcdef" * 4)[1:],
        "\uff10" * 64,
        "\u0661" * 64,
        None,
        123,
        b"0123456789abcdef" * 4,
    ],
)
def test_hash_chatter_id_refuses_malformed(value: Any) -> None:
    assert hash_chatter_id(value) is None


def test_a_minted_token_verifies_with_pyjwt_alone(codec: TokenCodec) -> None:
    token, claims = codec.mint(42, "alice", "moderator", session_id="s-1", standing_version=3)
    payload = jwt.decode(token, SECRET, algorithms=["HS256"], audience="chatterd", issuer="chatterd")
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    assert payload == {
        "sub": "42",
        "name": "alice",
        "role": "moderator",
        "jti": claims.jti,
        "iss": "chatterd",
        "aud": "chatterd",
        "iat": claims.issued_at,
        "exp": int(claims.expires_at),
        "sid": "s-1",
        "sv": 3,
    }
