"""Test doubles shared by several test modules."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import BinaryIO, TypeVar

from exporter.emclient import PollError

T = TypeVar("T")

Answer = bytes | PollError


class ScriptedSource:
    """Gives each poll the next scripted answer: a body, or an error to raise."""

    def __init__(self, answers: list[Answer], on_logon: Callable[[], None] = lambda: None) -> None:
        self._answers = answers
        self._on_logon = on_logon
        self._logged_on = False

    def fetch_sessions(self, consume: Callable[[BinaryIO], T]) -> T:
        answer = self._answers.pop(0)
        if isinstance(answer, PollError):
            raise answer
        if not self._logged_on:
            self._logged_on = True
            self._on_logon()
        return consume(io.BytesIO(answer))

    def close(self, timeout: float = 3.0) -> None:
        pass


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Wait on a condition with a deadline; True if it came true in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()
