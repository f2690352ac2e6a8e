"""The history's cursor as clients see it: the last id of a page (a time-based UUID's 16
bytes) in unpadded base64url, opaque to them. Anything else is a 400."""

from __future__ import annotations

import base64
import binascii
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
