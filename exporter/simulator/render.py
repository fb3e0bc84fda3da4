"""Chooses XML or JSON for a request and encodes the body bytes."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from exporter.simulator import json_render, xml_render
from exporter.simulator.auth import Logon
from exporter.simulator.json_render import Keys, pascal
from exporter.simulator.model import SimEvent, SimSession

XML_TYPE = "application/xml; charset=utf-8"
JSON_TYPE = "application/json; charset=utf-8"
BOM = b"\xef\xbb\xbf"


def wants_json(accept: str | None) -> bool:
    """Any mention of application/json switches the server to JSON, even after */*."""
    return accept is not None and "application/json" in accept.lower()


@functools.lru_cache(maxsize=512)
def camel(key: str) -> str:
    """System.Text.Json's camelCase: UID -> uid, CreationTimeUTC -> creationTimeUTC."""
    if not key or not key[0].isupper():
        return key
    chars = list(key)
    for i, char in enumerate(chars):
        if i == 1 and not char.isupper():
            break
        if i > 0 and i + 1 < len(chars) and not chars[i + 1].isupper():
            break
        chars[i] = char.lower()
    return "".join(chars)


@dataclass(frozen=True)
class Renderer:
    base: str  # e.g. http://127.0.0.1:9398/api
    json: bool
    camel: bool
    bom: bool
    digits: int

    @property
    def content_type(self) -> str:
        return JSON_TYPE if self.json else XML_TYPE

    @property
    def _k(self) -> Keys:
        return camel if self.camel else pascal

    def _json(self, data: dict[str, Any]) -> bytes:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return BOM + body if self.bom else body

    @staticmethod
    def _xml(text: str) -> bytes:
        return text.encode("utf-8")

    def enterprise_manager(self) -> bytes:
        if self.json:
            return self._json(json_render.enterprise_manager(self._k, self.base))
        return self._xml(xml_render.enterprise_manager(self.base))

    def logon_session(self, logon: Logon) -> bytes:
        if self.json:
            return self._json(json_render.logon_session(self._k, self.base, logon))
        return self._xml(xml_render.logon_session(self.base, logon))

    def logon_sessions(self, items: Sequence[Logon]) -> bytes:
        if self.json:
            return self._json(json_render.logon_sessions(self._k, self.base, items))
        return self._xml(xml_render.logon_sessions(self.base, items))

    def sessions(self, items: Sequence[SimSession]) -> bytes:
        if self.json:
            return self._json(json_render.sessions(self._k, self.base, items, self.digits))
        return self._xml(xml_render.sessions(self.base, items, self.digits))

    def references(self, items: Sequence[SimSession]) -> bytes:
        if self.json:
            return self._json(json_render.references(self._k, self.base, items))
        return self._xml(xml_render.references(self.base, items))

    def entity(self, s: SimSession) -> bytes:
        if self.json:
            return self._json(json_render.session(self._k, self.base, s, self.digits))
        return self._xml(xml_render.entity(self.base, s, self.digits))

    def entity_ref(self, s: SimSession) -> bytes:
        if self.json:
            return self._json(json_render.entity_ref(self._k, self.base, s))
        return self._xml(xml_render.entity_ref(self.base, s))

    def events(self, s: SimSession, items: Sequence[SimEvent]) -> bytes:
        if self.json:
            return self._json(json_render.events(self._k, self.base, s, items, self.digits))
        return self._xml(xml_render.events(self.base, s, items, self.digits))

    def error(self, status: int, message: str) -> bytes:
        if self.json:
            return self._json(json_render.error(self._k, status, message))
        return self._xml(xml_render.error(status, message))


def corrupt(body: bytes, *, json_body: bool) -> bytes:
    """A body cut short and followed by junk, so no parser can accept it."""
    cut = body[: max(len(BOM) + 1, len(body) * 3 // 5)]
    return cut + (b'",,]}' if json_body else b"<</>&")
