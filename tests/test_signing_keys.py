"""signing_keys.py and TokenCodec with ES256/EdDSA keys: kids, round trips, rotation, refusals, key files."""

from __future__ import annotations

import logging
import stat
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from auth.signing_keys import (
    SigningKey,
    generate_private_key,
    jwk_thumbprint,
    load_signing_key,
    load_signing_keys,
    public_jwk,
    write_new_key_file,
)
from auth.tokens import AccessClaims, InvalidToken, TokenCodec
from settings import ConfigError
from tests.support.cli import run_manage
from tests.support.signing import (
    b64url_json,
    expected_kid,
    header_of,
    hmac_token,
    new_key,
    payload_of,
    pem,
    public_pem,
    sign_with_header,
    unb64url,
    unsigned_token,
    write_key,
)

SECRET = "test-secret-0123456789abcdef0123456789abcdef0123456789abcdef0123"
ALGORITHMS = ["ES256", "EdDSA"]
OTHER = {"ES256": "EdDSA", "EdDSA": "ES256"}


def signing_key(algorithm: str) -> SigningKey:
    return SigningKey.from_private_key(new_key(algorithm), algorithm)


def codec_with(*keys: SigningKey, **kwargs: Any) -> TokenCodec:
    return TokenCodec(SECRET, signing_keys=keys, **kwargs)


def good_payload(**changes: Any) -> dict[str, Any]:
    now = time.time()
    payload = {
        "sub": "42",
        "name": "alice",
        "role": "user",
        "jti": "jti-1",
        "iss": "chatterd",
        "aud": "chatterd",
        "iat": now,
        "exp": int(now) + 600,
    }
    return {**payload, **changes}


# ---- kids and JWKs ---------------------------------------------------------------------------------------------


def test_kid_is_the_rfc_8037_thumbprint_of_its_example_key() -> None:
    # RFC 8037 appendix A.1 (the private key) and A.3 (its JWK thumbprint).
    private = ed25519.Ed25519PrivateKey.from_private_bytes(unb64url("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"))
    key = SigningKey.from_private_key(private, "EdDSA")
    assert public_jwk(key.public_key) == {
        "crv": "Ed25519",
        "kty": "OKP",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
    }
    assert key.kid == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_kid_matches_a_thumbprint_computed_independently(algorithm: str) -> None:
    private = new_key(algorithm)
    key = SigningKey.from_private_key(private, algorithm)
    assert key.kid == expected_kid(private)
    assert key.kid == jwk_thumbprint(public_jwk(key.public_key))
    assert len(unb64url(key.kid)) == 32


def test_ec_coordinates_keep_their_leading_zeros() -> None:
    # Find a P-256 key whose x has a leading zero byte: RFC 7518 wants the coordinate at its full 32 bytes anyway.
    for secret in range(1, 5000):
        private = ec.derive_private_key(secret, ec.SECP256R1())
        if private.public_key().public_numbers().x.bit_length() <= 248:
            break
    else:
        pytest.fail("no key with a short x found")
    jwk = SigningKey.from_private_key(private, "ES256").jwk()
    assert len(unb64url(jwk["x"])) == 32 and len(unb64url(jwk["y"])) == 32
    assert unb64url(jwk["x"])[0] == 0
    assert SigningKey.from_private_key(private, "ES256").kid == expected_kid(private)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_jwk_is_public_only(algorithm: str) -> None:
    key = signing_key(algorithm)
    jwk = key.jwk()
    assert jwk["kid"] == key.kid and jwk["alg"] == algorithm and jwk["use"] == "sig"
    assert "d" not in jwk
    assert set(jwk) == ({"kty", "crv", "x", "y"} if algorithm == "ES256" else {"kty", "crv", "x"}) | {
        "kid",
        "alg",
        "use",
    }
    # The JWK is usable as is by a JOSE library.
    assert jwt.PyJWK(jwk).algorithm_name == algorithm


@pytest.mark.parametrize(
    ("kind", "algorithm"),
    [
        ("EdDSA", "ES256"),
        ("P-384", "ES256"),
        ("RSA", "ES256"),
        ("ES256", "EdDSA"),
        ("RSA", "EdDSA"),
        ("ES256", "RS256"),
    ],
)
def test_key_of_the_wrong_type_refused(kind: str, algorithm: str) -> None:
    with pytest.raises(ValueError):
        SigningKey.from_private_key(new_key(kind), algorithm)


# ---- the codec -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_round_trip(algorithm: str) -> None:
    key = signing_key(algorithm)
    codec = codec_with(key)
    token, claims = codec.mint(42, "alice", "moderator", session_id="family-1")
    assert header_of(token) == {"alg": algorithm, "typ": "JWT", "kid": key.kid}
    assert codec.decode(token) == claims
    assert claims == AccessClaims(42, "alice", "moderator", claims.jti, claims.issued_at, claims.expires_at, "family-1")
    assert payload_of(token)["sid"] == "family-1"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_token_verifies_with_the_public_jwk_alone(algorithm: str) -> None:
    key = signing_key(algorithm)
    codec = codec_with(key)
    token, _ = codec.mint(7, "bob", "user")
    (jwk,) = codec.jwks()["keys"]
    payload = jwt.decode(token, jwt.PyJWK(jwk), algorithms=[algorithm], audience="chatterd", issuer="chatterd")
    assert payload["sub"] == "7"


