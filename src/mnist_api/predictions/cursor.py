"""The cursors as clients see them, opaque to them: the history's, the last id of a page (a
time-based UUID's 16 bytes), and the review queue's, the last (confidence, id) of a page (a
big-endian double and the 16 bytes), in unpadded base64url. Anything else is a 400."""

from __future__ import annotations

import base64
import binascii
import math
import struct
import uuid

from mnist_api.kernel.errors import InvalidCursor

MALFORMED = "the cursor is malformed; use a next_cursor from this API"


def encode_cursor(prediction_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(prediction_id.bytes).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = uuid.UUID(bytes=raw)
    except (binascii.Error, ValueError):
        raise InvalidCursor(MALFORMED) from None
    if value.version != 1 or encode_cursor(value) != cursor:
        raise InvalidCursor(MALFORMED)
    return value


def encode_review_cursor(after: tuple[float, uuid.UUID]) -> str:
    raw = struct.pack(">d", after[0]) + after[1].bytes
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_review_cursor(cursor: str) -> tuple[float, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        (confidence,) = struct.unpack(">d", raw[:8])
        value = uuid.UUID(bytes=raw[8:])
    except (binascii.Error, ValueError, struct.error):
        raise InvalidCursor(MALFORMED) from None
    after = (confidence, value)
    if (
        value.version != 1
        or not math.isfinite(confidence)
        or not 0 <= confidence <= 1
        or encode_review_cursor(after) != cursor
    ):
        raise InvalidCursor(MALFORMED)
    return after
