"""``mnist-api keys create|list|revoke``: key administration on the store the settings name (the
SQLite file, or the Cassandra keyspace), which every worker and instance reads.

``create`` prints the secret alone on standard output (so ``KEY=$(mnist-api keys create ...)``
works) and what was created on standard error; the secret is shown this once and never stored.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from mnist_api.kernel.databases import open_database
from mnist_api.kernel.settings import Settings, SettingsError
from mnist_api.keys.records import DEFAULT_SCOPES, ApiKey, Scope, parse_scopes
from mnist_api.keys.repository import open_key_repository
from mnist_api.keys.service import KeyService

RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*s)?\s*$")
MAX_RATE = 10_000.0


@dataclass(frozen=True)
class KeyCommand:
    action: str  # create, list or revoke
    name: str | None = None
    scopes: str | None = None
    rate: str | None = None
    burst: int | None = None
    key_id: str | None = None


def parse_rate(text: str) -> float:
    """``10``, ``10/s`` or ``0.5/s`` -> requests per second."""
    match = RATE.match(text)
    if not match or not 0 < float(match.group(1)) <= MAX_RATE:
        raise SettingsError(
            f"--rate {text!r}: give requests per second, more than 0 and at most "
            f"{MAX_RATE:,.0f} (for example 10/s)"
        )
    return float(match.group(1))


def _describe(key: ApiKey) -> str:
    scopes = ", ".join(sorted(key.scopes))
    return (
        f"key {key.id} {key.name!r}: scopes {scopes}; {key.rate:g} requests/s, "
        f"bursts of {key.burst}"
    )


def _when(key: ApiKey) -> tuple[str, str, str]:
    fmt = "%Y-%m-%d %H:%M:%SZ"
    return (
        key.created_at.strftime(fmt),
        key.last_used_at.strftime(fmt) if key.last_used_at else "never",
        key.revoked_at.strftime(fmt) if key.revoked_at else "-",
    )


async def run_key_command(settings: Settings, command: KeyCommand) -> int:
    """Run one command; its exit status."""
    if settings.store == "none":
        raise SettingsError("MNIST_API_STORE=none keeps no keys")
    scopes: frozenset[Scope] = DEFAULT_SCOPES
    if command.scopes is not None:
        try:
            scopes = parse_scopes(command.scopes)
        except ValueError as exc:
            raise SettingsError(f"--scopes: {exc}") from None
    rate = parse_rate(command.rate) if command.rate is not None else None
    if command.burst is not None and command.burst < 1:
        raise SettingsError("--burst must be at least 1")
    database = open_database(settings)
    await database.open()
    try:
        repository = open_key_repository(database)
        await repository.open()
        service = KeyService(settings, repository)
        if command.action == "create":
            key, secret = await service.create(
                command.name or "unnamed", scopes, rate=rate, burst=command.burst
            )
            print(f"created {_describe(key)}", file=sys.stderr)
            print("the secret follows; it is shown only now, so keep it safe:", file=sys.stderr)
            print(secret)
            return 0
        if command.action == "list":
            keys = await service.list()
            if not keys:
                print("no keys (create one: mnist-api keys create --name NAME)")
                return 0
            print(f"{'id':12}  {'name':20}  {'scopes':34}  {'rate':>8}  {'burst':>5}  "
                  f"{'created':20}  {'last used':20}  revoked")  # fmt: skip
            for key in keys:
                created, used, ended = _when(key)
                scope_list = ",".join(sorted(key.scopes))
                print(
                    f"{key.id:12}  {key.name[:20]:20}  {scope_list:34}  {key.rate:>6g}/s  "
                    f"{key.burst:>5}  {created:20}  {used:20}  {ended}"
                )
            return 0
        key_id = command.key_id or ""
        revoked = await service.revoke(key_id)
        if revoked is None:
            print(f"mnist-api: error: no key has the id {key_id!r}", file=sys.stderr)
            return 1
        print(
            f"revoked {_describe(revoked)}; every worker refuses it within "
            f"{settings.key_cache_s:g} s"
        )
        return 0
    finally:
        await database.close()
