"""The job-session request plan: filters, their encoding, paging and its caps, lookups."""

from __future__ import annotations

import urllib.parse

import pytest

from exporter.jobsessions import plan
from exporter.jobsessions.plan import Paging, Stop

NOW = 1781589604.9  # 2026-06-16T06:00:04.9Z


def query_params(path: str) -> list[tuple[str, str]]:
    assert path.startswith("/api/query?")
    return urllib.parse.parse_qsl(path.partition("?")[2], keep_blank_values=True)


def test_the_window_query_asks_for_sessions_created_since_the_window_start_newest_first() -> None:
    query = plan.window_query(NOW, 48 * 3600.0)
    path = query.path(page=1, page_size=500)

    assert query.name == "window"
    assert query_params(path) == [
        ("type", "BackupJobSession"),
        ("format", "Entities"),
        ("filter", 'CreationTime>="2026-06-14T06:00:04Z"'),
        ("sortDesc", "CreationTime"),
        ("pageSize", "500"),
        ("page", "1"),
    ]
    # The whole filter is percent-encoded (quotes, comparison, colons), upper-case hex.
    assert "filter=CreationTime%3E%3D%222026-06-14T06%3A00%3A04Z%22&" in path


def test_the_filter_time_is_utc_whole_seconds_with_z() -> None:
    assert plan.em_time(0.999) == "1970-01-01T00:00:00Z"
    assert plan.window_filter(NOW - 8 * 86400) == 'CreationTime>="2026-06-08T06:00:04Z"'


def test_the_running_query_and_its_fallback() -> None:
    running = plan.running_query()
    assert running.name == "running"
    path = running.path(page=3, page_size=50)
    assert "filter=State%21%3DStopped&" in path
    assert path.endswith("&sortDesc=CreationTime&pageSize=50&page=3")
    fallback = plan.running_query(fallback=True).path(page=1, page_size=500)
    assert dict(query_params(fallback))["filter"] == (
        "State==Working,State==Starting,State==Stopping,State==Pausing,State==Resuming"
    )
    # `,` (OR) is encoded too, so no proxy or server can split the value.
    assert "%2C" in fallback and "," not in fallback


@pytest.mark.parametrize(
    ("page", "entries", "paging", "max_pages", "expected"),
    [
        (1, 500, Paging(1, 500, 3), 40, 2),
        (2, 500, Paging(2, 500, 3), 40, 3),
        (3, 120, Paging(3, 500, 3), 40, Stop.DONE),  # the last page
        (1, 500, None, 40, Stop.DONE),  # no PagingInfo: one page
        (1, 500, Paging(1, 500, None), 40, Stop.DONE),  # no PagesCount: one page
        (1, 0, Paging(1, 500, 0), 40, Stop.DONE),  # PagesCount 0: empty
        (2, 0, Paging(2, 500, 5), 40, Stop.DONE),  # an empty page ends the query
        (4, 500, Paging(4, 500, 9), 4, Stop.TRUNCATED),  # more pages than max_pages
        (4, 500, Paging(4, 500, 4), 4, Stop.DONE),  # exactly max_pages: complete
        (1, 500, Paging(1, 500, 2), 1, Stop.TRUNCATED),
    ],
)
def test_paging(
    page: int, entries: int, paging: Paging | None, max_pages: int, expected: int | Stop
) -> None:
    assert plan.next_page(page, entries, paging, max_pages) == expected


def test_a_lookup_path_holds_only_the_guid_of_the_uid() -> None:
    uid = "urn:veeam:BackupJobSession:A057C2C3-F3BD-4AB4-9FB7-24058CCCB4F6"
    guid = plan.session_guid(uid)
    assert guid == "a057c2c3-f3bd-4ab4-9fb7-24058cccb4f6"
    assert plan.lookup_path(guid) == (
        "/api/backupSessions/a057c2c3-f3bd-4ab4-9fb7-24058cccb4f6?format=Entity"
    )


@pytest.mark.parametrize(
    "uid",
    [
        "urn:veeam:BackupJobSession:../../logonSessions/x",
        "urn:veeam:BackupJobSession:a057c2c3-f3bd-4ab4-9fb7-24058cccb4f6?action=stop",
        "urn:veeam:BackupJobSession:",
        "a057c2c3f3bd4ab49fb724058cccb4f6",
    ],
)
def test_a_uid_without_a_guid_is_never_looked_up(uid: str) -> None:
    assert plan.session_guid(uid) is None
