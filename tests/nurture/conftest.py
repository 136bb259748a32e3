"""A real SMTP sink that keeps the bytes it received, when, and can hold a message at DATA."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest

from tests.conftest import Inbox, serve_smtp


@dataclass(frozen=True)
class Received:
    rcpt: list[str]
    raw: bytes
    at: float  # time.monotonic() when the data had arrived

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class Sink(Inbox):
    """The shared fixture's inbox, also keeping each message's raw bytes. ``hold`` picks a
    message to hold at DATA (the server has it, the client waits for the reply): ``held`` is
    set when it arrives, ``release`` lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[Received] = []
        self.hold: Callable[[Received], bool] | None = None
        self.held = threading.Event()
        self.release = threading.Event()
        self.delay = 0.0
        self.answer: Callable[[Received], str | None] | None = None  # a reply instead of 250, or "drop"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        got = Received(list(envelope.rcpt_tos), bytes(envelope.content), time.monotonic())
        self.received.append(got)
        if self.hold is not None and not self.held.is_set() and self.hold(got):
            self.held.set()
            deadline = time.monotonic() + 60
            while not self.release.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        elif self.delay:
            await asyncio.sleep(self.delay)
        answer = self.answer(got) if self.answer is not None else None
        if answer == "drop":  # the connection breaks while the client waits for the reply
            server.transport.close()
            return "421 closing"
        if answer is not None:
            return answer
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sink]:
    inbox = Sink()
    controller = serve_smtp(inbox, monkeypatch)
    yield inbox
    inbox.release.set()
    controller.stop()
