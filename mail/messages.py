"""Every message chatterd sends: its kind, the words for it, and the sealed letter the outbox keeps until it goes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from mail.sealing import seal
from mail.smtp import sender_address

CODE_MINUTES = 15  # how long an emailed code works; the SQL that stores codes is given it from here
CODE_KINDS = frozenset({"verify_email", "reset_password"})  # messages that carry a code, useless once it expired

_FOOTER = "\n\nIf this was not you, sign in and change your password, or reset it with /password/forgot.\n"

# kind: (subject, body); `{...}` are the letter's parameters. Codes are in the subject too, for phones' previews.
TEMPLATES: dict[str, tuple[str, str]] = {
    "verify_email": (
        "{code} is your chatterd verification code",
        "Hello {username},\n\nenter this code to confirm that this address belongs to your chatterd account:\n\n"
        "    {code}\n\nIt works once, for " + str(CODE_MINUTES) + " minutes. If you did not ask for it, ignore this "
        "message: the address stays unconfirmed.\n",
    ),
    "reset_password": (
        "{code} is your chatterd password reset code",
        "Hello {username},\n\nsomeone (from {ip}) asked to reset the password of your chatterd account. The code:\n\n"
        "    {code}\n\nIt works once, for " + str(CODE_MINUTES) + " minutes. If you did not ask for it, ignore this "
        "message: your password stays as it is.\n",
    ),
    "new_device": (
        "New sign-in to your chatterd account",
        "Hello {username},\n\nyour account was signed in to from a device not seen before: {device}, from {ip}, "
        "at {at}." + _FOOTER,
    ),
    "password_changed": (
        "Your chatterd password was changed",
        "Hello {username},\n\nthe password of your account was changed at {at} (from {ip}). Your other sessions "
        "were signed out." + _FOOTER,
    ),
    "password_reset": (
        "Your chatterd password was reset",
        "Hello {username},\n\nthe password of your account was reset with a code sent to this address, at {at} "
        "(from {ip}). Every session was signed out." + _FOOTER,
    ),
    "totp_enabled": (
        "Two-factor sign-in was turned on",
        "Hello {username},\n\ntwo-factor sign-in (TOTP) was turned on for your account at {at} (from {ip})." + _FOOTER,
    ),
    "totp_disabled": (
        "Two-factor sign-in was turned off",
        "Hello {username},\n\ntwo-factor sign-in (TOTP) was turned off for your account at {at} (from {ip})." + _FOOTER,
    ),
    "passkey_added": (
        "A passkey was added to your chatterd account",
        "Hello {username},\n\nthe passkey \u201c{name}\u201d was added to your account at {at} (from {ip})." + _FOOTER,
    ),
    "passkey_removed": (
        "A passkey was removed from your chatterd account",
        "Hello {username},\n\nthe passkey \u201c{name}\u201d was removed from your account at {at} (from {ip})."
        + _FOOTER,
    ),
    "email_changed": (
        "The email address of your chatterd account was changed",
        "Hello {username},\n\nthe email address of your account was changed from this one to {new_email} at {at} "
        "(from {ip}). Notices and password resets no longer come here." + _FOOTER,
    ),
    "refresh_reuse": (
        "A chatterd sign-in was ended: its token was used twice",
        "Hello {username},\n\na refresh token of one of your sessions was presented again after it had been used, "
        "at {at} (from {ip}). That can mean it was copied, so the session was signed out." + _FOOTER,
    ),
}


@dataclass(frozen=True, slots=True)
class Letter:
    """A message waiting to be written to the outbox: its kind and its sealed parameters."""

    kind: str
    sealed: bytes


def letter(secret_key: str, kind: str, **params: Any) -> Letter:
    """A letter of `kind` (one of TEMPLATES) with its parameters sealed; `at` defaults to now."""
    if kind not in TEMPLATES:
        raise ValueError(f"no template for {kind!r}")
    params.setdefault("at", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
    return Letter(kind, seal(secret_key, kind, params))


def notice(secret_key: str, kind: str, *, ip: str, **params: Any) -> Letter:
    """A security notice to the account's verified address, about something done from the client address `ip`.

    The user's name is not sealed in: the sender reads the current one.
    """
    return letter(secret_key, kind, ip=ip, **params)


def render(kind: str, params: dict[str, Any], *, email_from: str, recipient: str) -> EmailMessage:
    """The message, ready for the relay; ValueError when a header could not carry a value (CR or LF)."""
    subject, body = TEMPLATES[kind]
    message = EmailMessage()
    message["From"] = email_from
    message["To"] = recipient
    message["Subject"] = subject.format_map(params)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender_address(email_from).rpartition("@")[2])
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    message.set_content(body.format_map(params))
    return message
