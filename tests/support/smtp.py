"""A real SMTP server (aiosmtpd) on loopback for the tests: it keeps what it receives, can go down and come back on
the same port, and can require STARTTLS (or TLS from the start) and a login."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.common import free_port, wait_for

CODE_IN_SUBJECT = re.compile(r"^(\d{6}) is your chatterd")


class _Keeper:
    """The aiosmtpd handler: keeps every message, optionally slowly, or refuses recipients with a 550."""

    def __init__(self, server: MailServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.server.refused:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        if self.server.delay:
            await asyncio.sleep(self.server.delay)
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.server.received.append((envelope.mail_from or "", list(envelope.rcpt_tos), message))
        return "250 OK queued"


class MailServer:
    """An SMTP server on 127.0.0.1 in the test's event loop."""

    def __init__(
        self,
        *,
        certificate: tuple[Path, Path] | None = None,
        implicit_tls: bool = False,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.certificate = certificate
        self.implicit_tls = implicit_tls
        self.login = login
        self.received: list[tuple[str, list[str], EmailMessage]] = []
        self.refused: set[str] = set()
        self.delay = 0.0
        self._server: asyncio.Server | None = None

    def url(self, *, password: str | None = None) -> str:
        """The SMTP_URL that reaches it (with its login, or `password` instead of the right one)."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        userinfo = f"{self.login[0]}:{password or self.login[1]}@" if self.login else ""
        query = "?starttls=1" if self.certificate and not self.implicit_tls else ""
        return f"{scheme}://{userinfo}127.0.0.1:{self.port}{query}"

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.certificate is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*self.certificate)
        return context

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> Any:
        ok = isinstance(data, LoginPassword) and self.login == (data.login.decode(), data.password.decode())
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    def _protocol(self) -> SMTP:
        tls = self._tls_context()
        return SMTP(
            _Keeper(self),
            hostname="chatterd-test-smtp",
            tls_context=None if self.implicit_tls else tls,
            require_starttls=tls is not None and not self.implicit_tls,
            # aiosmtpd cannot tell a connection that was TLS from the start: there it offers AUTH without requiring
            # it (a login that is tried is still checked).
            auth_required=self.login is not None and not self.implicit_tls,
            auth_require_tls=not self.implicit_tls,
            authenticator=self._authenticate if self.login else None,
        )

    async def start(self) -> None:
        """Listen (again) on its port."""
        ssl_context = self._tls_context() if self.implicit_tls else None
        self._server = await asyncio.get_running_loop().create_server(
            self._protocol, host="127.0.0.1", port=self.port, ssl=ssl_context, reuse_address=True
        )

    async def stop(self) -> None:
        """Stop listening: connections are refused until start() again."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def to(self, recipient: str) -> list[EmailMessage]:
        """The messages received for `recipient`, in order."""
        return [message for _, rcpts, message in self.received if recipient in rcpts]

    async def wait_for_mail(self, recipient: str, count: int = 1, *, timeout: float = 20) -> list[EmailMessage]:
        """Wait until `recipient` has `count` messages; all of them."""

        async def arrived() -> list[EmailMessage] | None:
            found = self.to(recipient)
            return found if len(found) >= count else None

        return await wait_for(arrived, timeout=timeout, what=f"{count} message(s) to {recipient}")

    async def code_for(self, recipient: str, *, nth: int = 1, timeout: float = 20) -> str:
        """The code in the `nth` code message `recipient` received, read from the mail as a person would."""

        async def arrived() -> str | None:
            codes = [m for m in self.to(recipient) if CODE_IN_SUBJECT.match(str(m["Subject"]))]
            if len(codes) < nth:
                return None
            match = CODE_IN_SUBJECT.match(str(codes[nth - 1]["Subject"]))
            assert match is not None
            code = match.group(1)
            assert code in codes[nth - 1].get_content(), "the code is in the body too"
            return code

        return await wait_for(arrived, timeout=timeout, what=f"code #{nth} for {recipient}")
