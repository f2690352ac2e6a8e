"""The records of the keys subject: scopes, stored keys, the principal a request acts as, and the
secrets' format.

A key's secret is ``mnist_<id>_<secret>``: a recognisable prefix (so secret scanners and people
know it when they see it), the key's public id (12 hex digits, which is also the owner id of its
predictions), and 43 random base62 characters (256 bits). The store keeps only the SHA-256 of the
random part; a fast hash is right for a secret with that much entropy, and the lookup by id
followed by a constant-time comparison of hashes leaks nothing through timing.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from mnist_api.kernel.identity import ANONYMOUS_OWNER

TOKEN_PREFIX = "mnist_"
TOKEN_PATTERN = re.compile(r"^mnist_([0-9a-f]{12})_([0-9A-Za-z]{43})$")
_ALPHABET = string.digits + string.ascii_letters
SECRET_LENGTH = 43  # 43 base62 characters: 256 bits
# A key can always send a full batch of uploads at once, and the web page's first screen (the
# key check, a page of history and its ten thumbnails) and a few more pages.
MIN_BURST = 50


class Scope(StrEnum):
    """What a key may do. ``admin`` includes every other scope, sees every owner's predictions,
    and may filter the history by owner."""

    PREDICT = "predict"
    READ = "read"
    LABEL = "label"
    DELETE = "delete"
    ADMIN = "admin"


DEFAULT_SCOPES = frozenset({Scope.PREDICT, Scope.READ, Scope.LABEL, Scope.DELETE})


def default_burst(rate: float) -> int:
    """A bucket of two seconds' worth of requests, and never less than ``MIN_BURST``."""
    return max(MIN_BURST, math.ceil(2 * rate))


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    secret_sha256: bytes
    scopes: frozenset[Scope]
    rate: float  # requests per second
    burst: int  # the bucket's size
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    def matches(self, secret: str) -> bool:
        """Whether ``secret`` is this key's, compared in constant time."""
        return hmac.compare_digest(self.secret_sha256, secret_hash(secret))


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a key, or ``anonymous`` when authentication is off."""

    owner: str  # the key's id, or ANONYMOUS_OWNER
    name: str
    scopes: frozenset[Scope]
    rate: float | None  # None: not limited
    burst: int | None
    created_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def admin(self) -> bool:
        return Scope.ADMIN in self.scopes

    def allows(self, scope: Scope) -> bool:
        return self.admin or scope in self.scopes

    @classmethod
    def of(cls, key: ApiKey) -> Principal:
        return cls(
            owner=key.id,
            name=key.name,
            scopes=key.scopes,
            rate=key.rate,
            burst=key.burst,
            created_at=key.created_at,
            last_used_at=key.last_used_at,
        )


ANONYMOUS = Principal(
    owner=ANONYMOUS_OWNER,
    name="anonymous (authentication off)",
    scopes=frozenset(Scope),
    rate=None,
    burst=None,
)


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def new_secret() -> tuple[str, str, bytes]:
    """A new key's id, its full secret (shown once), and the hash the store keeps."""
    key_id = secrets.token_hex(6)
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_LENGTH))
    return key_id, f"{TOKEN_PREFIX}{key_id}_{secret}", secret_hash(secret)


def parse_secret(token: str) -> tuple[str, str] | None:
    """The id and random part of a well-formed secret, or None."""
    match = TOKEN_PATTERN.match(token)
    return (match.group(1), match.group(2)) if match else None


def parse_scopes(text: str) -> frozenset[Scope]:
    """``predict,read`` -> the scopes; raises ``ValueError`` naming an unknown one."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError("no scopes given")
    known = {scope.value for scope in Scope}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r}; scopes are {', '.join(Scope)}")
    return frozenset(Scope(name) for name in names)
