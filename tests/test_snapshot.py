"""Snapshot rules (all known states per type, newest by creation then end then UID, running
sessions, failure messages cleaned, the type cap) and the ledger's counting rules (each UID
once, baselines, pruning by the answer's own clock)."""

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
DAY = 86400.0


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
    ledger: FinishedLedger,
    entries: Iterable[Entry],
    *,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    at: float = T0,
    max_types: int | None = None,
) -> tuple[PollResult, LedgerView]:
    """One poll at ``at`` by our clock, as the poller makes it."""
    result = build(
        entries,
        taken_at=at,
        allows=lambda t: (not include or t in include) and t not in exclude,
        already_counted=ledger.__contains__,
        counted_types=ledger.session_types,
        max_types=max_types,
    )
    return result, ledger.commit(result, now=at)


def failed(uid: str, session_type: str = "CollectJob", *, created: float = T0) -> SessionRecord:
    return rec(uid, session_type, created=created, state="Failed", result="Failed")


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
    run(ledger, [rec("base")])
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
    run(ledger, [rec("base")])
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


def test_absent_uids_are_forgotten_only_after_the_window_and_margin() -> None:
    ledger = FinishedLedger()
    run(ledger, [rec("old", created=T0)])
    # Missing from later answers, but still inside the retention: remembered.
    later = T0 + 31 * DAY
    run(ledger, [rec("new", created=later)], at=later)
    assert "old" in ledger
    past = T0 + UID_RETENTION_SECONDS + 1
    run(ledger, [rec("newer", created=past)], at=past)
    assert "old" not in ledger and "new" in ledger and len(ledger) == 2


def test_view_is_a_frozen_copy() -> None:
    ledger = FinishedLedger()
    run(ledger, [rec("base")])
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


# --- each UID once, whatever the answers and the clocks ------------------------------------


def test_a_uid_in_every_answer_is_never_forgotten_however_old() -> None:
    # Created in 2001 and still reported: age alone must not make the ledger forget it,
    # or the next answer would count it again.
    ancient = failed("2001", created=T0 - 24 * 365 * DAY)
    ledger = FinishedLedger()
    counts = []
    for i in range(5):
        at = T0 + i * 60
        _, view = run(ledger, [ancient, rec(f"n{i}", created=at)], at=at)
        counts.append(view.finished[("CollectJob", "Failed")])
        assert "2001" in ledger
    assert counts == [0, 0, 0, 0, 0]


def test_an_old_uid_counted_by_a_poll_is_kept_by_that_poll() -> None:
    ledger = FinishedLedger()
    run(ledger, [rec("base")])
    ancient = failed("2001", created=T0 - 24 * 365 * DAY)
    counts = []
    for i in range(1, 5):
        at = T0 + i * 60
        _, view = run(ledger, [rec("base"), ancient], at=at)
        counts.append(view.finished[("CollectJob", "Failed")])
    assert counts == [1, 1, 1, 1]


@pytest.mark.parametrize(
    "glitch",
    [[], [UnreadableEntry("no UID"), UnreadableEntry("unreadable CreationTimeUTC")]],
    ids=["empty", "unreadable-only"],
)
def test_an_answer_without_a_readable_entry_prunes_nothing(glitch: list[Entry]) -> None:
    # The EM's clock runs 5 days behind ours. Its five failures of 29 of its days ago are
    # 34 of ours old: an answer with no time in it must not let our clock prune them.
    ours = T0 + 5 * DAY
    failures = [failed(f"f{i}", created=T0 - 29 * DAY + i) for i in range(5)]
    answer = [*failures, rec("newest", created=T0)]
    ledger = FinishedLedger()
    run(ledger, [rec("base", created=T0 - DAY)], at=ours)
    _, view = run(ledger, answer, at=ours)
    assert view.finished[("CollectJob", "Failed")] == 5
    _, view = run(ledger, glitch, at=ours + 60)
    assert view.finished[("CollectJob", "Failed")] == 5
    assert all(f.uid in ledger for f in failures)
    _, view = run(ledger, answer, at=ours + 120)
    assert view.finished[("CollectJob", "Failed")] == 5


def test_pruning_goes_by_the_answers_newest_time_when_the_em_runs_behind() -> None:
    ours = T0 + 5 * DAY  # the EM says T0
    ledger = FinishedLedger()
    gone = rec("gone", created=T0 - UID_RETENTION_SECONDS - 1)
    kept = rec("kept", created=T0 - UID_RETENTION_SECONDS + DAY)  # beyond it by our clock
    run(ledger, [gone, kept, rec("newest", created=T0)], at=ours)
    run(ledger, [rec("newest", created=T0)], at=ours + 60)
    assert "gone" not in ledger
    assert "kept" in ledger and "newest" in ledger


# --- baselines --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "first", [[], [UnreadableEntry("no UID")]], ids=["empty", "unreadable-only"]
)
def test_the_baseline_is_the_first_answer_with_a_readable_entry(first: list[Entry]) -> None:
    history = [failed(f"h{day}", created=T0 - day * DAY) for day in range(30)]
    ledger = FinishedLedger()
    _, view = run(ledger, first)
    assert dict(view.finished) == {} and len(ledger) == 0
    _, view = run(ledger, history, at=T0 + 60)
    assert view.finished[("CollectJob", "Failed")] == 0
    assert len(ledger) == 30
    _, view = run(ledger, [*history, failed("new", created=T0 + 90)], at=T0 + 120)
    assert view.finished[("CollectJob", "Failed")] == 1


