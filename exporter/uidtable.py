"""The UIDs the ledger remembers, compactly: a 128-bit digest and a creation time each.

A month of sessions is 100,000 UIDs or more, remembered between polls. As Python strings in a
dict they cost about 160 bytes each; here each is one 24-byte record (digest, creation time)
in a bucket of packed bytes, found by ``bytearray.find``. Pure: no I/O.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Set
from hashlib import blake2b
from typing import Final

KEY_SIZE: Final = 16
# One record: the UID's digest, then its creation time (Unix seconds, a double).
RECORD: Final = struct.Struct(f"<{KEY_SIZE}sd")
_WIDTH: Final = RECORD.size
_EMPTY: Final = b""
_INFINITY: Final = float("inf")
# Buckets to start with, and the mean records per bucket past which their number grows
# four-fold: a look-up scans one bucket of about 1.5 KB at most.
_START_BITS: Final = 12
_MEAN_LIMIT: Final = 64


def uid_key(uid: str) -> bytes:
    """The key a UID is remembered by: 128 bits of BLAKE2b, a cryptographic digest, so that
    two UIDs sharing a key is not a realistic concern (about 2^-88 for a million UIDs), even
    for UIDs an EM chose on purpose."""
    return blake2b(uid.encode("utf-8", "surrogatepass"), digest_size=KEY_SIZE).digest()


class UidTable:
    """A set of UID keys, each with the creation time it was first added with."""

    def __init__(self) -> None:
        self._bits = 0
        self._mask = 0
        self._buckets: list[bytes | bytearray] = []
        self._oldest = array("d")
        self._count = 0
        self._reset(_START_BITS)

    @classmethod
    def like(cls, other: UidTable) -> UidTable:
        """An empty table with ``other``'s buckets, so that ``other.update`` can copy it
        whole."""
        table = cls()
        if other._bits != table._bits:
            table._reset(other._bits)
        return table

    def __len__(self) -> int:
        return self._count

    def update(self, other: UidTable) -> None:
        """Add every key of ``other`` with its creation time. Into an empty table with the
        same buckets (a first baseline) the buckets are copied whole."""
        if self._count == 0 and other._bits == self._bits:
            self._buckets = [bytearray(b) if b else _EMPTY for b in other._buckets]
            self._oldest = array("d", other._oldest)
            self._count = other._count
            return
        for bucket in other._buckets:
            if bucket:
                self.add_packed(bucket)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, bytes):
            return False
        # _find, inline: this runs once per finished session of every answer.
        bucket = self._buckets[hash(key) & self._mask]
        at = bucket.find(key)
        while at > 0 and at % _WIDTH:
            at = bucket.find(key, at + 1)
        return at >= 0

    def add(self, key: bytes, created: float) -> bool:
        """Remember ``key``; False when it was already there (its time is kept)."""
        index = hash(key) & self._mask
        bucket = self._buckets[index]
        at = bucket.find(key)  # _find, inline: this runs once per session of a baseline
        while at > 0 and at % _WIDTH:
            at = bucket.find(key, at + 1)
        if at >= 0:
            return False
        if not bucket:
            bucket = self._buckets[index] = bytearray()
        bucket += RECORD.pack(key, created)
        if created < self._oldest[index]:
            self._oldest[index] = created
        self._count += 1
        if self._count > _MEAN_LIMIT << self._bits:
            self._grow()
        return True

    def add_packed(self, records: bytes | bytearray | memoryview) -> None:
        """``add`` every (key, creation time) record of ``records`` (as ``RECORD`` packs
        them). A baseline is a whole answer's worth of them, so ``add`` is inline."""
        view = memoryview(records)
        buckets, oldest = self._buckets, self._oldest
        mask, count, limit = self._mask, self._count, _MEAN_LIMIT << self._bits
        for at, (key, created) in zip(
            range(0, len(view), _WIDTH), RECORD.iter_unpack(view), strict=True
        ):
            index = hash(key) & mask
            bucket = buckets[index]
            if _find(bucket, key) >= 0:
                continue
            if not bucket:
                bucket = buckets[index] = bytearray()
            bucket += view[at : at + _WIDTH]
            if created < oldest[index]:
                oldest[index] = created
            count += 1
            if count > limit:  # the rest goes through add, which grows the table first
                self._count = count
                self._grow()
                for key, created in RECORD.iter_unpack(view[at + _WIDTH :]):
                    self.add(key, created)
                return
        self._count = count

    def prune(self, horizon: float, keep: Set[bytes]) -> None:
        """Forget every key created before ``horizon`` that is not in ``keep``."""
        oldest = self._oldest
        for index in [i for i, time in enumerate(oldest) if time < horizon]:
            kept = bytearray()
            first = _INFINITY
            for key, created in RECORD.iter_unpack(self._buckets[index]):
                if created >= horizon or key in keep:
                    kept += RECORD.pack(key, created)
                    first = min(first, created)
            self._count -= (len(self._buckets[index]) - len(kept)) // _WIDTH
            self._buckets[index] = kept if kept else _EMPTY
            oldest[index] = first

    def _grow(self) -> None:
        records = self._buckets
        self._reset(self._bits + 2)
        for bucket in records:
            self.add_packed(bucket)

    def _reset(self, bits: int) -> None:
        self._bits = bits
        self._mask = (1 << bits) - 1
        # Empty buckets share one empty bytes object; a bucket gets its own on its first key.
        self._buckets = [_EMPTY] * (1 << bits)
        # The oldest creation time in each bucket, so that pruning visits only the buckets
        # that hold something old.
        self._oldest = array("d", [_INFINITY]) * (1 << bits)
        self._count = 0


def _find(bucket: bytes | bytearray, key: bytes) -> int:
    """Where ``key``'s record starts in ``bucket``, or -1. A match that does not start a
    record (the key's bytes straddling two records) is no match."""
    at = bucket.find(key)
    while at > 0 and at % _WIDTH:
        at = bucket.find(key, at + 1)
    return at
