"""What every Enterprise Manager body shares, for the client's small bodies and the parser's
session collections alike: an optional UTF-8 byte-order mark, JSON keys whose case depends on
the EM version (v12 PascalCase, v13 camelCase), and XML that must be read hardened.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def strip_bom(body: bytes) -> bytes:
    return body.removeprefix(b"\xef\xbb\xbf")


def fold_keys(obj: Mapping[Any, Any]) -> dict[str, Any]:
    """The object with lower-cased keys, so that lookups ignore the EM version's casing."""
    return {str(k).lower(): v for k, v in obj.items()}
