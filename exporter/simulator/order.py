"""The order of an unsorted answer: the database's primary key, the session GUID.

A v12 EM keeps its data in SQL Server, which compares a `uniqueidentifier` by its last six
bytes first, then the fourth group, then the first three groups byte by byte from the end;
a v13 EM on PostgreSQL compares the GUID's text. So neither order has anything to do with
time, and a client paging an unsorted answer gets its sessions in an arbitrary order.
"""

from __future__ import annotations

from collections.abc import Callable


def sql_server_key(guid: str) -> str:
    """A string that sorts like SQL Server sorts the GUID (lower-case hex, 8-4-4-4-12)."""
    h = guid.lower()
    g1, g2, g3, g4, g5 = h[0:8], h[9:13], h[14:18], h[19:23], h[24:36]
    return g5 + g4 + g3[2:4] + g3[0:2] + g2[2:4] + g2[0:2] + g1[6:8] + g1[4:6] + g1[2:4] + g1[0:2]


def text_key(guid: str) -> str:
    return guid.lower()


def primary_key(em_version: str) -> Callable[[str], str]:
    return sql_server_key if em_version == "12" else text_key
