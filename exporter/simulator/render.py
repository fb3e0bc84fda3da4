"""Chooses XML or JSON for a request and encodes the body bytes."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from exporter.simulator import job_json, job_xml, json_render, xml_render
from exporter.simulator.auth import Logon
from exporter.simulator.job_model import SimJobSession, SimTaskSession
from exporter.simulator.json_render import Keys, pascal
from exporter.simulator.links import Link
from exporter.simulator.model import SimEvent, SimSession
from exporter.simulator.query import Paging

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

    # job sessions

    def job_sessions(self, root: str, items: Sequence[SimJobSession], em_version: str) -> bytes:
        """A plain `?format=Entity` list: `root` is BackupJobSessions or ReplicaJobSessions."""
        if self.json:
            listed = [
                job_json.job_session(self._k, self.base, s, self.digits, em_version) for s in items
            ]
            return self._json({self._k(root): listed})
        return self._xml(job_xml.job_sessions(self.base, root, items, self.digits, em_version))

    def job_references(self, items: Sequence[SimJobSession]) -> bytes:
        if self.json:
            return self._json(
                {self._k("Refs"): [job_json.job_reference(self._k, self.base, s) for s in items]}
            )
        return self._xml(job_xml.job_references(self.base, items))

    def job_entity(self, s: SimJobSession, em_version: str) -> bytes:
        if self.json:
            return self._json(job_json.job_session(self._k, self.base, s, self.digits, em_version))
        return self._xml(job_xml.job_entity(self.base, s, self.digits, em_version))

    def job_entity_ref(self, s: SimJobSession) -> bytes:
        if self.json:
            return self._json(job_json.job_reference(self._k, self.base, s))
        return self._xml(job_xml.job_entity_ref(self.base, s))

    def task_sessions(self, items: Sequence[SimTaskSession]) -> bytes:
        if self.json:
            listed = [job_json.task_session(self._k, self.base, t, self.digits) for t in items]
            return self._json({self._k("BackupTaskSessions"): listed})
        return self._xml(job_xml.task_sessions(self.base, items, self.digits))

    def task_references(self, items: Sequence[SimTaskSession]) -> bytes:
        if self.json:
            refs = [job_json.task_reference(self._k, self.base, t) for t in items]
            return self._json({self._k("Refs"): refs})
        return self._xml(job_xml.task_references(self.base, items))

    def query_result(
        self,
        slot: str,
        entities: bool,
        items: Sequence[SimJobSession | SimTaskSession],
        paging: Paging,
        links: Sequence[Link],
        *,
        em_version: str,
        null_when_empty: bool,
    ) -> bytes:
        """A QueryResult page: the entities in `slot` (BackupJobSessions, ...) or Refs."""
        if self.json:
            k, base, digits = self._k, self.base, self.digits
            data = [_job_item_json(k, base, item, digits, em_version, entities) for item in items]
            return self._json(
                job_json.query_result(
                    k, slot, entities, data, paging, links, null_when_empty=null_when_empty
                )
            )
        parts = [
            _job_item_xml(self.base, item, self.digits, em_version, entities) for item in items
        ]
        return self._xml(
            job_xml.query_result(
                slot, entities, parts, paging, links, null_when_empty=null_when_empty
            )
        )

    def error(self, status: int, message: str) -> bytes:
        if self.json:
            return self._json(json_render.error(self._k, status, message))
        return self._xml(xml_render.error(status, message))


def _job_item_json(
    k: Keys,
    base: str,
    item: SimJobSession | SimTaskSession,
    digits: int,
    em_version: str,
    entities: bool,
) -> dict[str, Any]:
    if isinstance(item, SimTaskSession):
        if entities:
            return job_json.task_session(k, base, item, digits)
        return job_json.task_reference(k, base, item)
    if entities:
        return job_json.job_session(k, base, item, digits, em_version)
    return job_json.job_reference(k, base, item)


def _job_item_xml(
    base: str, item: SimJobSession | SimTaskSession, digits: int, em_version: str, entities: bool
) -> str:
    if isinstance(item, SimTaskSession):
        if entities:
            return job_xml.task_session(base, item, digits, 3)
        return job_xml.task_reference(base, item, 2)
    if entities:
        return job_xml.job_session(base, item, digits, em_version, 3)
    return job_xml.job_reference(base, item, 2)


def corrupt(body: bytes, *, json_body: bool) -> bytes:
    """A body cut short and followed by junk, so no parser can accept it."""
    cut = body[: max(len(BOM) + 1, len(body) * 3 // 5)]
    return cut + (b'",,]}' if json_body else b"<</>&")
