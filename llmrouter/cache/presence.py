"""Which keys the exact cache may hold, in memory, so that a miss costs no disk read.

Nearly every request to a router is new, so nearly every exact-cache lookup is a miss; on
SQLite (diskcache) a miss is a query that costs 25-90 µs while the cache's writer thread is
committing. A Bloom filter answers "certainly not stored" in about a microsecond and sends
only the rest (hits, and at most ~2% false positives) to disk.

The filter is rebuilt from the disk in the background when it fills up, and it learns the
keys other processes (``--workers N``, other routers on the same directory) store by
reading the rows added since it last looked. A key it does not know yet is a cache miss,
never a wrong answer.
"""

from __future__ import annotations

__all__ = ["KeyFilter"]

_BITS_PER_KEY = 10  # with three probes: ~1.7% false positives at capacity
_MIN_BITS = 1 << 20  # 128 KiB
_MASK_32 = 0xFFFF_FFFF


class KeyFilter:
    """A Bloom filter over strings: ``key in filter`` is False only for keys never added.

    Three probes by double hashing of Python's 64-bit ``hash()`` (cached on the string
    object, and randomised per process, which is fine for a filter that lives in memory).
    """

    __slots__ = ("_bits", "_mask", "capacity", "count")

    def __init__(self, expected_keys: int = 0) -> None:
        size = _MIN_BITS
        while size < expected_keys * _BITS_PER_KEY:
            size <<= 1
        self._bits = bytearray(size >> 3)
        self._mask = size - 1
        self.capacity = size // _BITS_PER_KEY
        self.count = 0

    def add(self, key: str) -> None:
        """Mark ``key``. Not atomic across threads: a racing add may drop a bit, which can
        only turn a later hit into a miss (the owner re-adds keys it reads back from disk)."""
        h = hash(key)
        first, step = h & _MASK_32, ((h >> 32) & _MASK_32) | 1
        bits, mask = self._bits, self._mask
        for probe in range(3):
            index = (first + probe * step) & mask
            bits[index >> 3] |= 1 << (index & 7)
        self.count += 1

    def __contains__(self, key: object) -> bool:
        h = hash(key)
        first, step = h & _MASK_32, ((h >> 32) & _MASK_32) | 1
        bits, mask = self._bits, self._mask
        for probe in range(3):
            index = (first + probe * step) & mask
            if not bits[index >> 3] & (1 << (index & 7)):
                return False
        return True

    @property
    def full(self) -> bool:
        """True once more keys were added than it was sized for (false positives climb)."""
        return self.count > self.capacity
