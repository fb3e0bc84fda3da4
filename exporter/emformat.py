"""What every Enterprise Manager body shares, for the client's small bodies and the parser's
session collections alike: an optional UTF-8 byte-order mark, JSON keys whose case depends on
the EM version (v12 PascalCase, v13 camelCase), XML that must be read hardened, and text that
must come out valid whatever bytes the EM sent.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final, TypedDict


class _ParserOptions(TypedDict):
    resolve_entities: bool
    load_dtd: bool
    no_network: bool


# Entities, DTDs and network access off: an answer can never make the exporter read a file
# or a URL, nor expand into gigabytes.
HARDENED_XML: Final[_ParserOptions] = {
    "resolve_entities": False,
    "load_dtd": False,
    "no_network": True,
}

REPLACEMENT: Final = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")
_ENCODING_DECLARATION = re.compile(rb"<\?xml[^>]*?\sencoding\s*=\s*[\"']([A-Za-z0-9._-]+)")


def strip_bom(body: bytes) -> bytes:
    return body.removeprefix(b"\xef\xbb\xbf")


def fold_keys(obj: Mapping[Any, Any]) -> dict[str, Any]:
    """The object with lower-cased keys, so that lookups ignore the EM version's casing."""
    return {str(k).lower(): v for k, v in obj.items()}


def valid_text(text: str) -> str:
    """The text with each lone surrogate (a JSON ``\\ud800`` escape) replaced by U+FFFD, so
    that it always encodes as UTF-8."""
    if text.isascii():
        return text
    return _SURROGATE.sub(REPLACEMENT, text)


def repaired_utf8(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The same UTF-8 byte stream with every undecodable byte replaced by U+FFFD.

    Chunk boundaries may split a character; the decoder carries it over. ASCII chunks, the
    common case, pass through untouched.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    for chunk in chunks:
        if chunk.isascii() and not decoder.getstate()[0]:
            yield chunk
        else:
            yield decoder.decode(chunk).encode()
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail.encode()


def declares_utf8(prefix: bytes) -> bool:
    """Whether an XML answer is UTF-8, from its first bytes: no UTF-16/32 byte-order mark or
    zero bytes, and an XML declaration, if any, that names UTF-8. Only such an answer may have
    its undecodable bytes repaired (:func:`repaired_utf8`) before the XML parser reads it."""
    if prefix[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in prefix[:4]:
        return False
    declared = _ENCODING_DECLARATION.match(prefix.removeprefix(b"\xef\xbb\xbf"))
    return declared is None or declared.group(1).lower() in (b"utf-8", b"utf8")
