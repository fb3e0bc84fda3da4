"""Snapshot rules (all known states per type, newest by creation then end then UID, running
sessions, failure messages cleaned) and the ledger's counting rules."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from exporter.parse import Entry, SessionRecord, UnreadableEntry
from exporter.snapshot import (
    UID_RETENTION_SECONDS,
    FinishedLedger,
    LedgerView,
    PollResult,
    build,
    clean_message,
)

T0 = 1_750_000_000.0


def rec(
    uid: str,
    session_type: str = "CollectJob",
    *,
    created: float = T0,
    ended: float | None = None,
    state: str = "CompletedSuccessfully",
    result: str = "Success",
    running: bool = False,
    canceled: bool = False,
    message: str = "",
) -> SessionRecord:
    if running:
        state, result, ended = "InProgress", "", None
    elif ended is None and result:
        ended = created + 10
    return SessionRecord(
        uid=uid,
        session_type=session_type,
        state=state,
        created=created,
        ended=ended,
        running=running,
        result=result,
        canceled=canceled,
        message=message,
    )


def run(
    ledger: FinishedLedger, entries: Iterable[Entry], *, include: tuple[str, ...] = ()
) -> tuple[PollResult, LedgerView]:
    result = build(
        entries,
        taken_at=T0,
        allows=lambda t: not include or t in include,
        already_counted=ledger.__contains__,
    )
    return result, ledger.commit(result, now=T0)


def test_states_have_all_four_known_values_and_unknown_ones_too() -> None:
    result, _ = run(
        FinishedLedger(),
        [
            rec("a"),
            rec("b", running=True),
            rec("c", state="Postponed", result="Unknown"),
            rec("d", "LicAutoUpdate", state="Failed", result="Failed", canceled=True),
        ],
    )
    snap = result.snapshot
    assert dict(snap.sessions) == {
        ("CollectJob", "InProgress"): 1,
        ("CollectJob", "CompletedSuccessfully"): 1,
        ("CollectJob", "CompletedWarning"): 0,
        ("CollectJob", "Failed"): 0,
        ("CollectJob", "Postponed"): 1,
        ("LicAutoUpdate", "InProgress"): 0,
        ("LicAutoUpdate", "CompletedSuccessfully"): 0,
        ("LicAutoUpdate", "CompletedWarning"): 0,
        ("LicAutoUpdate", "Failed"): 1,
    }
    assert dict(snap.canceled) == {"CollectJob": 0, "LicAutoUpdate": 1}


def test_newest_is_by_creation_time_never_by_answer_order() -> None:
    newest = rec(
        "z-new", created=T0 + 100, ended=T0 + 130, result="Warning", state="CompletedWarning"
    )
    older = rec("a-old", created=T0, ended=T0 + 500)
    result, _ = run(FinishedLedger(), [newest, older])
    summary = result.snapshot.types["CollectJob"]
    assert summary.last_start == T0 + 100
    assert summary.newest_finished == newest
    assert summary.newest_success == older


def test_ties_break_on_end_time_then_uid() -> None:
    a = rec("a", created=T0, ended=T0 + 50)
    b = rec("b", created=T0, ended=T0 + 60)
    c = rec("c", created=T0, ended=T0 + 60)
    result, _ = run(FinishedLedger(), [c, a, b])
    assert result.snapshot.types["CollectJob"].newest_finished == c


def test_running_sessions_count_for_start_and_oldest_running_only() -> None:
    result, _ = run(
        FinishedLedger(),
        [
            rec("r1", created=T0 + 50, running=True),
            rec("r2", created=T0 + 20, running=True),
            rec("f", created=T0),
        ],
    )
    summary = result.snapshot.types["CollectJob"]
    assert summary.last_start == T0 + 50
    assert summary.oldest_running_start == T0 + 20
    assert summary.newest_finished is not None and summary.newest_finished.uid == "f"
    assert [r.uid for r in result.newly_finished] == ["f"]


def test_newest_failure_and_success_are_tracked_separately() -> None:
    fail_old = rec("f1", created=T0, state="Failed", result="Failed", message="old")
    fail_new = rec("f2", created=T0 + 10, state="Failed", result="Failed", message="new")
    ok = rec("s", created=T0 + 5)
    result, _ = run(FinishedLedger(), [fail_new, ok, fail_old])
    summary = result.snapshot.types["CollectJob"]
    assert summary.newest_failure == fail_new
    assert summary.newest_success == ok


def test_unreadable_entries_are_counted_whatever_the_filter() -> None:
    result, _ = run(
        FinishedLedger(),
        [UnreadableEntry("no UID"), rec("a", "LogExport"), rec("b"), UnreadableEntry("x")],
        include=("CollectJob",),
    )
    assert result.skipped == 2
    assert set(result.snapshot.types) == {"CollectJob"}


def test_first_successful_poll_is_the_baseline() -> None:
    ledger = FinishedLedger()
    _, view = run(
        ledger, [rec("a"), rec("b", state="Failed", result="Failed"), rec("c", running=True)]
    )
    assert dict(view.finished) == {
        ("CollectJob", "Success"): 0,
        ("CollectJob", "Warning"): 0,
        ("CollectJob", "Failed"): 0,
    }
    assert view.durations["CollectJob"].count == 0
    assert "a" in ledger and "c" not in ledger


def test_new_finishes_are_counted_once_with_their_duration() -> None:
    ledger = FinishedLedger()
    run(ledger, [rec("a"), rec("c", running=True)])
    _, view = run(
        ledger,
        [
            rec("a"),
            rec("c", created=T0, ended=T0 + 45, state="Failed", result="Failed"),
            rec("d", created=T0 + 60, ended=T0 + 62),
        ],
    )
    assert view.finished[("CollectJob", "Failed")] == 1
    assert view.finished[("CollectJob", "Success")] == 1
    hist = view.durations["CollectJob"]
    assert hist.count == 2 and hist.total == pytest.approx(47.0)
    # 2 s falls in le=5, 45 s in le=60; buckets are 1,5,10,30,60,...
    assert hist.bucket_counts[:5] == (0, 1, 0, 0, 1)
    # The same answer again counts nothing more.
    _, again = run(ledger, [rec("a"), rec("c", ended=T0 + 45, state="Failed", result="Failed")])
    assert again.finished == view.finished


def test_a_session_missing_from_one_answer_is_not_counted_again() -> None:
    ledger = FinishedLedger()
    run(ledger, [rec("base")])
    run(ledger, [rec("base"), rec("x", created=T0 + 1)])
    run(ledger, [])  # an empty but valid answer
    _, view = run(ledger, [rec("base"), rec("x", created=T0 + 1)])
    assert view.finished[("CollectJob", "Success")] == 1


def test_duplicate_uid_within_one_answer_counts_once() -> None:
    ledger = FinishedLedger()
    run(ledger, [])
    _, view = run(ledger, [rec("x"), rec("x")])
    assert view.finished[("CollectJob", "Success")] == 1


def test_unknown_result_appears_only_once_it_happens() -> None:
    ledger = FinishedLedger()
    run(ledger, [rec("a")])
    _, view = run(ledger, [rec("u", state="Postponed", result="Unknown")])
    assert view.finished[("CollectJob", "Unknown")] == 1
    assert set(r for (_, r) in view.finished) == {"Success", "Warning", "Failed", "Unknown"}


def test_finished_without_end_time_is_counted_without_a_duration() -> None:
    ledger = FinishedLedger()
    run(ledger, [])
    no_end = SessionRecord("n", "CollectJob", "Failed", T0, None, False, "Failed", False, "")
    _, view = run(ledger, [no_end])
    assert view.finished[("CollectJob", "Failed")] == 1
    assert view.durations["CollectJob"].count == 0


def test_types_stay_in_counters_after_they_leave_the_window() -> None:
    ledger = FinishedLedger()
    run(ledger, [rec("a", "CatalogCrawlJob")])
    result, view = run(ledger, [rec("b")])
    assert "CatalogCrawlJob" not in result.snapshot.types
    assert ("CatalogCrawlJob", "Success") in view.finished
    assert "CatalogCrawlJob" in view.durations


def test_uids_are_forgotten_only_after_the_window_and_margin() -> None:
    ledger = FinishedLedger()
    old = rec("old", created=T0)
    ledger.commit(
        build([old], taken_at=T0, allows=lambda _: True, already_counted=ledger.__contains__),
        now=T0,
    )
    # Missing from later answers, but still inside the retention: remembered.
    ledger.commit(
        build([], taken_at=T0, allows=lambda _: True, already_counted=ledger.__contains__),
        now=T0 + 31 * 86400,
    )
    assert "old" in ledger
    ledger.commit(
        build([], taken_at=T0, allows=lambda _: True, already_counted=ledger.__contains__),
        now=T0 + UID_RETENTION_SECONDS + 1,
    )
    assert "old" not in ledger and len(ledger) == 0


def test_view_is_a_frozen_copy() -> None:
    ledger = FinishedLedger()
    run(ledger, [])
    _, first = run(ledger, [rec("a")])
    run(ledger, [rec("b", created=T0 + 1)])
    assert first.finished[("CollectJob", "Success")] == 1
    with pytest.raises(TypeError):
        first.finished[("CollectJob", "Success")] = 5  # type: ignore[index]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (
            "  Database   maintenance\n\tfailed:\r\n timeout.  ",
            "Database maintenance failed: timeout.",
        ),
        ("", ""),
        ("é" * 250, "é" * 200),
        ("a " * 150, "a " * 100),  # cut after trimming, so a space may end it
    ],
)
def test_failure_messages_are_cleaned(raw: str, clean: str) -> None:
    assert clean_message(raw) == clean


def test_an_em_clock_behind_ours_never_makes_a_session_count_twice() -> None:
    # The EM's clock runs 10 days behind: a session it created 29 of its days ago is still
    # in its window although our clock says 39 days. It must stay remembered.
    skew = 10 * 86400.0
    em_now = T0
    ledger = FinishedLedger()
    old = rec("old", created=em_now - 29 * 86400)
    newest = rec("newest", created=em_now)
    answer = [old, newest]
    ledger.commit(
        build(answer, taken_at=T0, allows=lambda _: True, already_counted=ledger.__contains__),
        now=em_now + skew,
    )
    result = build(answer, taken_at=T0, allows=lambda _: True, already_counted=ledger.__contains__)
    assert result.newly_finished == ()
    view = ledger.commit(result, now=em_now + skew)
    assert "old" in ledger
    assert view.finished[("CollectJob", "Success")] == 0
