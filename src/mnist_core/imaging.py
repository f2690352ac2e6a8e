"""Any image of a handwritten digit to a 28x28 input in MNIST's own format.

This module is the one place where images become model inputs: the API uses it for uploads and
``mnist-train predict`` for files, so serving and training cannot drift apart.

The steps follow how MNIST itself was made: apply the EXIF orientation; take the first frame;
composite transparency onto white; convert to grey; bring dark-on-light ink to MNIST's polarity
(white ink on black); remove the background level; crop to the ink's bounding box; scale so the
longer side is 20 px, keeping the aspect ratio, with anti-aliasing; and place the result in a
28x28 field with its centre of mass at the centre.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

from mnist_core.errors import ImageError

SIDE = 28
BOX = 20
# Formats we decode. MPO is what many cameras call a JPEG.
FORMATS: dict[str, str] = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
}
DEFAULT_MAX_PIXELS = 40_000_000
# Ink must stand this far (on a 0-1 scale) above the background to count as a digit.
MIN_CONTRAST = 0.12
# After normalisation, values below this are paper texture or compression noise.
NOISE_FLOOR = 0.1

FloatImage = npt.NDArray[np.float32]
MnistImage = npt.NDArray[np.uint8]


class UnsupportedImageError(ImageError):
    """The bytes are an image, but of a format we do not take."""


class InvalidImageError(ImageError):
    """The bytes are not an image, or a corrupt or truncated one."""


class ImageTooLargeError(ImageError):
    """The image has more pixels than allowed (a decompression bomb, or just too big)."""


class NoInkError(ImageError):
    """The image holds nothing that could be a digit: it is uniform."""


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # the first frame, EXIF orientation applied, fully loaded
    format: str
    content_type: str
    width: int
    height: int


def decode(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Open ``data`` as an image, refusing unknown formats, oversized and corrupt images."""
    if not data:
        raise InvalidImageError("the file is empty")
    try:
        with warnings.catch_warnings():
            # Our own pixel limit below replaces Pillow's decompression-bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise InvalidImageError("the file is not an image in a format we can read") from exc
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(str(exc)) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(f"the image cannot be read: {exc}") from exc
    fmt = (image.format or "").upper()
    if fmt not in FORMATS:
        raise UnsupportedImageError(
            f"{fmt or 'this'} images are not supported; send PNG, JPEG, GIF, BMP, WebP or TIFF"
        )
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidImageError("the image has no pixels")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"the image has {width}x{height} = {width * height} pixels; the limit is {max_pixels}"
        )
    try:
        image.seek(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
            upright = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise InvalidImageError(f"the image is corrupt or truncated: {exc}") from exc
    return DecodedImage(upright, fmt, FORMATS[fmt], upright.width, upright.height)


def _unit(values: npt.NDArray[np.floating]) -> FloatImage:
    clipped: FloatImage = np.clip(values, 0.0, 1.0).astype(np.float32)
    return clipped


def to_grey(image: Image.Image) -> FloatImage:
    """Grey levels in [0, 1] (0 black, 1 white), transparency composited onto white."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float32)
        peak = 65535.0 if mode.startswith("I;16") or values.max() > 255 else 255.0
        return _unit(values / peak)
    if mode == "F":
        values = np.asarray(image, dtype=np.float32)
        peak = 1.0 if values.max() <= 1.0 else 255.0
        return _unit(values / peak)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    elif mode == "CMYK":
        image = image.convert("RGB")
    grey = image.convert("L")
    return np.asarray(grey, dtype=np.float32) / 255.0


def _border(values: FloatImage) -> FloatImage:
    h, w = values.shape
    k = max(1, min(h, w) // 20)
    return np.concatenate(
        [values[:k].ravel(), values[-k:].ravel(), values[:, :k].ravel(), values[:, -k:].ravel()]
    )


def normalise_ink(grey: FloatImage) -> FloatImage:
    """MNIST polarity (ink high, background 0), background level removed, scaled to [0, 1]."""
    background = float(np.median(_border(grey)))
    if background > 0.5:  # dark ink on light paper
        grey, background = 1.0 - grey, 1.0 - background
    # The ink's level: a high percentile of the pixels clearly off the background, so a small
    # digit on a large page counts as much as one that fills the frame.
    candidates = grey[grey > background + MIN_CONTRAST / 2]
    peak = float(np.percentile(candidates, 95)) if candidates.size else float(grey.max())
    if peak - background < MIN_CONTRAST:
        raise NoInkError("the image has no ink: it is blank or nearly uniform")
    ink = _unit((grey - background) / (peak - background))
    ink[ink < NOISE_FLOOR] = 0.0
    return ink


def _fit_box(ink: FloatImage) -> FloatImage:
    rows = np.flatnonzero(ink.max(axis=1) > 0)
    cols = np.flatnonzero(ink.max(axis=0) > 0)
    if rows.size == 0:
        raise NoInkError("the image has no ink: it is blank or nearly uniform")
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    factor = BOX / max(h, w)
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    resized = Image.fromarray(crop.astype(np.float32)).resize(
        size, Image.Resampling.LANCZOS, reducing_gap=3.0 if factor < 0.5 else None
    )
    return _unit(np.asarray(resized, dtype=np.float32))


def _centre(box: FloatImage) -> FloatImage:
    h, w = box.shape
    total = float(box.sum())
    ys, xs = np.mgrid[0:h, 0:w]
    cy = float((box * ys).sum() / total) if total else (h - 1) / 2
    cx = float((box * xs).sum() / total) if total else (w - 1) / 2
    top = int(np.clip(round(SIDE / 2 - cy), 0, SIDE - h))
    left = int(np.clip(round(SIDE / 2 - cx), 0, SIDE - w))
    field = np.zeros((SIDE, SIDE), dtype=np.float32)
    field[top : top + h, left : left + w] = box
    return field


def to_mnist(image: Image.Image) -> MnistImage:
    """The 28x28 uint8 image, white ink on black, that the models take (divided by 255)."""
    field = _centre(_fit_box(normalise_ink(to_grey(image))))
    return np.round(field * 255.0).astype(np.uint8)


def model_input(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """uint8 N x 28 x 28 (MNIST's format) to float32 N x 28 x 28 x 1 in [0, 1]: what the models
    take, in training and in serving alike."""
    return (pixels.astype(np.float32) / 255.0)[..., np.newaxis]


def from_bytes(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> MnistImage:
    return to_mnist(decode(data, max_pixels=max_pixels).image)


def to_png(pixels: MnistImage) -> bytes:
    """A 28x28 grey PNG of a model input, as the model saw it."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
