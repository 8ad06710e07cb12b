"""The outbox and its sender against a real SMTP server: delivery, TLS and login, outages, restarts, giving up."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from prometheus_client import REGISTRY

from core.keys import db_key
from tests.support.common import wait_for
from tests.support.smtp import CODE_IN_SUBJECT, MailServer
from tests.support.tls import self_signed_certificate

PASSWORD = "correct horse battery"
FAST_RETRY = {"mail_retry_seconds": 0.05}


async def register(client: Any, username: str, email: str) -> None:
    resp = await client.post("/register", json={"username": username, "password": PASSWORD, "email": email})
    assert resp.status == 201, await resp.text()


async def outbox(client: Any) -> list[tuple[Any, ...]]:
    """(recipient, kind, attempts, sent, failed, sealed is NULL, last_error) of every message, oldest first."""
    async with client.app[db_key].cursor() as cur:
        await cur.execute(
            "SELECT recipient, kind, attempts, sent_at IS NOT NULL, failed_at IS NOT NULL, sealed IS NULL, last_error"
            " FROM mail_outbox ORDER BY id"
        )
        return await cur.fetchall()


async def outbox_settles(client: Any, predicate: Any, what: str) -> list[tuple[Any, ...]]:
    async def settled() -> list[tuple[Any, ...]] | None:
        rows = await outbox(client)
        return rows if rows and predicate(rows) else None

    return await wait_for(settled, timeout=20, what=what)


async def test_a_code_goes_out_through_smtp_and_the_outbox_keeps_no_text(make_client, smtp):
    client = await make_client(smtp_url=smtp.url(), email_from="chatterd <no-reply@chatterd.test>")
    await register(client, "ann", "ann@example.com")
    [message] = await smtp.wait_for_mail("ann@example.com")
    assert message["From"] == "chatterd <no-reply@chatterd.test>" and message["To"] == "ann@example.com"
    assert message["Auto-Submitted"] == "auto-generated" and message["Message-ID"].endswith("@chatterd.test>")
    assert smtp.received[0][0] == "no-reply@chatterd.test"  # the envelope sender
    code = await smtp.code_for("ann@example.com")
    assert re.fullmatch(r"\d{6}", code) and "Hello ann" in message.get_content()
    rows = await outbox_settles(client, lambda rows: rows[0][3], "the message to be marked sent")
    assert rows == [("ann@example.com", "verify_email", 1, True, False, True, None)]


async def test_the_sealed_outbox_holds_no_code_in_clear(make_client):
    server = MailServer()  # not listening: the message waits in the outbox
    client = await make_client(smtp_url=server.url(), **FAST_RETRY)
    await register(client, "ann", "ann@example.com")
    async with client.app[db_key].cursor() as cur:
        await cur.execute("SELECT sealed FROM mail_outbox")
        (sealed,) = await cur.fetchone()
    await server.start()
    try:
        code = await server.code_for("ann@example.com")
    finally:
        await server.stop()
    assert code.encode() not in bytes(sealed) and b"ann" not in bytes(sealed)


@pytest.mark.parametrize("implicit_tls", [False, True], ids=["starttls", "smtps"])
async def test_tls_and_login(make_client, tmp_path, implicit_tls):
    certificate = self_signed_certificate(tmp_path)
    server = MailServer(certificate=certificate, implicit_tls=implicit_tls, login=("chatterd", "p@ss:word"))
    await server.start()
    try:
        assert server.url().startswith("smtps://" if implicit_tls else "smtp://")
        client = await make_client(smtp_url=server.url(), smtp_ca_file=certificate[0])
        await register(client, "ann", "ann@example.com")
        assert CODE_IN_SUBJECT.match(str((await server.wait_for_mail("ann@example.com"))[0]["Subject"]))
    finally:
        await server.stop()


async def test_a_wrong_smtp_password_keeps_the_message_waiting_and_says_why(make_client, tmp_path):
    certificate = self_signed_certificate(tmp_path)
    server = MailServer(certificate=certificate, login=("chatterd", "right"))
    await server.start()
    try:
        client = await make_client(smtp_url=server.url(password="wrong"), smtp_ca_file=certificate[0], **FAST_RETRY)
        await register(client, "ann", "ann@example.com")
        rows = await outbox_settles(client, lambda rows: rows[0][2] >= 2, "two failed attempts")
        *_, sent, failed, _, error = rows[0]
        assert (sent, failed) == (False, False) and "authentication failed: 535" in error
        assert server.received == []
    finally:
        await server.stop()


async def test_an_smtp_outage_delays_mail_and_loses_none(make_client):
    server = MailServer()  # down
    client = await make_client(smtp_url=server.url(), **FAST_RETRY)
    await register(client, "ann", "ann@example.com")  # answered while the relay is down: a request never waits on it
    await register(client, "bob", "bob@example.com")
    rows = await outbox_settles(client, lambda rows: all(row[2] >= 2 for row in rows), "retries during the outage")
    assert all(not sent and not failed and error for _, _, _, sent, failed, _, error in rows)
    await server.start()
    try:
        await server.wait_for_mail("ann@example.com")
        await server.wait_for_mail("bob@example.com")
        await outbox_settles(client, lambda rows: all(row[3] for row in rows), "both marked sent")
        assert len(server.received) == 2
    finally:
        await server.stop()


async def test_mail_waiting_when_the_server_stops_goes_out_after_a_restart(make_client):
    server = MailServer()  # down
    first = await make_client(smtp_url=server.url(), **FAST_RETRY)
    await register(first, "ann", "ann@example.com")
    await outbox_settles(first, lambda rows: rows[0][2] >= 1, "a failed attempt")
    await first.close()  # the server stops with the message undelivered
    await server.start()
    try:
        second = await make_client(smtp_url=server.url(), **FAST_RETRY)
        await server.wait_for_mail("ann@example.com")
        rows = await outbox_settles(second, lambda rows: rows[0][3], "the message to be marked sent")
        assert len(rows) == 1 and len(server.received) == 1
    finally:
        await server.stop()


def attempts_counted(outcome: str) -> float:
    labels = {"kind": "verify_email", "outcome": outcome}
    return REGISTRY.get_sample_value("chatterd_mail_attempts_total", labels) or 0.0


async def test_a_refused_recipient_is_given_up_at_once_with_the_reason(make_client, smtp):
    failed_before = attempts_counted("failed")
    smtp.refused.add("nobody@example.com")
    client = await make_client(smtp_url=smtp.url(), **FAST_RETRY)
    await register(client, "ann", "nobody@example.com")
    rows = await outbox_settles(client, lambda rows: rows[0][4], "the message to be given up")
    assert rows[0][2:6] == (1, False, True, True)  # one attempt, not sent, failed, its text dropped
    assert "550" in rows[0][6]
    assert attempts_counted("failed") == failed_before + 1


async def test_an_outage_longer_than_the_bound_gives_up_and_records_why(make_client):
    server = MailServer()  # never up
    client = await make_client(smtp_url=server.url(), mail_max_attempts=3, **FAST_RETRY)
    await register(client, "ann", "ann@example.com")
    rows = await outbox_settles(client, lambda rows: rows[0][4], "the message to be given up")
    assert rows[0][2:6] == (3, False, True, True)
    assert "Connect" in rows[0][6] or "refused" in rows[0][6].lower()


async def test_mail_sealed_under_another_secret_key_is_given_up_not_sent(make_client, smtp):
    server = MailServer()  # down while the first server writes the message
    first = await make_client(smtp_url=server.url())
    await register(first, "ann", "ann@example.com")
    await first.close()
    second = await make_client(smtp_url=smtp.url(), secret_key="another secret key, long enough " * 2)
    rows = await outbox_settles(second, lambda rows: rows[0][4], "the message to be given up")
    assert "cannot be written" in rows[0][6] and smtp.received == []


async def test_without_smtp_url_each_message_is_logged_with_its_code(make_client, caplog):
    client = await make_client()  # the test settings set no SMTP_URL
    with caplog.at_level(logging.INFO, logger="mail.smtp"):
        await register(client, "ann", "ann@example.com")

        async def logged() -> str | None:
            texts = [r.getMessage() for r in caplog.records if r.name == "mail.smtp"]
            return next((t for t in texts if "ann@example.com" in t), None)

        text = await wait_for(logged, timeout=20, what="the message in the log")
    match = re.search(r"(\d{6}) is your chatterd verification code", text)
    assert match is not None and f"    {match.group(1)}" in text
    rows = await outbox_settles(client, lambda rows: rows[0][3], "the message to be marked sent")
    assert rows[0][:4] == ("ann@example.com", "verify_email", 1, True)
