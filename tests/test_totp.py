"""Tests for totp.py: one-time codes against real RFC 6238 computation."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from auth.totp import new_secret, provisioning_uri, verify_code

NOW = 1_700_000_013.5
STEP = int(NOW // 30)


@pytest.fixture
def secret() -> str:
    return new_secret()


def code_at(secret: str, when: float) -> str:
    return pyotp.TOTP(secret).at(when)


def test_new_secret_shape() -> None:
    secret = new_secret()
    assert len(secret) == 32
    assert set(secret) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    assert new_secret() != secret


def test_rfc6238_vector() -> None:
    # RFC 6238 appendix B, SHA-1, T = 59 s, last six digits of 94287082.
    secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    assert verify_code(secret, "287082", None, now=59, window=0) == 1


def test_correct_code_accepted(secret: str) -> None:
    assert verify_code(secret, code_at(secret, NOW), None, now=NOW) == STEP


def test_code_accepted_only_once(secret: str) -> None:
    code = code_at(secret, NOW)
    step = verify_code(secret, code, None, now=NOW)
    assert step == STEP
    assert verify_code(secret, code, step, now=NOW) is None
    # Still refused a little later, while it is inside the window.
    assert verify_code(secret, code, step, now=NOW + 30) is None


def test_older_code_refused_after_newer_one_used(secret: str) -> None:
    assert verify_code(secret, code_at(secret, NOW - 30), STEP, now=NOW) is None


def test_next_code_accepted_after_previous_used(secret: str) -> None:
    assert verify_code(secret, code_at(secret, NOW + 30), STEP, now=NOW + 30) == STEP + 1


def test_previous_step_accepted_within_window(secret: str) -> None:
    code = code_at(secret, NOW - 30)
    assert verify_code(secret, code, None, now=NOW) == STEP - 1
    assert verify_code(secret, code, None, now=NOW, window=0) is None


def test_next_step_accepted_within_window(secret: str) -> None:
    assert verify_code(secret, code_at(secret, NOW + 30), None, now=NOW) == STEP + 1


def test_wider_window(secret: str) -> None:
    assert verify_code(secret, code_at(secret, NOW - 60), None, now=NOW) is None
    assert verify_code(secret, code_at(secret, NOW - 60), None, now=NOW, window=2) == STEP - 2


@pytest.mark.parametrize("offset", [-300, -90, 90, 3600])
def test_far_codes_refused(secret: str, offset: int) -> None:
    code = code_at(secret, NOW + offset)
    # A far code may coincide with a near one (1 in 10**6 per step); that is not what this test is about.
    near = {code_at(secret, NOW + d) for d in (-30, 0, 30)}
    if code in near:
        pytest.skip("random secret gave a colliding code")
    assert verify_code(secret, code, None, now=NOW) is None


def test_wrong_code_refused(secret: str) -> None:
    near = {code_at(secret, NOW + d) for d in (-30, 0, 30)}
    wrong = next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in near)
    assert verify_code(secret, wrong, None, now=NOW) is None


def test_other_secret_refused(secret: str) -> None:
    other = new_secret()
    code = code_at(other, NOW)
    if code in {code_at(secret, NOW + d) for d in (-30, 0, 30)}:
        pytest.skip("random secrets gave a colliding code")
    assert verify_code(secret, code, None, now=NOW) is None


def test_uses_the_clock_by_default(secret: str) -> None:
    # window=1 absorbs a step boundary passing between the two calls.
    step = verify_code(secret, pyotp.TOTP(secret).now(), None)
    assert step is not None
    assert abs(step - int(time.time() // 30)) <= 1


def test_near_the_epoch(secret: str) -> None:
    # Steps before 0 do not exist; they are skipped, not an error.
    assert verify_code(secret, code_at(secret, 0), None, now=5) == 0


@pytest.mark.parametrize(
    "code",
    [
        "",
        "12345",
        "1234567",
        "abcdef",
        "12345a",
        " 12345",
        "12345 ",
        "123 45",
        "123456\n",
        "+12345",
        "-12345",
        "12_345",
        # Arabic-Indic, fullwidth and superscript digits: str.isdigit() says yes to all three.
        "\u0661\u0662\u0663\u0664\u0665\u0666",
        "\uff11\uff12\uff13\uff14\uff15\uff16",
        "\u00b9\u00b2\u00b3\u2074\u2075\u2076",
        123456,
        123456.0,
        None,
        b"123456",
        ["123456"],
        True,
    ],
)
def test_malformed_codes_refused_without_exceptions(secret: str, code: object) -> None:
    assert verify_code(secret, code, None, now=NOW) is None


def test_valid_code_as_int_refused(secret: str) -> None:
    code = code_at(secret, NOW)
    assert verify_code(secret, int(code), None, now=NOW) is None


def test_negative_window(secret: str) -> None:
    with pytest.raises(ValueError, match="window"):
        verify_code(secret, "123456", None, now=NOW, window=-1)


def test_provisioning_uri(secret: str) -> None:
    uri = provisioning_uri(secret, "alice@example.com")
    parts = urlsplit(uri)
    assert parts.scheme == "otpauth"
    assert parts.netloc == "totp"
    assert parts.path == "/chatterd:alice%40example.com"
    query = parse_qs(parts.query)
    assert query["secret"] == [secret]
    assert query["issuer"] == ["chatterd"]
    # What an authenticator app would do with it.
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert parsed.secret == secret
    assert parsed.name == "alice@example.com"
    assert parsed.issuer == "chatterd"
    assert verify_code(secret, parsed.at(NOW), None, now=NOW) == STEP


def test_provisioning_uri_quotes_names(secret: str) -> None:
    uri = provisioning_uri(secret, "bob smith", issuer="Chatter Dev")
    assert uri.startswith("otpauth://totp/Chatter%20Dev:bob%20smith?")
    parsed = pyotp.parse_uri(uri)
    assert (parsed.name, parsed.issuer) == ("bob smith", "Chatter Dev")
