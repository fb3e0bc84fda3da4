"""XML of job sessions, task sessions and query results, shaped like Veeam's examples.

Written as strings directly (a query page holds hundreds of entities): element order
Links, JobUid, JobName, JobType, CreationTimeUTC, EndTimeUTC (absent while running), State,
Result, Progress, FailureMessage (absent when null, as .NET's serializer leaves out a null
string), IsRetry.
"""

from __future__ import annotations

from collections.abc import Sequence

from exporter.simulator import job_links as J
from exporter.simulator.job_model import SimJobSession, SimTaskSession
from exporter.simulator.links import Link
from exporter.simulator.query import Paging
from exporter.simulator.timefmt import format_timestamp
from exporter.simulator.xml_render import (
    DECLARATION,
    escape_attr,
    escape_text,
    links_xml,
    root_namespaces,
)


def _element(pad: str, tag: str, value: str) -> str:
    return f"{pad}<{tag}>{escape_text(value)}</{tag}>\n"


def job_session(
    base: str, s: SimJobSession, digits: int, em_version: str, depth: int, lead: str = ""
) -> str:
    pad = "  " * depth
    inner = pad + "  "
    tag = J.flavour(s).entity_type
    ended = (
        _element(inner, "EndTimeUTC", format_timestamp(s.ended, digits))
        if s.ended is not None
        else ""
    )
    failure = (
        _element(inner, "FailureMessage", s.failure_message)
        if s.failure_message is not None
        else ""
    )
    return (
        f'{pad}<{tag}{lead} Href="{escape_attr(J.entity_href(base, s))}" Type="{tag}"'
        f' Name="{escape_attr(s.name)}" UID="{s.uid}">\n'
        f"{links_xml(J.entity_links(base, s, em_version), inner)}"
        f"{_element(inner, 'JobUid', f'urn:veeam:Job:{s.job_uid}')}"
        f"{_element(inner, 'JobName', s.job_name)}"
        f"{_element(inner, 'JobType', s.job_type)}"
        f"{_element(inner, 'CreationTimeUTC', format_timestamp(s.created, digits))}"
        f"{ended}"
        f"{_element(inner, 'State', s.state)}"
        f"{_element(inner, 'Result', s.result)}"
        f"{inner}<Progress>{s.progress}</Progress>\n"
        f"{failure}"
        f"{inner}<IsRetry>{'true' if s.is_retry else 'false'}</IsRetry>\n"
        f"{pad}</{tag}>\n"
    )


def job_reference(base: str, s: SimJobSession, depth: int, tag: str = "Ref", lead: str = "") -> str:
    pad = "  " * depth
    return (
        f'{pad}<{tag}{lead} Type="{J.flavour(s).reference_type}"'
        f' Href="{escape_attr(J.ref_href(base, s))}" Name="{escape_attr(s.name)}"'
        f' UID="{s.uid}">\n'
        f"{links_xml(J.reference_links(base, s), pad + '  ')}"
        f"{pad}</{tag}>\n"
    )


def task_session(base: str, t: SimTaskSession, digits: int, depth: int, lead: str = "") -> str:
    pad = "  " * depth
    inner = pad + "  "
    ended = (
        _element(inner, "EndTimeUTC", format_timestamp(t.ended, digits))
        if t.ended is not None
        else ""
    )
    reason = _element(inner, "Reason", t.reason) if t.reason else f"{inner}<Reason/>\n"
    href = escape_attr(f"{J.task_ref_href(base, t)}?format=Entity")
    return (
        f'{pad}<BackupTaskSession{lead} Href="{href}" Type="BackupTaskSession"'
        f' Name="{escape_attr(t.name)}" UID="urn:veeam:BackupTaskSession:{t.id}"'
        f' VmDisplayName="{escape_attr(t.vm_name)}">\n'
        f"{links_xml(J.task_entity_links(base, t), inner)}"
        f"{_element(inner, 'JobSessionUid', t.session.uid)}"
        f"{_element(inner, 'CreationTimeUTC', format_timestamp(t.created, digits))}"
        f"{ended}"
        f"{_element(inner, 'State', t.state)}"
        f"{_element(inner, 'Result', t.result)}"
        f"{reason}"
        f"{inner}<TotalSize>{t.total_size}</TotalSize>\n"
        f"{_element(inner, 'VmUid', t.vm_uid)}"
        f"{pad}</BackupTaskSession>\n"
    )


def task_reference(base: str, t: SimTaskSession, depth: int) -> str:
    pad = "  " * depth
    return (
        f'{pad}<Ref Type="BackupTaskSessionReference"'
        f' Href="{escape_attr(J.task_ref_href(base, t))}" Name="{escape_attr(t.name)}"'
        f' UID="urn:veeam:BackupTaskSession:{t.id}">\n'
        f"{links_xml(J.task_reference_links(base, t), pad + '  ')}"
        f"{pad}</Ref>\n"
    )


def _list(root: str, parts: list[str]) -> str:
    if not parts:
        return f"{DECLARATION}<{root}{root_namespaces()}/>\n"
    return "".join([DECLARATION, f"<{root}{root_namespaces()}>\n", *parts, f"</{root}>\n"])


def job_sessions(
    base: str, root: str, items: Sequence[SimJobSession], digits: int, em_version: str
) -> str:
    return _list(root, [job_session(base, s, digits, em_version, 1) for s in items])


def job_references(base: str, items: Sequence[SimJobSession]) -> str:
    return _list("EntityReferences", [job_reference(base, s, 1) for s in items])


def job_entity(base: str, s: SimJobSession, digits: int, em_version: str) -> str:
    return DECLARATION + job_session(base, s, digits, em_version, 0, root_namespaces())


def job_entity_ref(base: str, s: SimJobSession) -> str:
    return DECLARATION + job_reference(base, s, 0, "EntityRef", root_namespaces())


def task_sessions(base: str, items: Sequence[SimTaskSession], digits: int) -> str:
    return _list("BackupTaskSessions", [task_session(base, t, digits, 1) for t in items])


def task_references(base: str, items: Sequence[SimTaskSession]) -> str:
    return _list("EntityReferences", [task_reference(base, t, 1) for t in items])


def query_result(
    slot: str,
    entities: bool,
    parts: list[str],
    paging: Paging,
    links: Sequence[Link],
    *,
    null_when_empty: bool,
) -> str:
    """`parts`: the page's entities (or Refs) already written at depth 3 (depth 2 for Refs)."""
    out = [DECLARATION, f"<QueryResult{root_namespaces()}>\n"]
    if entities:
        if parts:
            out += [
                "  <Entities>\n",
                f"    <{slot}>\n",
                *parts,
                f"    </{slot}>\n",
                "  </Entities>\n",
            ]
        elif null_when_empty:
            out.append("  <Entities/>\n")
        else:
            out.append(f"  <Entities>\n    <{slot}/>\n  </Entities>\n")
    elif parts:
        out += ["  <Refs>\n", *parts, "  </Refs>\n"]
    else:
        out.append("  <Refs/>\n")
    out.append(
        f'  <PagingInfo PageNum="{paging.page}" PageSize="{paging.page_size}"'
        f' PagesCount="{paging.pages}">\n'
    )
    out.append(links_xml(links, "    "))
    out.append("  </PagingInfo>\n</QueryResult>\n")
    return "".join(out)
