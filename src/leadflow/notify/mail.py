"""Sending email: over SMTP when ``LEADFLOW_SMTP_HOST`` is set, else into the workspace's outbox
directory as ``.eml`` files (the embedded default, so the demo works without a mail server).

A send ends in one of three ways, and the caller needs to tell them apart to promise "at most
once": it was accepted; it certainly was not (:class:`NotDelivered`: refused, or the connection
failed before the message was handed over); or nobody can know (:class:`DeliveryInDoubt`: the
connection broke after the message was handed over, so the server may have it).
"""

from __future__ import annotations

import os
import smtplib
import ssl
from dataclasses import dataclass
from email import policy
from email.headerregistry import HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from leadflow.errors import LeadflowError

DEFAULT_SENDER = "leadflow@localhost"


class NotDelivered(LeadflowError):
    """The message certainly did not reach the server: it may be sent again."""


class DeliveryInDoubt(LeadflowError):
    """The connection broke after the message was handed over: the server may have it."""


def sender_address() -> str:
    """The From address (``LEADFLOW_SMTP_FROM``), also the domain of Message-IDs."""
    return os.environ.get("LEADFLOW_SMTP_FROM") or DEFAULT_SENDER


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    user: str | None
    password: str | None
    tls: str  # none | starttls | ssl
    sender: str
    timeout: float

    @classmethod
    def from_env(cls) -> SmtpSettings | None:
        host = os.environ.get("LEADFLOW_SMTP_HOST")
        if not host:
            return None
        tls = os.environ.get("LEADFLOW_SMTP_TLS", "starttls").lower()
        return cls(
            host=host,
            port=int(os.environ.get("LEADFLOW_SMTP_PORT", "465" if tls == "ssl" else "587")),
            user=os.environ.get("LEADFLOW_SMTP_USER") or None,
            password=os.environ.get("LEADFLOW_SMTP_PASSWORD") or None,
            tls=tls,
            sender=sender_address(),
            timeout=float(os.environ.get("LEADFLOW_SMTP_TIMEOUT", "30")),
        )


class UriListHeader(UnstructuredHeader):
    """``List-Unsubscribe: <https://...>, <mailto:...>`` (RFC 2369) written as it is.

    The default policy folds a header line longer than 78 characters, and a URL has no space to
    fold at, so it RFC 2047-encodes the whole value (``=?utf-8?q?=3Chttps...``): mail clients
    and providers then find no URL and offer no one-click unsubscribe (RFC 8058). Here the line is
    kept whole (up to RFC 5322's 998 characters), folded only between the URIs if longer.
    """

    LIMIT = 998

    def fold(self, *, policy: Any) -> str:
        value = str(self)
        if not value.isascii():  # URIs are ASCII; anything else gets the ordinary treatment
            return super().fold(policy=policy)
        line = f"{self.name}: {value}"
        if len(line) > self.LIMIT:
            uris = [u.strip() for u in value.split(",")]
            line = f"{self.name}: " + f",{policy.linesep} ".join(uris)
        return line + policy.linesep


_HEADERS = HeaderRegistry()
_HEADERS.map_to_type("list-unsubscribe", UriListHeader)
MAIL_POLICY = policy.default.clone(header_factory=_HEADERS)  # smtplib writes CRLF itself


def new_message() -> EmailMessage:
    """An empty message with the policy that keeps ``List-Unsubscribe`` readable."""
    return EmailMessage(policy=MAIL_POLICY)


class _Smtp(smtplib.SMTP):
    """Knows whether the message was handed over (DATA begun) when a connection breaks."""

    handed_over = False

    def data(self, msg: Any) -> tuple[int, bytes]:
        self.handed_over = True
        return super().data(msg)


class _SmtpSsl(smtplib.SMTP_SSL):
    handed_over = False

    def data(self, msg: Any) -> tuple[int, bytes]:
        self.handed_over = True
        return super().data(msg)


class Mailer:
    """One connection for a batch of messages (``with Mailer(...) as m: m.send(msg)``), opened
    by :meth:`connect` (or the first send) and opened again after it broke."""

    def __init__(self, settings: SmtpSettings | None, outbox: Path | None) -> None:
        self.settings, self.outbox = settings, outbox
        self._smtp: _Smtp | _SmtpSsl | None = None
        self.broken = False  # the last attempt to connect failed

    @property
    def sender(self) -> str:
        return self.settings.sender if self.settings else sender_address()

    def __enter__(self) -> Mailer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def connect(self) -> None:
        """Open the connection now; :class:`NotDelivered` when the server cannot be reached."""
        s = self.settings
        if s is None:
            if self.outbox is not None:
                self.outbox.mkdir(parents=True, exist_ok=True)
            return
        if self._smtp is not None:
            return
        try:
            if s.tls == "ssl":
                smtp: _Smtp | _SmtpSsl = _SmtpSsl(
                    s.host, s.port, timeout=s.timeout, context=ssl.create_default_context()
                )
            else:
                smtp = _Smtp(s.host, s.port, timeout=s.timeout)
                if s.tls == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
            if s.user:
                smtp.login(s.user, s.password or "")
        except (smtplib.SMTPException, OSError) as exc:
            self.broken = True
            raise NotDelivered(_describe(exc)) from exc
        self._smtp, self.broken = smtp, False

    def _close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    def send(self, message: EmailMessage, name: str) -> None:
        """Accepted, or :class:`NotDelivered`, or :class:`DeliveryInDoubt`."""
        if self.settings is None:
            if self.outbox is None:
                raise RuntimeError("no SMTP server (LEADFLOW_SMTP_HOST) and no outbox directory")
            self.outbox.mkdir(parents=True, exist_ok=True)
            (self.outbox / f"{name}.eml").write_bytes(message.as_bytes())
            return
        self.connect()
        smtp = self._smtp
        assert smtp is not None
        smtp.handed_over = False
        try:
            smtp.send_message(message)
        except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused) as exc:  # the server said no
            raise NotDelivered(_describe(exc)) from exc
        except (smtplib.SMTPException, OSError) as exc:  # the connection broke
            self._close()
            if smtp.handed_over:
                raise DeliveryInDoubt(_describe(exc)) from exc
            raise NotDelivered(_describe(exc)) from exc


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"
