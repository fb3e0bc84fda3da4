"""XML representations, shaped like Veeam's examples (element names and attribute order)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from exporter.simulator import links as L
from exporter.simulator.auth import Logon
from exporter.simulator.links import Link
from exporter.simulator.model import SimEvent, SimSession
from exporter.simulator.timefmt import format_timestamp

NAMESPACE = "http://www.veeam.com/ent/v1.0"
_ROOT_NAMESPACES = [
    ("xmlns:xsd", "http://www.w3.org/2001/XMLSchema"),
    ("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"),
    ("xmlns", NAMESPACE),
]
DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'
# Characters XML 1.0 cannot carry at all; .NET would refuse them, we substitute.
_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

Attrs = list[tuple[str, str]]
Node = tuple[str, Attrs, "str | list[Node] | None"]


_SPECIAL = re.compile('[&<>"\r\n\t]|' + _INVALID.pattern)


def escape_text(value: str) -> str:
    if not _SPECIAL.search(value):
        return value
    value = _INVALID.sub("\ufffd", value)
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#xD;")
    )


def escape_attr(value: str) -> str:
    if not _SPECIAL.search(value):
        return value
    return escape_text(value).replace('"', "&quot;").replace("\n", "&#xA;").replace("\t", "&#x9;")


def _write(node: Node, depth: int, out: list[str]) -> None:
    tag, attrs, content = node
    pad = "  " * depth
    attr_text = "".join(f' {k}="{escape_attr(v)}"' for k, v in attrs)
    if not content:
        out.append(f"{pad}<{tag}{attr_text}/>\n")
    elif isinstance(content, str):
        out.append(f"{pad}<{tag}{attr_text}>{escape_text(content)}</{tag}>\n")
    else:
        out.append(f"{pad}<{tag}{attr_text}>\n")
        for child in content:
            _write(child, depth + 1, out)
        out.append(f"{pad}</{tag}>\n")


def document(tag: str, attrs: Attrs, children: list[Node]) -> str:
    out = [DECLARATION]
    _write((tag, _ROOT_NAMESPACES + attrs, children), 0, out)
    return "".join(out)


def _links(items: Sequence[Link]) -> Node:
    nodes: list[Node] = []
    for link in items:
        attrs: Attrs = [("Href", link.href)]
        if link.name is not None:
            attrs.append(("Name", link.name))
        if link.type is not None:
            attrs.append(("Type", link.type))
        attrs.append(("Rel", link.rel))
        nodes.append(("Link", attrs, None))
    return ("Links", [], nodes)


def links_xml(items: Sequence[Link], pad: str) -> str:
    lines = [f"{pad}<Links>\n"]
    for link in items:
        name = f' Name="{escape_attr(link.name)}"' if link.name is not None else ""
        kind = f' Type="{link.type}"' if link.type is not None else ""
        lines.append(
            f'{pad}  <Link Href="{escape_attr(link.href)}"{name}{kind} Rel="{link.rel}"/>\n'
        )
    lines.append(f"{pad}</Links>\n")
    return "".join(lines)


def _session_xml(base: str, s: SimSession, digits: int, depth: int, tag: str, lead: str) -> str:
    """One session, written directly: lists hold thousands, so no intermediate tree."""
    pad = "  " * depth
    inner = pad + "  "
    name = escape_attr(s.name)
    ended = (
        f"{inner}<EndTimeUTC>{format_timestamp(s.ended, digits)}</EndTimeUTC>\n"
        if s.ended is not None
        else ""
    )
    message = f"<Message>{escape_text(s.message)}</Message>" if s.message else "<Message/>"
    href = escape_attr(L.session_entity_href(base, s.id))
    return (
        f'{pad}<{tag}{lead} Href="{href}" Type="SystemSession" Name="{name}"'
        f' UID="{L.session_uid(s.id)}">\n'
        f"{links_xml(L.entity_links(base, s.id, s.name), inner)}"
        f"{inner}<SessionType>{escape_text(s.session_type)}</SessionType>\n"
        f"{inner}<CreationTimeUTC>{format_timestamp(s.created, digits)}</CreationTimeUTC>\n"
        f"{ended}"
        f"{inner}<State>{escape_text(s.state)}</State>\n"
        f"{inner}<Result>\n"
        f"{inner}  <Result>{escape_text(s.result)}</Result>\n"
        f"{inner}  {message}\n"
        f"{inner}  <IsCanceled>{'true' if s.canceled else 'false'}</IsCanceled>\n"
        f"{inner}</Result>\n"
        f"{pad}</{tag}>\n"
    )


def root_namespaces() -> str:
    return "".join(f' {k}="{v}"' for k, v in _ROOT_NAMESPACES)


def sessions(base: str, items: Sequence[SimSession], digits: int) -> str:
    if not items:
        return document("SystemSessions", [], [])
    parts = [DECLARATION, f"<SystemSessions{root_namespaces()}>\n"]
    parts += [_session_xml(base, s, digits, 1, "Sessions", "") for s in items]
    parts.append("</SystemSessions>\n")
    return "".join(parts)


def entity(base: str, s: SimSession, digits: int) -> str:
    return DECLARATION + _session_xml(base, s, digits, 0, "SystemSession", root_namespaces())


def _ref_attrs(base: str, s: SimSession) -> Attrs:
    return [
        ("UID", L.session_uid(s.id)),
        ("Name", s.name),
        ("Href", L.session_ref_href(base, s.id)),
        ("Type", "SystemSessionReference"),
    ]


def references(base: str, items: Sequence[SimSession]) -> str:
    nodes: list[Node] = [
        ("Ref", _ref_attrs(base, s), [_links(L.reference_links(base, s.id, s.name))]) for s in items
    ]
    return document("EntityReferences", [], nodes)


def entity_ref(base: str, s: SimSession) -> str:
    return document(
        "EntityRef", _ref_attrs(base, s), [_links(L.reference_links(base, s.id, s.name))]
    )


def events(base: str, s: SimSession, items: Sequence[SimEvent], digits: int) -> str:
    children: list[Node] = [_links(L.events_links(base, s.id, s.name))]
    for event in items:
        fields: list[Node] = [
            # Event times are kind-unspecified in Veeam's example: no zone suffix.
            ("CreationTimeUTC", [], format_timestamp(event.created, digits, zulu=False)),
            ("Message", [], event.message),
            ("Order", [], str(event.order)),
        ]
        children.append(("Events", [], fields))
    attrs: Attrs = [("Href", L.session_events_href(base, s.id)), ("Type", "SystemSessionEvents")]
    return document("SystemSessionEvents", attrs, children)


def _logon_node_parts(base: str, logon: Logon) -> tuple[Attrs, list[Node]]:
    attrs: Attrs = [("Href", L.logon_href(base, logon.session_id)), ("Type", "LogonSession")]
    children: list[Node] = [
        _links(L.logon_links(base, logon.session_id)),
        ("UserName", [], logon.username),
        ("SessionId", [], logon.session_id),
    ]
    return attrs, children


def logon_session(base: str, logon: Logon) -> str:
    attrs, children = _logon_node_parts(base, logon)
    return document("LogonSession", attrs, children)


def logon_sessions(base: str, items: Sequence[Logon]) -> str:
    nodes: list[Node] = [("LogonSession", *_logon_node_parts(base, logon)) for logon in items]
    return document("LogonSessions", [], nodes)


def enterprise_manager(base: str) -> str:
    versions: list[Node] = [
        ("SupportedVersion", [("Name", v)], [_links(L.version_links(base, v))]) for v in L.VERSIONS
    ]
    children: list[Node] = [
        _links(L.enterprise_manager_links(base)),
        ("SupportedVersions", [], versions),
    ]
    return document("EnterpriseManager", [], children)


def error(status: int, message: str) -> str:
    return document("Error", [("Message", message), ("StatusCode", str(status))], [])
