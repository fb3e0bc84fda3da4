"""Every snapshot and ledger rule of test_snapshot again, with each poll built as the poller
builds it: given the ledger, so that a baseline is kept packed instead of as tuples. Plus what
that buys: a baseline holds no per-session tuple, and a steady poll holds nothing."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
import test_snapshot
from test_snapshot import DAY, T0, failed, rec

from exporter.parse import Entry
from exporter.snapshot import FinishedLedger, LedgerView, PollResult, build


def run_with_ledger(
    ledger: FinishedLedger,
    entries: Iterable[Entry],
    *,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    at: float = T0,
    max_types: int | None = None,
) -> tuple[PollResult, LedgerView]:
    result = build(
        entries,
        taken_at=at,
        allows=lambda t: (not include or t in include) and t not in exclude,
        ledger=ledger,
        max_types=max_types,
    )
    return result, ledger.commit(result, now=at)


@pytest.fixture(autouse=True)
def _polls_built_with_the_ledger(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(test_snapshot, "run", run_with_ledger)


# Each rule of test_snapshot, collected again here (where run() builds with the ledger),
# but for the one this module states for itself below.
_OWN = {"test_running_sessions_count_for_start_and_oldest_running_only"}
for _name in dir(test_snapshot):
    if _name.startswith("test_") and _name not in _OWN:
        globals()[_name] = getattr(test_snapshot, _name)


def test_running_sessions_count_for_start_and_oldest_running_only() -> None:
    # test_snapshot's rule, but its one finished session is the baseline's: kept packed.
    result, _ = run_with_ledger(
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
    assert result.newly_finished == () and result.fresh == 1


def test_the_baseline_is_kept_packed_not_as_tuples() -> None:
    ledger = FinishedLedger()
    history = [failed(f"h{i}", created=T0 - i) for i in range(1000)]
    result, view = run_with_ledger(ledger, [*history, rec("r", running=True)])
    assert result.newly_finished == ()
    assert result.fresh == 1000
    assert result.remembered is not None and len(result.remembered) == 1000
    assert len(ledger) == 1000 and "h999" in ledger and "r" not in ledger
    assert view.finished[("CollectJob", "Failed")] == 0
    # Steady: the same answer again holds nothing and counts nothing.
    again, view = run_with_ledger(ledger, history, at=T0 + 60)
    assert again.newly_finished == () and again.remembered is None and again.fresh == 0
    assert view.finished[("CollectJob", "Failed")] == 0
    # One new finish: a tuple, counted.
    new, view = run_with_ledger(ledger, [*history, failed("new", created=T0 + 90)], at=T0 + 120)
    assert [f.uid for f in new.newly_finished] == ["new"] and new.remembered is None
    assert view.finished[("CollectJob", "Failed")] == 1


def test_a_type_the_filter_starts_to_allow_is_remembered_packed() -> None:
    ledger = FinishedLedger()
    history = [failed(f"log{day}", "LogExport", created=T0 - day * DAY) for day in range(30)]
    run_with_ledger(ledger, [rec("base"), *history], exclude=("LogExport",))
    result, view = run_with_ledger(
        ledger, [rec("base"), rec("c1", created=T0 + 30), *history], at=T0 + 60
    )
    assert [f.uid for f in result.newly_finished] == ["c1"]
    assert result.remembered is not None and len(result.remembered) == 30
    assert view.finished[("LogExport", "Failed")] == 0
    assert view.finished[("CollectJob", "Success")] == 1


def test_build_needs_a_ledger_or_a_membership_test() -> None:
    with pytest.raises(TypeError, match="ledger or already_counted"):
        build([], taken_at=T0, allows=lambda _: True)