def test_hs256_by_default_and_no_public_keys() -> None:
    codec = TokenCodec(SECRET)
    token, _ = codec.mint(1, "a", "user")
    assert header_of(token) == {"alg": "HS256", "typ": "JWT"}
    assert codec.jwks() == {"keys": []}


def test_jwks_is_a_copy() -> None:
    codec = codec_with(signing_key("ES256"))
    codec.jwks()["keys"][0]["kid"] = "changed"
    assert codec.jwks()["keys"][0]["kid"] != "changed"


def test_first_key_signs_every_key_verifies() -> None:
    old, new = signing_key("ES256"), signing_key("ES256")
    before = codec_with(old)
    old_token, _ = before.mint(1, "a", "user")
    during = codec_with(new, old)
    new_token, _ = during.mint(1, "a", "user")
    assert header_of(new_token)["kid"] == new.kid
    assert during.decode(old_token).user_id == 1
    assert [jwk["kid"] for jwk in during.jwks()["keys"]] == [new.kid, old.kid]
    # Listed but not yet signing (the step before a rotation): its tokens verify already.
    assert codec_with(old, new).decode(new_token).user_id == 1
    after = codec_with(new)
    assert after.decode(new_token).user_id == 1
    with pytest.raises(InvalidToken):
        after.decode(old_token)


def test_keys_must_share_an_algorithm_and_not_repeat() -> None:
    with pytest.raises(ValueError, match="one algorithm"):
        codec_with(signing_key("ES256"), signing_key("EdDSA"))
    key = signing_key("ES256")
    with pytest.raises(ValueError, match="twice"):
        codec_with(key, key)


@pytest.fixture(params=ALGORITHMS)
def configured(request: pytest.FixtureRequest) -> tuple[TokenCodec, SigningKey, Any]:
    """A codec with one key of the parametrised algorithm, the key, and its cryptography private key."""
    private = new_key(request.param)
    key = SigningKey.from_private_key(private, request.param)
    return codec_with(key), key, private


def test_control_a_hand_signed_token_with_our_kid_is_accepted(configured: Any) -> None:
    codec, key, private = configured
    token = jwt.encode(good_payload(), private, algorithm=key.algorithm, headers={"kid": key.kid})
    assert codec.decode(token).user_id == 42
    header = {"alg": key.algorithm, "typ": "JWT", "kid": key.kid}
    assert codec.decode(sign_with_header(header, good_payload(), private, key.algorithm)).user_id == 42


def test_unknown_kid_refused(configured: Any) -> None:
    codec, key, _ = configured
    stranger = signing_key(key.algorithm)
    with pytest.raises(InvalidToken):
        codec.decode(codec_with(stranger).mint(1, "a", "user")[0])


def test_our_kid_on_another_keys_signature_refused(configured: Any) -> None:
    codec, key, _ = configured
    token = jwt.encode(good_payload(), new_key(key.algorithm), algorithm=key.algorithm, headers={"kid": key.kid})
    with pytest.raises(InvalidToken):
        codec.decode(token)


@pytest.mark.parametrize("kid", [None, 7, ["x"], {"k": "v"}, ""])
def test_missing_or_malformed_kid_refused(configured: Any, kid: Any) -> None:
    codec, key, private = configured
    header = {"alg": key.algorithm, "typ": "JWT"} | ({} if kid is None else {"kid": kid})
    token = sign_with_header(header, good_payload(), private, key.algorithm)
    with pytest.raises(InvalidToken):
        codec.decode(token)


@pytest.mark.parametrize("secret", ["pem", "der", "secret_key"])
def test_hs256_refused_whatever_the_secret(configured: Any, secret: str) -> None:
    codec, key, private = configured
    public = private.public_key()
    secrets = {
        "pem": public_pem(private),
        "der": public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        "secret_key": SECRET.encode(),
    }
    with pytest.raises(InvalidToken):
        codec.decode(hmac_token(good_payload(), secrets[secret], key.kid))


def test_alg_none_refused(configured: Any) -> None:
    codec, key, _ = configured
    for kid in (key.kid, None):
        with pytest.raises(InvalidToken):
            codec.decode(unsigned_token(good_payload(), kid))


def test_the_other_asymmetric_algorithm_refused(configured: Any) -> None:
    codec, key, _ = configured
    other = OTHER[key.algorithm]
    token = jwt.encode(good_payload(), new_key(other), algorithm=other, headers={"kid": key.kid})
    with pytest.raises(InvalidToken):
        codec.decode(token)


