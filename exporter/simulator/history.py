"""Deterministic schedule of system sessions, generated one UTC day at a time.

Every (job kind, backup server, day) has its own random stream derived from the seed, so a
day looks the same whenever it is generated: at start-up for the history, or later when live
activity reaches it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

from exporter.simulator.catalog import CANCELED_MESSAGE, KINDS, JobKind
from exporter.simulator.model import FAILED, SUCCESS, WARNING
from exporter.simulator.records import Planned
from exporter.simulator.timefmt import name_stamp


def backup_server_names(count: int) -> list[str]:
    width = max(2, len(str(count)))
    return [f"vbr{i:0{width}d}.corp.local" for i in range(1, count + 1)]


def generate_day(seed: int, hosts: Sequence[str], day: date) -> list[Planned]:
    midnight = datetime.combine(day, time(), tzinfo=UTC)
    out: list[Planned] = []
    for kind in KINDS:
        targets: Sequence[str | None] = hosts if kind.per_server else (None,)
        for host in targets:
            out.extend(_sessions_of(kind, seed, host, midnight))
    out.sort(key=lambda planned: planned.created)
    return out


def _sessions_of(kind: JobKind, seed: int, host: str | None, midnight: datetime) -> list[Planned]:
    stream = f"{seed}|{kind.session_type}|{host or '-'}"
    # The phase is per stream, not per day, so a server keeps its rhythm day after day.
    phase = random.Random(stream).uniform(0, 45)
    rng = random.Random(f"{stream}|{midnight.date().isoformat()}")
    out = []
    for start in kind.starts(rng, midnight, phase):
        seconds = kind.duration(rng)
        state, message, canceled = _outcome(kind, rng, host)
        if canceled:
            seconds *= rng.uniform(0.2, 0.9)
        session_id = guid_from_bits(rng.getrandbits(128))
        out.append(
            Planned(
                id=session_id,
                session_type=kind.session_type,
                name=f"{kind.display} @{name_stamp(start)}",
                created=start,
                end=start + timedelta(seconds=seconds),
                state=state,
                message=message,
                canceled=canceled,
                host=host,
            )
        )
    return out


def _outcome(kind: JobKind, rng: random.Random, host: str | None) -> tuple[str, str, bool]:
    roll = rng.random()
    if roll < kind.p_canceled:
        return FAILED, CANCELED_MESSAGE, True
    roll -= kind.p_canceled
    if roll < kind.p_failure and kind.failures:
        return FAILED, rng.choice(kind.failures).format(host=host), False
    roll -= kind.p_failure
    if roll < kind.p_warning and kind.warnings:
        return WARNING, rng.choice(kind.warnings).format(host=host), False
    return SUCCESS, "", False


def guid_from_bits(bits: int) -> str:
    """A version-4 GUID string from 128 random bits (uuid.UUID is slower for thousands)."""
    bits = (bits & ~(0xF000 << 64)) | (0x4000 << 64)
    bits = (bits & ~(0xC000 << 48)) | (0x8000 << 48)
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
