"""The job-session reducer: counting once, the baseline, per-job state, lookups, pruning."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from exporter.jobsessions.parse import JobSessionRecord
from exporter.jobsessions.plan import MAX_LOOKUP_ATTEMPTS
from exporter.jobsessions.reduce import JobLedger, JobView, PollAnswer
from exporter.parse import UnreadableEntry

DAY = 86400.0
T0 = 1781589600.0  # 2026-06-16T06:00:00Z
RETENTION = 11 * DAY
JOB = ("vbr01", "Job A", "Backup")


def session(
    uid: str,
    created: float,
    *,
    ended: float | None = None,
    result: str = "",
    retry: bool = False,
    job: tuple[str, str, str] = JOB,
    progress: float | None = None,
) -> JobSessionRecord:
    finished = bool(result)
    if finished and ended is None:
        ended = created + 600
    return JobSessionRecord(
        uid=uid,
        job_name=job[1],
        job_type=job[2],
        backup_server=job[0],
        created=created,
        ended=ended,
        finished=finished,
        result=result,
        retry=retry,
        progress=progress,
    )


def answer(
    *queries: Iterable[JobSessionRecord | UnreadableEntry],
    allows: Callable[[str], bool] = lambda _: True,
) -> PollAnswer:
    gathered = PollAnswer(allows)
    for entries in queries:
        gathered.begin_query()
        gathered.add_all(entries)
    return gathered


def finished(view: JobView, job: tuple[str, str, str] = JOB) -> dict[tuple[str, bool], int]:
    return {k: v for k, v in view.jobs[job].finished.items() if v}


def test_the_baseline_is_not_counted_but_seeds_every_job() -> None:
    ledger = JobLedger(RETENTION)
    view = ledger.commit(
        answer(
            [
                session("a1", T0 - 7 * DAY, result="Failed"),
                session("a2", T0 - 6 * DAY, result="Success"),
                session("r1", T0 - 600, progress=30.0),
            ]
        ),
        now=T0,
    )
    job = view.jobs[JOB]
    # Every result at 0 with both retry values, once the job is known.
    assert job.finished == {
        (result, retry): 0 for result in ("Success", "Warning", "Failed") for retry in (False, True)
    }
    assert job.newest_finished is not None and job.newest_finished.uid == "a2"
    assert job.newest_failure is not None and job.newest_failure.uid == "a1"
    assert (job.running, job.oldest_running_start, job.running_progress) == (1, T0 - 600, 30.0)
    assert job.last_start == T0 - 600
    assert view.durations[("vbr01", "Backup")].count == 0
    assert "a1" in ledger and "r1" not in ledger


def test_a_session_is_counted_when_first_seen_finished_and_never_again() -> None:
    ledger = JobLedger(RETENTION)
    ledger.commit(answer([session("r1", T0 - 600)]), now=T0)
    done = session("r1", T0 - 600, ended=T0 + 240, result="Failed", retry=True)
    view = ledger.commit(answer([done]), now=T0 + 300)
    assert finished(view) == {("Failed", True): 1}
    hist = view.durations[("vbr01", "Backup")]
    assert (hist.count, hist.total) == (1, 840.0)
    assert view.jobs[JOB].running == 0
    # Out of one answer and back in the next: still once.
    ledger.commit(answer([]), now=T0 + 600)
    view = ledger.commit(answer([done]), now=T0 + 900)
    assert finished(view) == {("Failed", True): 1}


def test_a_retry_that_succeeds_clears_the_last_result_but_not_the_last_failure() -> None:
    ledger = JobLedger(RETENTION)
    ledger.commit(answer([session("old", T0 - DAY, result="Success")]), now=T0)
    first = session("f1", T0, ended=T0 + 100, result="Failed")
    retry = session("f2", T0 + 200, ended=T0 + 300, result="Success", retry=True)
    view = ledger.commit(answer([retry, first]), now=T0 + 400)  # order of the answer ignored
    job = view.jobs[JOB]
    assert finished(view) == {("Failed", False): 1, ("Success", True): 1}
    assert job.newest_finished is not None and job.newest_finished.uid == "f2"
    assert job.newest_failure is not None and job.newest_failure.ended == T0 + 100
    assert job.newest_success is not None and job.newest_success.ended == T0 + 300


def test_an_unknown_result_is_counted_under_its_own_name() -> None:
    ledger = JobLedger(RETENTION)
    ledger.commit(answer([session("r", T0)]), now=T0)
    view = ledger.commit(answer([session("r", T0, result="Unknown")]), now=T0 + 60)
    assert finished(view) == {("Unknown", False): 1}
    assert len(view.jobs[JOB].finished) == 7


def test_duplicates_in_one_query_keep_the_more_final_entry_and_are_counted() -> None:
    ledger = JobLedger(RETENTION)
    ledger.commit(answer([session("x", T0 - DAY, result="Success")]), now=T0)
    running = session("d", T0)
    early = session("d", T0, ended=T0 + 10, result="Warning")
    late = session("d", T0, ended=T0 + 50, result="Failed")
    gathered = answer([running, late, early, running])
    assert gathered.duplicates == 3
    view = ledger.commit(gathered, now=T0 + 60)
    assert finished(view) == {("Failed", False): 1}
    assert view.jobs[JOB].running == 0


def test_the_same_session_in_both_queries_is_no_duplicate() -> None:
    gathered = answer([session("r", T0)], [session("r", T0)])
    assert gathered.duplicates == 0
    assert len(gathered.sessions) == 1


def test_a_session_that_finished_after_leaving_the_window_is_found_by_its_lookup() -> None:
    ledger = JobLedger(RETENTION)
    ledger.commit(answer([session("long", T0 - 3 * DAY)]), now=T0)
    empty = answer([])
    (vanished,) = ledger.vanished(empty)
    assert vanished.uid == "long"
    # The poll looks it up and adds what the EM says.
    empty.begin_query()
    empty.add(session("long", T0 - 3 * DAY, ended=T0 + 50, result="Success"))
    view = ledger.commit(empty, now=T0 + 300)
    assert finished(view) == {("Success", False): 1}
    assert ledger.vanished(answer([])) == []


def test_a_vanished_session_the_em_no_longer_has_is_forgotten_uncounted() -> None:
    ledger = JobLedger(RETENTION)
    ledger.commit(answer([session("gone", T0)]), now=T0)
    gathered = answer([])
    gathered.forgotten.add("gone")
    view = ledger.commit(gathered, now=T0 + 300)
    assert finished(view) == {}
    assert view.jobs[JOB].running == 0
    assert ledger.vanished(answer([])) == []


def test_a_lookup_that_keeps_failing_is_given_up() -> None:
    ledger = JobLedger(RETENTION)
    ledger.commit(answer([session("stuck", T0)]), now=T0)
    for attempt in range(MAX_LOOKUP_ATTEMPTS):
        assert [r.uid for r in ledger.vanished(answer([]))] == ["stuck"], attempt
        gathered = answer([])
        gathered.failed_lookups.add("stuck")
        ledger.commit(gathered, now=T0 + 300 * (attempt + 1))
    assert ledger.vanished(answer([])) == []


def test_without_a_readable_entry_the_baseline_waits_for_the_first_answer_that_has_one() -> None:
    ledger = JobLedger(RETENTION)
    ledger.commit(answer([UnreadableEntry("no UID")]), now=T0)
    view = ledger.commit(answer([session("b", T0 - 60, result="Success")]), now=T0 + 300)
    assert finished(view) == {}  # the baseline
    view = ledger.commit(
        answer([session("b", T0 - 60, result="Success"), session("c", T0, result="Success")]),
        now=T0 + 600,
    )
    assert finished(view) == {("Success", False): 1}


def test_a_weekly_job_keeps_its_last_result_between_runs() -> None:
    ledger = JobLedger(RETENTION)
    weekly = ("vbr01", "Weekly", "Backup")
    ledger.commit(
        answer([session("w1", T0 - 6 * DAY, result="Failed", job=weekly), session("d", T0)]),
        now=T0,
    )
    for hour in range(1, 5):
        view = ledger.commit(answer([session("d", T0)]), now=T0 + hour * 3600)
    job = view.jobs[weekly]
    assert job.newest_finished is not None and job.newest_finished.result == "Failed"
    assert job.running == 0


def test_a_job_disappears_30_days_after_its_last_session() -> None:
    ledger = JobLedger(RETENTION)
    gone = ("vbr01", "Deleted job", "Backup")
    ledger.commit(answer([session("g", T0, result="Success", job=gone)]), now=T0)
    view = ledger.commit(answer([]), now=T0 + 29 * DAY)
    assert gone in view.jobs
    view = ledger.commit(answer([]), now=T0 + 30 * DAY + 700)
    assert gone not in view.jobs
    assert ("vbr01", "Backup") not in view.durations


def test_a_job_still_in_the_answer_stays_however_old_its_session() -> None:
    ledger = JobLedger(RETENTION)
    phantom = session("p", T0 - 40 * DAY)
    view = ledger.commit(answer([phantom]), now=T0)
    assert view.jobs[JOB].running == 1
    assert view.jobs[JOB].oldest_running_start == T0 - 40 * DAY


def test_pruning_forgets_old_uids_by_the_answers_own_horizon() -> None:
    ledger = JobLedger(RETENTION)
    ledger.commit(
        answer(
            [session("old", T0 - 12 * DAY, result="Success"), session("new", T0, result="Success")]
        ),
        now=T0,
    )
    # Still in the answer: kept however old.
    assert "old" in ledger
    # The EM's clock (newest creation in its answer) is a day behind ours: horizon = T0.
    ledger.commit(answer([session("new", T0, result="Success")]), now=T0 + DAY)
    assert "old" not in ledger and "new" in ledger


def test_pruning_by_an_em_clock_behind_ours_keeps_what_its_window_may_still_return() -> None:
    ledger = JobLedger(RETENTION)
    ledger.commit(answer([session("edge", T0 - 10 * DAY, result="Success")]), now=T0)
    # Our clock says 2 days later, the EM's newest session is from T0: 10 days < retention.
    ledger.commit(answer([session("n", T0, result="Success")]), now=T0 + 2 * DAY)
    assert "edge" in ledger


def test_an_answer_without_a_readable_entry_prunes_nothing() -> None:
    ledger = JobLedger(RETENTION)
    ledger.commit(answer([session("a", T0 - 10 * DAY, result="Success")]), now=T0)
    ledger.commit(answer([UnreadableEntry("no UID")]), now=T0 + 20 * DAY)
    assert "a" in ledger


def test_a_uid_counted_by_this_poll_is_never_pruned_by_it() -> None:
    ledger = JobLedger(RETENTION)
    ledger.commit(answer([session("long", T0 - 20 * DAY)]), now=T0 - 19 * DAY)
    gathered = answer([session("n", T0, result="Success")])
    gathered.begin_query()  # the lookup, as the poll adds it
    gathered.add(session("long", T0 - 20 * DAY, result="Success"))
    gathered.seen.discard("long")  # as if it were in no answer at all
    view = ledger.commit(gathered, now=T0)
    assert finished(view)[("Success", False)] == 2
    assert "long" in ledger


def test_the_job_types_filter_ignores_excluded_types_and_baselines_newly_allowed_ones() -> None:
    ledger = JobLedger(RETENTION)
    worker = ("vbr01", "Copy\\Job A", "ImmediateBackupCopyWorker")
    no_workers: Callable[[str], bool] = lambda t: t != "ImmediateBackupCopyWorker"  # noqa: E731
    first = [session("w1", T0, result="Success", job=worker), session("b1", T0)]
    view = ledger.commit(answer(first, allows=no_workers), now=T0)
    assert set(view.jobs) == {JOB}
    # After a reload that allows them: the workers' finished sessions are their baseline.
    second = [*first, session("w2", T0 + 60, result="Success", job=worker)]
    view = ledger.commit(answer(second), now=T0 + 300)
    assert finished(view, worker) == {}
    view = ledger.commit(
        answer([*second, session("w3", T0 + 400, result="Failed", job=worker)]), now=T0 + 600
    )
    assert finished(view, worker) == {("Failed", False): 1}


def test_a_running_session_outside_a_new_filter_is_no_longer_tracked() -> None:
    ledger = JobLedger(RETENTION)
    ledger.commit(answer([session("r", T0)]), now=T0)
    ledger.commit(answer([session("r", T0)], allows=lambda t: t != "Backup"), now=T0 + 60)
    assert ledger.vanished(answer([])) == []


def test_the_newest_running_session_gives_the_progress() -> None:
    ledger = JobLedger(RETENTION)
    view = ledger.commit(
        answer([session("r2", T0, progress=10.0), session("r1", T0 - 3600, progress=90.0)]),
        now=T0,
    )
    job = view.jobs[JOB]
    assert (job.running, job.oldest_running_start, job.running_progress) == (2, T0 - 3600, 10.0)
    assert view.sessions == 2
