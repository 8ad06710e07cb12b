"""Where mail goes: an SMTP relay named by SMTP_URL (aiosmtplib), or the log when there is none."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

logger = logging.getLogger(__name__)

SMTP_TIMEOUT = 30.0  # seconds for one delivery, connection and TLS included
DEFAULT_PORTS = {"smtp": 25, "smtps": 465}


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """An SMTP relay: `smtp://user:pass@host:port` (`?starttls=1` to require STARTTLS), `smtps://` for implicit TLS."""

    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        """Parse SMTP_URL; ValueError saying what is wrong (without repeating the password)."""
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError("SMTP_URL must look like smtp://user:pass@host:port or smtps://host:port")
        try:
            port = parts.port or DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise ValueError("SMTP_URL has a port that is not a number from 1 to 65535") from None
        query = parse_qs(parts.query)
        unknown = set(query) - {"starttls"}
        if unknown or parts.path not in {"", "/"} or parts.fragment:
            raise ValueError("SMTP_URL takes no path and no query parameter but starttls")
        starttls = query.get("starttls", ["0"])[-1].lower() in {"1", "true", "yes", "on"}
        if starttls and parts.scheme == "smtps":
            raise ValueError("SMTP_URL: smtps:// is TLS from the start; starttls=1 is for smtp://")
        return cls(
            host=parts.hostname,
            port=port,
            implicit_tls=parts.scheme == "smtps",
            starttls=starttls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


def sender_address(email_from: str) -> str:
    """The bare address of EMAIL_FROM (`Name <a@b>` or `a@b`), for the envelope; ValueError when it is not one."""
    if "\r" in email_from or "\n" in email_from:
        raise ValueError("EMAIL_FROM must be one line")
    _, address = parseaddr(email_from)
    if not address or "@" not in address:
        raise ValueError(f"EMAIL_FROM must be an email address, optionally with a name: not {email_from!r}")
    Address(addr_spec=address)  # raises on what a header could not carry
    return address


class DeliveryFailed(Exception):
    """The relay did not take the message; `permanent` when trying again cannot help (a 5xx answer)."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.permanent = permanent


class Transport(Protocol):
    """Something that delivers a message or raises DeliveryFailed."""

    async def deliver(self, message: EmailMessage) -> None:
        """Hand the message over."""


class SmtpTransport:
    """Delivers each message over its own SMTP connection to the relay."""

    def __init__(self, target: SmtpTarget, *, ca_file: Path | None = None, timeout: float = SMTP_TIMEOUT) -> None:
        self.target = target
        self.ca_file = ca_file
        self.timeout = timeout

    async def deliver(self, message: EmailMessage) -> None:
        """Send it; DeliveryFailed (permanent on a 5xx answer) when the relay does not take it."""
        target = self.target
        try:
            await aiosmtplib.send(
                message,
                hostname=target.host,
                port=target.port,
                username=target.username,
                password=target.password,
                use_tls=target.implicit_tls,
                start_tls=target.starttls,  # False, not None: no opportunistic upgrade unless asked for
                cert_bundle=str(self.ca_file) if self.ca_file else None,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refusal.code for refusal in exc.recipients]
            reason = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            raise DeliveryFailed(f"recipient refused: {reason}", permanent=all(c >= 500 for c in codes)) from exc
        except aiosmtplib.SMTPAuthenticationError as exc:
            # A wrong password is the operator's to fix; until then the message waits like in an outage.
            raise DeliveryFailed(f"authentication failed: {exc.code} {exc.message}", permanent=False) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryFailed(f"refused: {exc.code} {exc.message}", permanent=exc.code >= 500) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}", permanent=False) from exc


class LogTransport:
    """No SMTP_URL: every message is written to the log at INFO, codes included, so each flow can be tried locally."""

    async def deliver(self, message: EmailMessage) -> None:
        """Log it."""
        logger.info(
            "mail (no SMTP_URL set) to %s: %s\n%s", message["To"], message["Subject"], message.get_content().strip()
        )
