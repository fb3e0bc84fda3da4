"""The decoded body the client hands to the parser: read directly, bounded, capped."""

from __future__ import annotations

import gzip
import io
import zlib

import pytest

from exporter.emhttp import AnswerTooLarge, Body


class _Raw:
    """urllib3's response as Body uses it: read(n, decode_content=False)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.reads: list[int] = []

    def read(self, size: int, decode_content: bool = True) -> bytes:
        assert decode_content is False
        self.reads.append(size)
        return self._data.read(size)


PAYLOAD = b"<SystemSessions>" + b"<Sessions/>" * 50_000 + b"</SystemSessions>"


@pytest.mark.parametrize("coding", ["identity", "gzip", "deflate"])
def test_reads_hand_over_at_most_what_was_asked_and_add_up_to_the_body(coding: str) -> None:
    data = {
        "identity": PAYLOAD,
        "gzip": gzip.compress(PAYLOAD),
        "deflate": zlib.compress(PAYLOAD),
    }[coding]
    body = Body(_Raw(data), coding, len(PAYLOAD))
    parts = []
    while chunk := body.read(65536):
        assert isinstance(chunk, bytes)
        assert 0 < len(chunk) <= 65536
        parts.append(chunk)
    assert b"".join(parts) == PAYLOAD
    assert body.delivered == len(PAYLOAD)
    assert body.read(65536) == b""


def test_read_all_readinto_and_a_zero_read() -> None:
    body = Body(_Raw(gzip.compress(PAYLOAD)), "gzip", len(PAYLOAD))
    assert body.read(0) == b""
    buffer = bytearray(10)
    assert body.readinto(buffer) == 10
    assert bytes(buffer) == PAYLOAD[:10]
    assert body.read() == PAYLOAD[10:]


def test_a_gzip_bomb_stops_one_byte_past_the_cap_with_bounded_reads() -> None:
    bomb = gzip.compress(bytes(16 << 20), compresslevel=6)  # 16 MiB in about 16 KiB
    raw = _Raw(bomb)
    body = Body(raw, "gzip", 1 << 20)
    sizes: list[int] = []

    def drain() -> None:
        while chunk := body.read(65536):
            sizes.append(len(chunk))

    with pytest.raises(AnswerTooLarge):
        drain()
    assert body.too_large
    assert max(sizes) <= 65536
    delivered = sum(sizes)
    assert delivered <= 1 << 20
    assert body.delivered == (1 << 20) + 1
    assert body.read(65536) == b""


def test_a_truncated_gzip_body_is_an_error_not_an_end() -> None:
    body = Body(_Raw(gzip.compress(PAYLOAD)[:-20]), "gzip", len(PAYLOAD))
    with pytest.raises(zlib.error):
        body.read()