def test_a_type_the_filter_starts_to_allow_takes_its_own_baseline() -> None:
    history = [failed(f"log{day}", "LogExport", created=T0 - day * DAY) for day in range(30)]
    ledger = FinishedLedger()
    run(ledger, [rec("base"), *history], exclude=("LogExport",))
    assert "log0" not in ledger
    # The filter no longer excludes LogExport (a reload): its 30 days are history, while
    # CollectJob's new finish of the same answer counts.
    _, view = run(ledger, [rec("base"), rec("c1", created=T0 + 30), *history], at=T0 + 60)
    assert view.finished[("LogExport", "Failed")] == 0
    assert view.durations["LogExport"].count == 0
    assert view.finished[("CollectJob", "Success")] == 1
    assert "log29" in ledger
    _, view = run(
        ledger,
        [rec("base"), *history, failed("log-new", "LogExport", created=T0 + 90)],
        at=T0 + 120,
    )
    assert view.finished[("LogExport", "Failed")] == 1
    assert view.finished[("CollectJob", "Success")] == 1


def test_a_type_back_in_the_filter_counts_nothing_it_finished_while_out() -> None:
    ledger = FinishedLedger()
    run(ledger, [rec("base"), failed("log1", "LogExport")])
    run(ledger, [rec("base"), failed("log2", "LogExport", created=T0 + 30)], exclude=("LogExport",))
    _, view = run(ledger, [rec("base"), failed("log2", "LogExport", created=T0 + 30)], at=T0 + 60)
    assert view.finished[("LogExport", "Failed")] == 0
    assert "log2" in ledger


def test_a_type_the_em_starts_to_report_is_counted() -> None:
    ledger = FinishedLedger()
    run(ledger, [rec("base")])
    _, view = run(ledger, [rec("base"), failed("v1", "VcPluginJob", created=T0 + 30)], at=T0 + 60)
    assert view.finished[("VcPluginJob", "Failed")] == 1


# --- the type cap -----------------------------------------------------------------------------


def test_the_type_cap_keeps_the_first_types_in_sorted_order() -> None:
    # Answer order D, B, A, C: A must push out D, which was admitted first.
    answer: list[Entry] = [
        rec(f"{t}{i}", t, created=T0 + i) for t in ("D", "B", "A", "C") for i in range(3)
    ]
    answer.append(UnreadableEntry("no UID"))
    ledger = FinishedLedger()
    run(ledger, [rec("base", "A")], max_types=2)
    result, view = run(ledger, answer, max_types=2, at=T0 + 60)
    assert set(result.snapshot.types) == {"A", "B"}
    assert {t for t, _ in result.snapshot.sessions} == {"A", "B"}
    assert result.dropped_types == {"C", "D"}
    assert result.dropped_entries == 6
    assert result.skipped == 7
    assert {r.session_type for r in result.newly_finished} == {"A", "B"}
    assert {t for t, _ in view.finished} == {"A", "B"}
    assert set(view.durations) == {"A", "B"}
    assert view.finished[("B", "Success")] == 3
    assert "D0" not in ledger and "C0" not in ledger


def test_types_holding_counters_keep_their_place_under_the_cap() -> None:
    ledger = FinishedLedger()
    run(ledger, [rec("z", "Zeta")], max_types=2)
    result, _ = run(
        ledger, [rec("a", "Alpha"), rec("b", "Beta"), rec("z", "Zeta")], max_types=2, at=T0 + 60
    )
    assert set(result.snapshot.types) == {"Alpha", "Zeta"}
    assert result.dropped_types == {"Beta"}
    # Zeta left the window but holds counters, so it still takes one of the two places.
    result, view = run(ledger, [rec("b", "Beta"), rec("g", "Gamma")], max_types=2, at=T0 + 120)
    assert set(result.snapshot.types) == set()
    assert result.dropped_types == {"Beta", "Gamma"}
    assert set(view.durations) == {"Alpha", "Zeta"}


def test_a_type_let_in_by_a_higher_cap_takes_its_own_baseline() -> None:
    history = [failed(f"b{day}", "Beta", created=T0 - day * DAY) for day in range(30)]
    ledger = FinishedLedger()
    run(ledger, [rec("a", "Alpha"), *history], max_types=1)
    _, view = run(ledger, [rec("a", "Alpha"), *history], max_types=2, at=T0 + 60)
    assert view.finished[("Beta", "Failed")] == 0
    _, view = run(
        ledger, [*history, failed("b-new", "Beta", created=T0 + 90)], max_types=2, at=T0 + 120
    )
    assert view.finished[("Beta", "Failed")] == 1


def test_a_lower_cap_takes_no_counters_away_and_lets_no_new_type_in() -> None:
    ledger = FinishedLedger()
    run(ledger, [rec("a", "A"), rec("b", "B"), rec("c", "C")], max_types=3)
    result, view = run(
        ledger, [rec("a", "A"), rec("b", "B"), rec("0", "0-first")], max_types=1, at=T0 + 60
    )
    assert set(result.snapshot.types) == {"A", "B"}
    assert result.dropped_types == {"0-first"}
    assert set(view.durations) == {"A", "B", "C"}
