"""The log lines of a session (/api/systemSessions/{id}/events)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from exporter.simulator.catalog import CANCELED_MESSAGE, KINDS_BY_TYPE, STOPPED_BY, display_name
from exporter.simulator.model import SUCCESS, SimEvent
from exporter.simulator.records import Fixed, Record


def events_of(record: Record, now: datetime) -> list[SimEvent]:
    """Events written up to `now`; a running session has no outcome lines yet."""
    if isinstance(record, Fixed):
        end, state = record.ended, record.state
    else:
        end = record.end if record.end <= now else None
        state = record.state
    # Seeded by the id so the small gaps between lines never change between requests.
    rng = random.Random(record.id)
    kind = KINDS_BY_TYPE.get(record.session_type)
    display = display_name(record.session_type)
    host = record.host or "localhost"
    lines: list[tuple[datetime, str]] = []
    at = record.created
    lines.append((at, _text(kind.start_line if kind else "", f"Starting {display}...", host)))
    at += timedelta(seconds=rng.uniform(0.01, 0.05))
    lines.append((at, "Job successfully started."))
    for line in kind.progress if kind else ():
        at += timedelta(seconds=rng.uniform(0.0, 0.03))
        lines.append((at, line.format(host=host)))
    if end is not None:
        outcome_at = max(at, end - timedelta(seconds=rng.uniform(0.05, 0.3)))
        if record.canceled:
            lines.append((outcome_at, f"Stop request received from user {STOPPED_BY}."))
            outcome = record.message or CANCELED_MESSAGE
        elif state == SUCCESS:
            fallback = f"{display} completed successfully."
            outcome = record.message or _text(kind.success_line if kind else "", fallback, host)
        else:
            outcome = record.message or f"{display} finished with state {state}."
        lines.append((outcome_at, outcome))
        finish = _text(kind.finish_line if kind else "", f"{display} finished.", host)
        lines.append((max(outcome_at, end - timedelta(microseconds=3000)), finish))
    visible = [(t, text) for t, text in lines if t <= now or isinstance(record, Fixed)]
    return [SimEvent(created=t, message=text, order=i) for i, (t, text) in enumerate(visible, 1)]


def _text(template: str, fallback: str, host: str) -> str:
    return template.format(host=host) if template else fallback
