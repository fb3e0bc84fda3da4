"""Fixtures shared by the top-level tests."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest
from fakes import FIXTURES, FakeEM

from exporter import logs


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Every log line of the test, at debug level, as logfmt."""
    out = io.StringIO()
    logs.setup("debug", "logfmt", out)
    yield out
    logs.setup("info", "logfmt")


@pytest.fixture
def fake_em() -> Iterator[str]:
    """A minimal EM on a free loopback port, answering golden_poll1.xml."""
    FakeEM.answers = [(FIXTURES / "golden_poll1.xml").read_bytes()]
    FakeEM.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeEM)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
