"""What the metrics must say, computed from the simulator's own records by the stated rules.

Written from the rules alone (README.md, "Metrics" and "How sessions are read"), on the
simulator's `SimSession` values: it shares no code
with `exporter.parse`, `exporter.snapshot` or `exporter.collector`, so a bug there cannot hide
itself by being computed the same way here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from exporter.simulator import SimSession

from .helpers import FINISHED, HISTOGRAM, SampleKey, key

KNOWN_STATES = ("InProgress", "CompletedSuccessfully", "CompletedWarning", "Failed")
RESULTS = ("Success", "Warning", "Failed")
# The histogram buckets, le="1", "5", ... "86400", as prometheus-client writes them.
BUCKETS = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 7200, 21600, 86400)
BUCKET_LABELS = (*(f"{b}.0" for b in BUCKETS), "+Inf")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_WORDS = {
    "Success": "Success",
    "CompletedSuccessfully": "Success",
    "Warning": "Warning",
    "CompletedWarning": "Warning",
    "Failed": "Failed",
}
_SAYS_NOTHING = ("", "None", "InProgress")


def unix(moment: datetime) -> float:
    return (moment - _EPOCH).total_seconds()


def is_running(s: SimSession) -> bool:
    """Running: State InProgress, or no end time while Result/Result says nothing."""
    return s.state == "InProgress" or (s.ended is None and s.result in _SAYS_NOTHING)


def result_of(s: SimSession) -> str:
    """Result/Result mapped; if it says nothing, State mapped; anything else Unknown."""
    word = s.state if s.result in _SAYS_NOTHING else s.result
    return _WORDS.get(word, "Unknown")


def duration_of(s: SimSession) -> float | None:
    return None if s.ended is None else unix(s.ended) - unix(s.created)


def message_label(message: str) -> str:
    """Trimmed, inner whitespace runs collapsed to one space, first 200 code points."""
    return " ".join(message.split())[:200]


def _newness(s: SimSession) -> tuple[datetime, bool, datetime, str]:
    # Newest: latest creation, then latest end (a missing end is older than any), then UID.
    # Every UID is "urn:veeam:SystemSession:" + id, so ids order like UIDs.
    return (s.created, s.ended is not None, s.ended or s.created, s.id)


def newest(sessions: Iterable[SimSession]) -> SimSession | None:
    return max(sessions, key=_newness, default=None)


def session_gauges(server: str, sessions: Sequence[SimSession]) -> dict[SampleKey, float]:
    """Every session gauge for one server's answer."""
    out: dict[SampleKey, float] = {}
    for session_type in sorted({s.session_type for s in sessions}):
        mine = [s for s in sessions if s.session_type == session_type]
        labels = {"server": server, "session_type": session_type}

        for state in {*KNOWN_STATES, *(s.state for s in mine)}:
            count = sum(1 for s in mine if s.state == state)
            out[key("veeam_em_system_sessions", state=state, **labels)] = count
        out[key("veeam_em_system_sessions_canceled", **labels)] = sum(1 for s in mine if s.canceled)
        out[key("veeam_em_system_session_last_start_timestamp_seconds", **labels)] = max(
            unix(s.created) for s in mine
        )

        finished = [s for s in mine if not is_running(s)]
        last = newest(finished)
        if last is not None:
            ended, duration = last.ended, duration_of(last)
            if ended is not None and duration is not None:
                out[key("veeam_em_system_session_last_end_timestamp_seconds", **labels)] = unix(
                    ended
                )
                out[key("veeam_em_system_session_last_duration_seconds", **labels)] = duration
            result = result_of(last)
            for r in RESULTS:
                out[key("veeam_em_system_session_last_result", result=r, **labels)] = float(
                    r == result
                )
            if result == "Unknown":
                out[key("veeam_em_system_session_last_result", result="Unknown", **labels)] = 1.0

        success = newest(s for s in finished if result_of(s) == "Success")
        if success is not None and success.ended is not None:
            out[key("veeam_em_system_session_last_success_timestamp_seconds", **labels)] = unix(
                success.ended
            )
        failure = newest(s for s in finished if result_of(s) == "Failed")
        if failure is not None:
            if failure.ended is not None:
                out[key("veeam_em_system_session_last_failure_timestamp_seconds", **labels)] = unix(
                    failure.ended
                )
            message = message_label(failure.message)
            out[key("veeam_em_system_session_last_failure_info", message=message, **labels)] = 1.0

        running = [unix(s.created) for s in mine if is_running(s)]
        if running:
            out[key("veeam_em_system_session_oldest_running_start_timestamp_seconds", **labels)] = (
                min(running)
            )
    return out


def histogram(server: str, session_type: str, durations: Sequence[float]) -> dict[SampleKey, float]:
    """The duration histogram of one type after observing exactly `durations`."""
    labels = {"server": server, "session_type": session_type}
    out: dict[SampleKey, float] = {}
    for bound, label in zip((*BUCKETS, float("inf")), BUCKET_LABELS, strict=True):
        out[key(HISTOGRAM + "_bucket", le=label, **labels)] = sum(
            1 for d in durations if d <= bound
        )
    out[key(HISTOGRAM + "_count", **labels)] = len(durations)
    out[key(HISTOGRAM + "_sum", **labels)] = sum(durations)
    return out


def counters(
    server: str, session_types: Iterable[str], counted: Sequence[SimSession]
) -> dict[SampleKey, float]:
    """finished_total and the histogram after counting exactly `counted` since start-up.

    Every type in `session_types` has Success/Warning/Failed and a histogram (zero series);
    Unknown appears only once it happened.
    """
    out: dict[SampleKey, float] = {}
    for session_type in sorted(set(session_types) | {s.session_type for s in counted}):
        mine = [s for s in counted if s.session_type == session_type]
        results = {result_of(s) for s in mine} | set(RESULTS)
        for result in results:
            out[key(FINISHED, server=server, session_type=session_type, result=result)] = sum(
                1 for s in mine if result_of(s) == result
            )
        durations = [d for d in (duration_of(s) for s in mine) if d is not None]
        out.update(histogram(server, session_type, durations))
    return out
