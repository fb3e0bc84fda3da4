"""HTTP request and response as the simulator's routes see them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from typing import Literal
from urllib.parse import parse_qs, parse_qsl, urlsplit

Cut = Literal["none", "truncate", "reset"]


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # path and query as sent
    headers: Message
    body: bytes
    client_host: str
    scheme: str
    server_host: str
    server_port: int

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    @property
    def query_pairs(self) -> list[tuple[str, str]]:
        """The query's parameters in the order sent, decoded (only `&` separates them, so
        a raw `;` in a filter stays inside its value)."""
        return parse_qsl(urlsplit(self.target).query, keep_blank_values=True)

    def query_value(self, name: str) -> str | None:
        """First value of a query parameter, the name matched case-insensitively."""
        for key, values in self.query.items():
            if key.lower() == name.lower() and values:
                return values[0]
        return None

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    # truncate: promise the whole body, send part of it, close; reset: no answer, RST.
    cut: Cut = "none"
    # Above 0: seconds between two bytes of the body (of the headers when there is no body).
    trickle: float = 0.0
    # A body made as it is sent, instead of `body`; `length` is its size when known.
    stream: Iterator[bytes] | None = None
    length: int | None = None
    # The body already carries its Content-Encoding: it is never compressed again.
    encoded: bool = False
