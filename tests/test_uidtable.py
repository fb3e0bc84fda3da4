"""The ledger's compact UID table: membership by digest, first creation time kept, growth,
pruning by age with a keep-set, and records whose bytes straddle two others never match."""

from __future__ import annotations

import random

from exporter.uidtable import _WIDTH, RECORD, UidTable, _find, uid_key


def test_keys_are_128_bit_digests_of_the_uid() -> None:
    assert len(uid_key("urn:veeam:SystemSession:1")) == 16
    assert uid_key("a") == uid_key("a") != uid_key("A")
    uid_key("lone \ud800 surrogate")  # any str has a key, even one no UTF-8 can carry


def test_add_contains_len_and_the_first_time_is_kept() -> None:
    table = UidTable()
    a, b = uid_key("a"), uid_key("b")
    assert a not in table and len(table) == 0
    assert table.add(a, 100.0)
    assert not table.add(a, 999.0)  # already there: the first creation time stays
    assert a in table and b not in table and len(table) == 1
    assert "a" not in table  # keys, never UIDs
    table.prune(500.0, keep=frozenset())
    assert a not in table and len(table) == 0


def test_grows_and_keeps_every_key() -> None:
    table = UidTable()
    keys = [uid_key(str(i)) for i in range(300_000)]
    for i, key in enumerate(keys):
        assert table.add(key, float(i))
    assert len(table) == len(keys)
    assert all(key in table for key in keys)
    assert uid_key("300000") not in table
    # Four times as many buckets as at the start: a look-up scans one small bucket.
    assert len(table._buckets) > len(UidTable()._buckets)
    assert max(len(b) for b in table._buckets) < 200 * _WIDTH


def test_prune_forgets_only_the_old_that_are_not_kept() -> None:
    rng = random.Random(3)
    table = UidTable()
    times = {uid_key(str(i)): rng.uniform(0, 1000) for i in range(20_000)}
    for key, created in times.items():
        table.add(key, created)
    keep = frozenset(k for k, t in times.items() if t < 100 and rng.random() < 0.5)
    table.prune(300.0, keep)
    for key, created in times.items():
        assert (key in table) == (created >= 300.0 or key in keep)
    assert len(table) == sum(1 for k, t in times.items() if t >= 300.0 or k in keep)
    table.prune(300.0, keep)  # the same again forgets nothing more
    assert len(table) == sum(1 for k, t in times.items() if t >= 300.0 or k in keep)


def test_a_key_straddling_two_records_is_no_match() -> None:
    first, second = b"\x01" * 16, b"\x02" * 16
    bucket = RECORD.pack(first, 0.0) + RECORD.pack(second, 0.0)
    straddling = bucket[8:24]  # the end of one key and the creation time after it
    assert _find(bucket, first) == 0 and _find(bucket, second) == _WIDTH
    assert _find(bucket, straddling) == -1
    # A real record after a straddling look-alike is still found.
    bucket = RECORD.pack(b"\x00" * 8 + b"\x07" * 8, 0.0) + RECORD.pack(
        b"\x07" * 8 + b"\x00" * 8, 0.0
    )
    assert _find(bucket, b"\x07" * 8 + b"\x00" * 8) == _WIDTH


def test_add_packed_adds_each_record_once() -> None:
    table = UidTable()
    records = b"".join(RECORD.pack(uid_key(str(i % 10)), float(i)) for i in range(30))
    table.add_packed(memoryview(records).toreadonly())
    assert len(table) == 10
    table.prune(10.0, keep=frozenset())  # each kept the time of its first record: 0-9
    assert len(table) == 0


def test_update_copies_into_an_empty_table_and_merges_into_a_full_one() -> None:
    source = UidTable()
    for i in range(1000):
        source.add(uid_key(str(i)), float(i))
    empty = UidTable.like(source)
    empty.update(source)
    source.add(uid_key("later"), 0.0)  # a copy: the source changing leaves it alone
    assert len(empty) == 1000 and uid_key("later") not in empty
    assert all(uid_key(str(i)) in empty for i in range(1000))
    full = UidTable()
    full.add(uid_key("0"), 5000.0)  # already there: keeps its own time
    full.add(uid_key("x"), 0.0)
    full.update(empty)
    assert len(full) == 1001
    full.prune(1000.0, keep=frozenset())  # every time but key "0"'s is below 1000
    assert len(full) == 1 and uid_key("0") in full
