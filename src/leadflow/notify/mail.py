"""Sending email: over SMTP when ``LEADFLOW_SMTP_HOST`` is set, else into the workspace's outbox
directory as ``.eml`` files (the embedded default, so the demo works without a mail server)."""

from __future__ import annotations

import os
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    user: str | None
    password: str | None
    tls: str  # none | starttls | ssl
    sender: str

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
            sender=os.environ.get("LEADFLOW_SMTP_FROM", "leadflow@localhost"),
        )


class Mailer:
    """One connection for a batch of messages (``with Mailer(...) as m: m.send(msg)``)."""

    def __init__(self, settings: SmtpSettings | None, outbox: Path | None) -> None:
        self.settings, self.outbox = settings, outbox
        self._smtp: smtplib.SMTP | None = None

    @property
    def sender(self) -> str:
        return self.settings.sender if self.settings else "leadflow@localhost"

    def __enter__(self) -> Mailer:
        s = self.settings
        if s is not None:
            context = ssl.create_default_context()
            if s.tls == "ssl":
                self._smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=30, context=context)
            else:
                self._smtp = smtplib.SMTP(s.host, s.port, timeout=30)
                if s.tls == "starttls":
                    self._smtp.starttls(context=context)
            if s.user:
                self._smtp.login(s.user, s.password or "")
        elif self.outbox is not None:
            self.outbox.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except smtplib.SMTPException:
                self._smtp.close()

    def send(self, message: EmailMessage, name: str) -> None:
        if self._smtp is not None:
            self._smtp.send_message(message)
        elif self.outbox is not None:
            (self.outbox / f"{name}.eml").write_bytes(bytes(message))
        else:
            raise RuntimeError("no SMTP server (LEADFLOW_SMTP_HOST) and no outbox directory")
