"""Crafted EM answers: a few sessions as the XML collection the EM would send."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from xml.sax.saxutils import escape

DAY = 86400.0


@dataclass(frozen=True)
class Session:
    uid: str
    session_type: str = "CollectJob"
    created: float = 1_750_000_000.0
    result: str = "Success"  # "" for a running session
    duration: float = 10.0


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _state(result: str) -> str:
    return {
        "": "InProgress",
        "Success": "CompletedSuccessfully",
        "Warning": "CompletedWarning",
    }.get(result, result)


def xml_answer(*sessions: Session) -> bytes:
    parts = ['<SystemSessions xmlns="http://www.veeam.com/ent/v1.0">']
    for s in sessions:
        ended = "" if not s.result else _iso(s.created + s.duration)
        parts.append(
            f'<Sessions UID="urn:veeam:SystemSession:{escape(s.uid)}">'
            f"<SessionType>{escape(s.session_type)}</SessionType>"
            f"<CreationTimeUTC>{_iso(s.created)}</CreationTimeUTC>"
            f"<EndTimeUTC>{ended}</EndTimeUTC><State>{_state(s.result)}</State>"
            f"<Result><Result>{s.result or 'None'}</Result><Message></Message>"
            "<IsCanceled>false</IsCanceled></Result></Sessions>"
        )
    parts.append("</SystemSessions>")
    return "".join(parts).encode()
