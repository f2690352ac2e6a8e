"""The use cases of keys: create, list and revoke them (``mnist-api keys``), and turn a request's
secret into the principal it acts as, within its rate.

Looking a key up costs a store read, so each worker keeps what it read for ``key_cache_s``
seconds (5 by default): a revoked key stops working on every worker, and every instance, within
that time. Unknown ids are remembered as unknown for as long, and concurrent requests with the
same key share one read. ``last_used_at`` is written at most once a minute per key and worker,
off the request's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from mnist_api.kernel.database import StoreUnavailableError
from mnist_api.kernel.errors import RateLimited, StoreUnavailable, Unauthorized
from mnist_api.kernel.ratelimit import Decision, TokenBuckets
from mnist_api.kernel.settings import Settings
from mnist_api.kernel.timing import now_ms
from mnist_api.keys.records import (
    ANONYMOUS,
    ApiKey,
    Principal,
    Scope,
    default_burst,
    new_secret,
    parse_secret,
)
from mnist_api.keys.repository import KeyRepository

log = logging.getLogger("mnist_api")
CACHE_ENTRIES = 10_000
TOUCH_EVERY_S = 60.0
MISSING = "this API needs a key: send `Authorization: Bearer KEY` or `X-API-Key: KEY`"


class KeyService:
    def __init__(
        self,
        settings: Settings,
        repository: KeyRepository,
        buckets: TokenBuckets | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._repository = repository
        self._buckets = buckets
        self._clock = clock
        self._cache: OrderedDict[str, tuple[ApiKey | None, float]] = OrderedDict()
        self._reading: dict[str, asyncio.Future[ApiKey | None]] = {}
        self._touched: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def required(self) -> bool:
        return self._settings.auth == "required"

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # Administration (``mnist-api keys``).

    async def create(
        self,
        name: str,
        scopes: frozenset[Scope],
        rate: float | None = None,
        burst: int | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its secret, which is never stored and cannot be shown again."""
        rate = rate if rate is not None else self._settings.default_key_rate
        key_id, secret, digest = new_secret()
        key = ApiKey(
            id=key_id,
            name=name,
            secret_sha256=digest,
            scopes=scopes,
            rate=rate,
            burst=burst if burst is not None else default_burst(rate),
            created_at=now_ms(),
        )
        await self._repository.insert(key)
        return key, secret

    async def list(self) -> list[ApiKey]:
        return await self._repository.list()

    async def revoke(self, key_id: str) -> ApiKey | None:
        return await self._repository.revoke(key_id, now_ms())

    # Requests.

    async def authenticate(self, secret: str | None) -> Principal:
        """The principal of a request that sent ``secret`` (or nothing)."""
        if secret is None:
            if self.required:
                raise Unauthorized(MISSING)
            return ANONYMOUS
        parsed = parse_secret(secret)
        if parsed is None:
            raise Unauthorized(
                "the API key is malformed (keys look like mnist_<12 hex digits>_<43 letters "
                "and digits>)",
                invalid=True,
            )
        key_id, random_part = parsed
        key = await self._key(key_id)
        if key is None or not key.matches(random_part):
            raise Unauthorized("the API key is not valid", invalid=True)
        if key.revoked_at is not None:
            raise Unauthorized("the API key was revoked", invalid=True)
        self._touch(key)
        return Principal.of(key)

    async def limit(self, principal: Principal, cost: int = 1) -> Decision | None:
        """Take ``cost`` tokens from the principal's bucket; raises ``RateLimited`` when it
        lacks them. None for a principal without a limit.

        Behind a balancer with ``MNIST_API_INSTANCES`` = N, this instance's bucket is its share:
        1/N of the key's rate, and of its burst (rounded up). A balancer that spreads a key's
        requests evenly then lets the key make its rate through all of them together; no store
        is shared, so no request waits for one."""
        if self._buckets is None or principal.rate is None or principal.burst is None:
            return None
        share = self._settings.instances
        burst = math.ceil(principal.burst / share)
        decision = await self._buckets.take(
            principal.owner, rate=principal.rate / share, burst=burst, cost=cost
        )
        if not decision.allowed:
            rate = f"{principal.rate:g} requests a second"
            detail = f"this API key may make {rate} (bursts of {principal.burst})"
            if share > 1:
                detail += f", each of the {share} instances serving it a share"
            if cost > burst:
                detail += f"; a request that costs {cost} can never fit: send fewer files"
            raise RateLimited(
                detail, retry_after_s=decision.retry_after_s, headers=decision.headers()
            )
        return decision

    async def _key(self, key_id: str) -> ApiKey | None:
        now = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[1] < self._settings.key_cache_s:
            return cached[0]
        pending = self._reading.get(key_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ApiKey | None] = asyncio.get_running_loop().create_future()
        self._reading[key_id] = future
        try:
            key = await self._repository.get(key_id)
        except StoreUnavailableError as exc:
            log.warning("key lookup failed: %s", exc)
            error = StoreUnavailable(
                "the key store cannot be reached", retry_after_s=self._settings.retry_after_s
            )
            future.set_exception(error)
            future.exception()  # retrieved here, so a future nobody awaited is not reported
            raise error from exc
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            del self._reading[key_id]
        future.set_result(key)
        self._cache[key_id] = (key, self._clock())
        self._cache.move_to_end(key_id)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return key

    def _touch(self, key: ApiKey) -> None:
        """Record the use, at most once a minute per key and worker, in the background."""
        now = self._clock()
        if now - self._touched.get(key.id, -math.inf) < TOUCH_EVERY_S:
            return
        self._touched[key.id] = now

        async def write() -> None:
            try:
                await self._repository.touch(key.id, now_ms())
            except Exception as exc:  # the request has its answer; the next use tries again
                self._touched.pop(key.id, None)
                log.warning("could not record the use of key %s: %s", key.id, exc)

        task = asyncio.create_task(write())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
