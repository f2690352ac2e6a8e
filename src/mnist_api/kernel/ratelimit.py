"""Token buckets, one per API key, shared by all the workers of one instance.

A bucket holds at most ``burst`` tokens and gains ``rate`` tokens a second; a request takes one
(a batch upload one per file). The buckets live in a small file mapped into every worker's memory
(in ``/dev/shm`` where there is one): ``mnist-api serve`` creates it and hands its path to the
workers (``MNIST_API_RATE_LIMIT_FILE``), so a key's limit holds for the instance as a whole, not
per worker. An app started without that file keeps private buckets (tests, one worker).

Each update takes an exclusive ``flock`` on the file for a few microseconds of arithmetic. The
lock is tried without blocking; when another worker holds it the event loop yields and tries
again, so the loop never waits in the kernel. Clocks are ``CLOCK_MONOTONIC``, which all processes
of a machine share. The table is a fixed array of slots found by hashing the key id (open
addressing); when the slots around a key's place are all taken, the one refilled longest ago is
reused (an idle bucket is full, so forgetting it changes nothing).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import math
import mmap
import os
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"mnist-rate-v1\0\0\0"
HEADER = len(MAGIC)
SLOT = struct.Struct("<Qdd")  # key hash (0: free), tokens, time of the last update
SLOTS = 8192
PROBE = 32
SIZE = HEADER + SLOTS * SLOT.size
LOCK_RETRY_S = 0.0002


@dataclass(frozen=True)
class Decision:
    """The outcome of taking tokens, with what the ``RateLimit-*`` headers say."""

    allowed: bool
    limit: int  # the bucket's size
    remaining: int  # whole tokens left after this request
    reset_s: int  # seconds until the bucket is full again
    retry_after_s: int  # seconds until the request would fit (0 when allowed)

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }


def _hash(key: str) -> int:
    value = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    return value or 1  # 0 marks a free slot


def shared_memory_dir() -> Path:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def create_file(directory: Path | None = None) -> Path:
    """A new, empty table for the workers of one instance; the caller deletes it at exit."""
    fd, name = tempfile.mkstemp(prefix="mnist-api-rate-", dir=directory or shared_memory_dir())
    try:
        os.ftruncate(fd, SIZE)
        os.pwrite(fd, MAGIC, 0)
    finally:
        os.close(fd)
    return Path(name)


class TokenBuckets:
    def __init__(self, path: Path | None = None) -> None:
        """The table at ``path`` (made by ``create_file``), or a private one."""
        if path is None:
            path = create_file()
            private = True
        else:
            private = False
        self._fd = os.open(path, os.O_RDWR)
        try:
            if os.fstat(self._fd).st_size != SIZE or os.pread(self._fd, HEADER, 0) != MAGIC:
                raise ValueError(f"{path} is not a rate-limit table")
            self._map = mmap.mmap(self._fd, SIZE)
        except BaseException:
            os.close(self._fd)
            raise
        finally:
            if private:
                path.unlink()  # mapped and open: it lives as long as this object

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)

    async def take(self, key: str, *, rate: float, burst: int, cost: int = 1) -> Decision:
        """Take ``cost`` tokens from ``key``'s bucket if it holds them."""
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                await asyncio.sleep(LOCK_RETRY_S)
                continue
            try:
                return self._take(_hash(key), rate, burst, cost, time.monotonic())
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _slot(self, wanted: int) -> tuple[int, bool]:
        """The offset of the key's slot, and whether it is new."""
        start = wanted % SLOTS
        oldest, oldest_at = -1, math.inf
        for step in range(PROBE):
            offset = HEADER + ((start + step) % SLOTS) * SLOT.size
            found, _, updated = SLOT.unpack_from(self._map, offset)
            if found == wanted:
                return offset, False
            if found == 0:
                return offset, True
            if updated < oldest_at:
                oldest, oldest_at = offset, updated
        return oldest, True

    def _take(self, wanted: int, rate: float, burst: int, cost: int, now: float) -> Decision:
        offset, new = self._slot(wanted)
        if new:
            tokens = float(burst)
        else:
            _, tokens, updated = SLOT.unpack_from(self._map, offset)
            tokens = min(float(burst), tokens + max(0.0, now - updated) * rate)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        SLOT.pack_into(self._map, offset, wanted, tokens, now)
        missing = 0.0 if allowed else cost - tokens
        return Decision(
            allowed=allowed,
            limit=burst,
            remaining=int(tokens),
            reset_s=math.ceil((burst - tokens) / rate),
            retry_after_s=max(1, math.ceil(missing / rate)) if not allowed else 0,
        )