@pytest.mark.parametrize(("kind", "algorithm"), [("P-384", "ES384"), ("RSA", "RS256"), ("RSA", "PS256")])
def test_other_algorithms_with_our_kid_refused(configured: Any, kind: str, algorithm: str) -> None:
    codec, key, _ = configured
    token = jwt.encode(good_payload(), new_key(kind), algorithm=algorithm, headers={"kid": key.kid})
    with pytest.raises(InvalidToken):
        codec.decode(token)


def test_claims_still_checked(configured: Any) -> None:
    codec, key, private = configured
    for payload in (good_payload(exp=int(time.time()) - 60), good_payload(aud="other"), good_payload(role="root")):
        with pytest.raises(InvalidToken):
            codec.decode(jwt.encode(payload, private, algorithm=key.algorithm, headers={"kid": key.kid}))


def test_tampered_payload_refused(configured: Any) -> None:
    codec, _, _ = configured
    token, _ = codec.mint(1, "a", "user")
    header, _payload, signature = token.split(".")
    forged_payload = b64url_json({**payload_of(token), "role": "admin"})
    with pytest.raises(InvalidToken):
        codec.decode(f"{header}.{forged_payload}.{signature}")


# ---- key files --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_load_signing_keys_in_order(tmp_path: Path, algorithm: str) -> None:
    (first, first_key), (second, second_key) = write_key(tmp_path, algorithm), write_key(tmp_path, algorithm)
    keys = load_signing_keys(algorithm, [first, second])
    assert [key.kid for key in keys] == [expected_kid(first_key), expected_kid(second_key)]
    assert all(key.algorithm == algorithm for key in keys)


def test_traditional_ec_pem_is_accepted(tmp_path: Path) -> None:
    private = new_key("ES256")
    path = tmp_path / "sec1.pem"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    assert load_signing_key(path, "ES256").kid == expected_kid(private)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"not a key", "not a PEM private key"),
        (b"", "not a PEM private key"),
        ("public", "not a PEM private key"),
        ("encrypted", "encrypted"),
        ("ed25519", "P-256"),
        ("p384", "P-256"),
        ("rsa", "P-256"),
        (b"x" * 100_000, "too big"),
    ],
)
def test_bad_key_files_are_config_errors(tmp_path: Path, content: Any, needle: str) -> None:
    made = {
        "public": lambda: public_pem(new_key("ES256")),
        "encrypted": lambda: pem(new_key("ES256"), password=b"hunter2hunter2"),
        "ed25519": lambda: pem(new_key("EdDSA")),
        "p384": lambda: pem(new_key("P-384")),
        "rsa": lambda: pem(new_key("RSA")),
    }
    path = tmp_path / "key.pem"
    path.write_bytes(made[content]() if isinstance(content, str) else content)
    with pytest.raises(ConfigError, match=needle):
        load_signing_keys("ES256", [path])


def test_missing_and_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_signing_keys("ES256", [tmp_path / "missing.pem"])
    with pytest.raises(ConfigError, match="cannot read"):
        load_signing_keys("ES256", [tmp_path])  # a directory


def test_the_same_key_twice_is_a_config_error(tmp_path: Path) -> None:
    path, private = write_key(tmp_path, "EdDSA")
    copy = tmp_path / "copy.pem"
    copy.write_bytes(pem(private))
    with pytest.raises(ConfigError, match="already listed"):
        load_signing_keys("EdDSA", [path, copy])


def test_a_key_others_can_read_is_loaded_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path, _ = write_key(tmp_path, "ES256")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="auth.signing_keys"):
        load_signing_key(path, "ES256")
    assert "chmod 600" in caplog.text
    assert b"PRIVATE KEY" not in caplog.text.encode()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_write_new_key_file(tmp_path: Path, algorithm: str) -> None:
    private = generate_private_key(algorithm)
    path = tmp_path / "sub" / "key.pem"
    write_new_key_file(path, private)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS8
    assert load_signing_key(path, algorithm).kid == expected_kid(private)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        write_new_key_file(path, generate_private_key(algorithm))
    assert path.read_bytes() == before


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_manage_generate_signing_key(tmp_path: Path, algorithm: str) -> None:
    out = tmp_path / f"jwt-{algorithm.lower()}-2026-11.pem"
    result = run_manage("generate-signing-key", "--algorithm", algorithm, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = load_signing_key(out, algorithm)
    assert f"kid {key.kid}" in result.stdout
    assert "PRIVATE KEY" not in result.stdout + result.stderr
    before = out.read_bytes()
    again = run_manage("generate-signing-key", "--algorithm", algorithm, "--out", str(out))
    assert again.returncode == 1
    assert "already exists" in again.stdout
    assert out.read_bytes() == before


def test_manage_generate_signing_key_needs_a_known_algorithm(tmp_path: Path) -> None:
    result = run_manage("generate-signing-key", "--algorithm", "HS256", "--out", str(tmp_path / "k.pem"))
    assert result.returncode == 2
    assert not (tmp_path / "k.pem").exists()
