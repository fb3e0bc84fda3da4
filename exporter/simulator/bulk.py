"""Answers too large to build in memory, made as they are sent: a padded collection and a
gzip bomb."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

_BLOCK = 1 << 20
_ZEROS = bytes(_BLOCK)
_SPACES = b" " * _BLOCK


def padded(body: bytes, size: int, *, json_body: bool) -> tuple[Iterator[bytes], int]:
    """``body`` with whitespace inside its outermost element or object, so the document
    stays valid and a reader has to read all of it; at least ``size`` bytes."""
    if json_body:
        cut = body.rfind(b"}")
    else:
        cut = body.rfind(b"</")
        if cut < 0:  # an empty collection is one self-closing element
            cut = body.rfind(b"/>")
    if cut < 0:
        cut = len(body)
    pad = max(0, size - len(body))

    def chunks() -> Iterator[bytes]:
        yield body[:cut]
        left = pad
        while left > 0:
            piece = _SPACES[: min(left, _BLOCK)]
            left -= len(piece)
            yield piece
        yield body[cut:]

    return chunks(), len(body) + pad


def _deflate_block(data: bytes) -> bytes:
    # A full flush resets the compressor and ends on a byte boundary: such pieces, however
    # made, concatenate into one valid deflate stream.
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)


_FULL_BLOCK = _deflate_block(_ZEROS)
_FINAL = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS).flush(zlib.Z_FINISH)
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"


def gzip_bomb(size: int) -> tuple[Iterator[bytes], int]:
    """A valid gzip stream of ``size`` zero bytes, about size/1000 bytes long, and its length.

    The compressed stream is assembled from one precomputed block, so sending it costs next
    to nothing; only the CRC is computed, block by block as the stream goes.
    """
    full, rest = divmod(size, _BLOCK)
    tail = _deflate_block(_ZEROS[:rest]) if rest else b""
    length = len(_GZIP_HEADER) + full * len(_FULL_BLOCK) + len(tail) + len(_FINAL) + 8

    def chunks() -> Iterator[bytes]:
        yield _GZIP_HEADER
        crc = 0
        for _ in range(full):
            crc = zlib.crc32(_ZEROS, crc)
            yield _FULL_BLOCK
        if rest:
            crc = zlib.crc32(_ZEROS[:rest], crc)
            yield tail
        yield _FINAL + struct.pack("<II", crc, size & 0xFFFFFFFF)

    return chunks(), length
