"""Uploads to model inputs: limits, decoding and MNIST-style preprocessing.

The image work itself lives in ``mnist_core.imaging``, shared with training; this module adds
the service's limits and turns imaging errors into problem details.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from mnist_api.kernel.errors import (
    EmptyFile,
    ImageTooLarge,
    InvalidImage,
    NoInk,
    PayloadTooLarge,
    UnsupportedImageType,
)
from mnist_api.predictions.records import ImageMeta
from mnist_core import imaging
from mnist_core.errors import ImageError


@dataclass(frozen=True)
class PreparedUpload:
    data: bytes
    meta: ImageMeta
    pixels: imaging.MnistImage  # 28x28 uint8, MNIST polarity
    # time.time_ns() when decoding began, when it ended (preprocessing began), and at the end.
    started_ns: int = 0
    decoded_ns: int = 0
    finished_ns: int = 0


def prepare(data: bytes, *, max_bytes: int, max_pixels: int) -> PreparedUpload:
    """Check, decode and preprocess one upload. CPU-bound: call it from a worker thread."""
    if not data:
        raise EmptyFile("the uploaded file is empty")
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the file is over the limit of {max_bytes} bytes")
    started = time.time_ns()
    try:
        decoded = imaging.decode(data, max_pixels=max_pixels)
        decoded_at = time.time_ns()
        pixels = imaging.to_mnist(decoded.image)
    except imaging.UnsupportedImageError as exc:
        raise UnsupportedImageType(str(exc)) from exc
    except imaging.ImageTooLargeError as exc:
        raise ImageTooLarge(str(exc)) from exc
    except imaging.NoInkError as exc:
        raise NoInk(str(exc)) from exc
    except ImageError as exc:
        raise InvalidImage(str(exc)) from exc
    meta = ImageMeta(
        content_type=decoded.content_type,
        width=decoded.width,
        height=decoded.height,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    return PreparedUpload(data, meta, pixels, started, decoded_at, time.time_ns())
