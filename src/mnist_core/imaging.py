"""Any image of a handwritten digit to a 28x28 input in MNIST's own format.

This module is the one place where images become model inputs: the API uses it for uploads and
``mnist-train predict`` for files, so serving and training cannot drift apart.

The steps follow how MNIST itself was made: apply the EXIF orientation; take the first frame;
composite transparency onto white (onto black when what is drawn is light: white strokes on a
transparent canvas); convert to grey (on a small picture, salt and pepper noise
filtered out); bring dark-on-light ink to MNIST's polarity (white ink on black); remove the
background level; crop to the ink's bounding box; scale so the longer side is 20 px, keeping
the aspect ratio, with anti-aliasing (strokes about a pixel wide there, of a fine pen or an
outline, widened to MNIST's pen); and place the result in a 28x28 field with its centre of mass
at the centre.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageChops, ImageFilter, ImageOps, ImageStat, UnidentifiedImageError

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
# A JPEG whose shorter side is at least twice this is decoded at 1/2, 1/4 or 1/8 scale (the
# decoder's own DCT scaling), keeping at least this many pixels on the shorter side: a digit a
# twentieth of a phone photo's height still spans 30.
DRAFT_SIDE = 600
ORIENTATION = 0x0112  # the EXIF tag; 5 to 8 turn the picture a quarter
# A transparent picture drawn on less than this share of its area holds strokes, not a page.
DRAWN_COVER = 0.5
# Ink must stand this far (on a 0-1 scale) above the background to count as a digit.
MIN_CONTRAST = 0.12
# After normalisation, values below this are paper texture or compression noise.
NOISE_FLOOR = 0.1
# Fitted to the digit's box, ink that nowhere reaches this was specks that average away (a blank
# notebook page's grain left between its rules): nothing shows. Where nothing reaches the noise
# floor, what reaches this is the strokes (a fine pen on a large canvas).
VISIBLE = 0.03
# Where nothing reaches the noise floor, the box of a picture without grain (a drawing), reduced
# more than twice this many times, is first reduced by the largest whole factor that leaves this
# much to go, each pixel taking its block's brightest: a stroke thinner than the reduction (a
# 1 px pen on a 2400 px canvas) stays a line a pixel wide, a speck stays a pixel, which the rest
# of the reduction averages away. On grainy paper the grain would join up into a texture.
POOL_LEFT = 8
# Reduced so, a fine pen's strokes are lines: POOL_JOINED of their lit pixels or more have two
# lit neighbours or more (all but the lines' ends: 98% or more for the first 60 MNIST test digits
# written again with a 1 px pen on 1000 and 2400 px canvases), and they cover POOL_COVER of the
# copy at most (8% there). Specks scattered at random (dust on a blank canvas, too few to call
# the page grainy) are joined so only where they cover about 40% of it (43% of them at 18%).
POOL_JOINED = 0.9
POOL_COVER = 0.25
# Pixels standing off the paper by twice MIN_CONTRAST or more, CLEAR_INK of the picture at least:
# ink, even where fainter lines, many more of them, set the ink's level under MIN_CONTRAST.
CLEAR_INK = 0.0002
# The level of the strokes in a reduced box: this percentile of its pixels above the noise floor.
INK_LEVEL = 95
# A background this close to mid-grey says nothing of the ink's polarity (white chalk on grey,
# black pen on grey paper): the ink is then on the side of the background where the image
# reaches further, judged from its 0.1th and 99.9th percentiles.
MID_GREY = (96.0, 160.0)
# On unevenly lit images with at least FLATTEN_FROM pixels on the shorter side (MNIST's own
# size: fog or a shadow over a small crop is as uneven as over a photo), the paper's own
# level is estimated on a copy reduced to about PAPER_SIDE pixels (strokes filtered out of it)
# and taken away, and the ink's box is found first on a copy reduced by up to GRAIN_REDUCTION
# (never below PAPER_SIDE), where grain averages away: a speck of 3 px comes out at 14% of its
# level, under the quarter that counts, a pen stroke of 3 px at 37%.
PAPER_SIDE = 32
PAPER_WINDOW = 9  # strokes narrower than this are filtered out of the reduced copy
POLARITY_SIDE = 8 * PAPER_SIDE  # the copy on which the ink's polarity is judged against it
# ... which overrules the edges' median only by this many grey levels or more: the local median
# inside a bold light digit is the strokes' level, and the gaps between them reach further from
# it (300 MNIST test digits enlarged to 280 px on mid-grey paper, strokes 14 px bolder: up to
# 53); the lit paper round dark ink under a lamp, at least 89, beside a shadow 71 (500 each).
POLARITY_MARGIN = 64
GRAIN_REDUCTION = 8
FLATTEN_FROM = SIDE
UNEVEN = 0.12 * 255
VIGNETTE = MIN_CONTRAST / 2 * 255  # the least that the ink table takes for ink
# A glare on a photo of mid-grey paper (``_glare``), looked for on pictures larger than
# GLARE_FROM pixels a side: its light falls off smoothly, so under GLARE_SHARE of the pixels a
# quarter of the way or more from the paper to the lightest are three quarters of the way (a
# Gaussian reflection has 0.21 of them there, whatever its size; MNIST's light strokes on grey,
# enlarged to 200 px, a median of 0.57 and a 5th percentile of 0.41). Read so, the page must
# still hold ink once its paper is taken away (``_flatten``).
GLARE_FROM = 64
GLARE_SHARE = 0.4
QUARTER = 64  # a quarter of full white
# Point tables: below a quarter of full white, 0; and ink at a quarter or more, full white.
FROM_QUARTER = [0] * QUARTER + list(range(QUARTER, 256))
QUARTER_LIT = [0] * QUARTER + [255] * (256 - QUARTER)
# Salt and pepper on a picture at MNIST's scale (at most SPECKLE_SIDE pixels a side): when at
# least SPECKLE_SHARE of its pixels stand off the background with no neighbour doing so, each
# pixel becomes the median of its 3x3 neighbourhood (strokes are wider than one pixel and stay).
SPECKLE_SIDE = 64
SPECKLE_SHARE = 0.01
# Grain on a larger picture that was not flattened (``_grainy``): when at least GRAIN_SHARE of
# its edges come out as ink, the ink's box is found as on a flattened page (``_ink_box``).
GRAIN_SHARE = 0.01
SPECK_LIT = 0.75  # on the copy reduced for the ink's box, of full white over the reduction
# Within the region that copy gives, a lit pixel counts for the box only with at least
# SPECK_CLUSTER of the nine of its 3x3 window lit (itself too): a speck of grain of up to three
# pixels does not, a stroke two pixels wide does.
SPECK_CLUSTER = 4
# The 3x3 mean of a lit copy is k lit pixels times 255 / 9, rounded: lit from half a pixel under
# SPECK_CLUSTER.
CLUSTER_LEVEL = math.ceil((SPECK_CLUSTER - 0.5) * 255 / 9)
CLUSTERED = [0] * CLUSTER_LEVEL + [255] * (256 - CLUSTER_LEVEL)
# A frame around a picture (``_unframed``): on at least FRAME_SIDES sides, within the strip along
# the side that ``_histograms`` reads (``_edge_width``), a line whose mean ink is FRAME_LEVEL or
# more.
FRAME_SIDES = 3
FRAME_LEVEL = 0.8 * 255
# Ruled or squared paper (``_unruled``): a rule is a band of at most RULE_WIDTH of the picture's
# side (at least 2 px) in which RULE_COVER of every line is ink, a quarter lit or more in one
# line at least; at least RULES of them across the picture, square to it or turned a little
# (below), say ruled paper (a digit's own straight stroke is one, or thick).
RULE_COVER = 0.9
RULE_WIDTH = 1 / 40
RULES = 2
RULE_POINTS = 16
# Rules turned by a slope of up to RULE_TILT (about 6 degrees: a photo of a page held by hand)
# are found too, where lines of ink cross the picture (``_crossed``, ``_rule_slope``): the
# slope is searched for on a copy reduced to RULE_SEARCH_COLUMNS across, and taken over square
# when it lines the rules up RULE_BETTER times better (by the sum of the squares of the rows'
# totals); then found more closely on one reduced to RULE_FINE_COLUMNS. Where lines of ink
# still cross the picture after that, they are looked for as rules that converge (a page
# photographed at an angle: ``_fan``), turned up to three times RULE_TILT more or less at the
# picture's edges than at its middle and 1 - RULE_FAN to 1 + RULE_FAN times as far apart at
# either end of it as at its middle (a page whose far edge is up to about 40% narrower).
RULE_TILT = 0.1
RULE_SEARCH_COLUMNS = 16
RULE_FINE_COLUMNS = 64
RULE_BETTER = 1.05
RULE_FAN = 0.35
# A sheet on a surface of the other polarity (``_sheet``: a light note on a dark desk, a slate on
# a light table): looked for on pictures of at least SHEET_MIN_SIDE pixels a side, on a copy
# reduced to about SHEET_SIDE; it spans SHEET_SPAN of the picture each way, fills SHEET_SOLID of
# its convex hull and SHEET_RECTANGLE of the smallest rectangle round it, holds between SHEET_INK
# of its area in ink, and at most SHEET_THIN of that ink survives erosion (strokes, not a hole).
SHEET_MIN_SIDE = 64
SHEET_SIDE = 128
SHEET_SPAN = 0.25
SHEET_SOLID = 0.94
SHEET_INK = (0.005, 0.35)  # a bold digit filling a sticky note covers up to a third of it
SHEET_THIN = 0.03
SHEET_STROKE = 1 / 12  # the erosions: this share of the sheet's shorter side
SHEET_RECTANGLE = 0.9
SHEET_SQUARE = 1.0  # a sheet turned less than this many degrees is read as it is
# A page cut by the picture's edges covers SHEET_CUT of one or more of them; what lies beyond it
# shows SHEET_BEYOND steps deep or more on the reduced copy (a region, not rules).
SHEET_CUT = 0.5
SHEET_BEYOND = 2
# A sheet's edge is a step; a pool of light (a lamp close over a page) fades over tens of pixels.
# Just beyond a sheet (SHEET_BEYOND steps), the surface lies within SHEET_EDGE of the way from
# its own level to the sheet's: at most 0.006 for the sheets and pages of ``bench/imaging.py``
# (300 each, light and dark), at least 0.23 for the pools of light taken for sheets (32 of 300).
SHEET_EDGE = 0.1
# A page whose edge the picture shows, cut by the picture's own edges on its other sides: the
# desk beyond it makes CUT_SHARE of the picture's edge strips or more, CUT_CONTRAST darker than
# the paper (lighter round a slate); the page is then looked for as a sheet.
CUT_SHARE = 0.1
CUT_CONTRAST = 0.25 * 255
# Strokes about a pixel wide once the ink is fitted to its 20 px box (a fine pen on a small
# canvas, a digit's outline, its edges): fewer than THIN_CORE of the pixels lit half or more lie
# in a 2x2 square of such pixels, where MNIST's strokes, 2 to 3 px wide, put half of them. They
# are widened by a pixel each way, as MNIST's pen would have drawn them (``_bolder``).
THIN_CORE = 0.1

FloatImage = npt.NDArray[np.float32]
MnistImage = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float64]


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
    # The first frame, EXIF orientation applied, fully loaded; a large JPEG at reduced scale.
    image: Image.Image
    format: str
    content_type: str
    width: int  # of the picture as sent (upright), whatever the scale it was decoded at
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
        shorter = min(width, height)
        if fmt in ("JPEG", "MPO") and shorter >= 2 * DRAFT_SIDE:
            scale = DRAFT_SIDE / shorter
            image.draft(image.mode, (round(width * scale), round(height * scale)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
            orientation = _orientation(image, fmt)
            upright = ImageOps.exif_transpose(image) if orientation != 1 else image
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise InvalidImageError(f"the image is corrupt or truncated: {exc}") from exc
    if orientation in (5, 6, 7, 8):  # a quarter turn
        width, height = height, width
    return DecodedImage(upright, fmt, FORMATS[fmt], width, height)


def _orientation(image: Image.Image, fmt: str) -> int:
    """The EXIF orientation (1 to 8; 1 is upright) of a loaded image. EXIF is read only where
    the file carries some: parsing an absent block costs more than decoding a small PNG."""
    if fmt != "TIFF" and "exif" not in image.info and "Raw profile type exif" not in image.info:
        return 1
    value = image.getexif().get(ORIENTATION, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _composited(rgba: Image.Image) -> Image.Image:
    """A transparent picture in grey levels, composited onto white; onto black instead when what
    is drawn covers less than ``DRAWN_COVER`` of it and is light (white strokes on a transparent
    canvas, which white would hide)."""
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    grey = Image.alpha_composite(white, rgba).convert("L")
    alpha = rgba.getchannel("A")
    drawn = ImageStat.Stat(alpha).sum[0] / 255  # in pixels, a partly opaque one counting in part
    if 0 < drawn < DRAWN_COVER * rgba.width * rgba.height:
        # On white, each pixel is darker by its opacity times how far it is from white; so the
        # drawn pixels' mean level, each weighed by its opacity, is white less that darkening
        # over how much is drawn.
        darkening = 255 * rgba.width * rgba.height - ImageStat.Stat(grey).sum[0]
        if 255 - darkening / drawn > 127.5:
            return ImageChops.subtract(grey, ImageOps.invert(alpha))  # on black: less 255 - alpha
    return grey


def _grey(image: Image.Image) -> Image.Image:
    """Grey levels, mode L (0 black, 255 white), transparency composited onto white (or black,
    ``_composited``)."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):  # deep greys: scaled to 8 bits
        values = np.asarray(image, dtype=np.float32)
        if mode == "F":
            peak = 1.0 if values.max() <= 1.0 else 255.0
        else:
            peak = 65535.0 if mode.startswith("I;16") or values.max() > 255 else 255.0
        return Image.fromarray(np.round(np.clip(values / peak, 0, 1) * 255).astype(np.uint8))
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        return _composited(image.convert("RGBA"))
    if mode == "CMYK":
        image = image.convert("RGB")
    return image if image.mode == "L" else image.convert("L")


def _edge_width(size: tuple[int, int]) -> int:
    """How wide the strips along a picture's edges are that tell its paper and its frame: a
    twentieth of the shorter side."""
    return max(1, min(size) // 20)


def _histograms(grey: Image.Image) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Grey-level counts of the whole image, and of the strips along its four edges
    (``_edge_width``)."""
    w, h = grey.size
    k = _edge_width(grey.size)
    strips = [(0, 0, w, k), (0, h - k, w, h), (0, k, k, h - k), (w - k, k, w, h - k)]
    counts = np.asarray(grey.histogram(), dtype=np.int64)
    if w * h <= 1 << 20:  # up to a megapixel, one copy and NumPy beat four crops
        values = np.asarray(grey)
        edges = [values[top:bottom, left:right].ravel() for left, top, right, bottom in strips]
        return counts, np.bincount(np.concatenate(edges), minlength=256)
    border = np.zeros(256, dtype=np.int64)
    for box in strips:
        border += np.asarray(grey.crop(box).histogram(), dtype=np.int64)
    return counts, border


def _percentile(counts: npt.NDArray[np.int64], q: float) -> float:
    """The q-th percentile (0-100) of the values that ``counts`` counts, interpolated between
    neighbours as ``numpy.percentile`` does."""
    rank = q / 100 * (int(counts.sum()) - 1)
    cumulative = np.cumsum(counts)
    low = int(np.searchsorted(cumulative, np.floor(rank), side="right"))
    high = int(np.searchsorted(cumulative, np.ceil(rank), side="right"))
    return float(low + (high - low) * (rank - np.floor(rank)))


Histograms = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]  # whole image, edges


def _dark_ink(counts: npt.NDArray[np.int64], background: float) -> bool:
    """Whether the ink is darker than the ``background`` (the edges' median): light paper means
    dark ink; on mid-grey (``MID_GREY``) the ink is where the image's tails (its 0.1th and
    99.9th percentiles: a thin digit on a page may be under 1% of it) reach further (``counts``:
    the whole image's grey levels)."""
    if MID_GREY[0] <= background <= MID_GREY[1]:
        darkest, lightest = _percentile(counts, 0.1), _percentile(counts, 99.9)
        return background - darkest > lightest - background
    return background > 127.5


def ink_table(grey: Image.Image, histograms: Histograms | None = None) -> list[int]:
    """The 256-entry table that takes grey levels to MNIST ink (high on a black background):
    polarity from the edges' median (``_dark_ink``), the background level removed, the ink's
    own level (a high percentile of the pixels clearly off the background, so a small digit on
    a large page counts as much as one that fills the frame) brought to 255, paper texture below
    the noise floor set to 0. Made from histograms (``_histograms(grey)``, computed here unless
    given), so it costs one pass over the pixels, in C."""
    counts, border = histograms if histograms is not None else _histograms(grey)
    background = _percentile(border, 50)
    inverted = _dark_ink(counts, background)
    if inverted:
        counts, background = counts[::-1], 255.0 - background
    levels = np.arange(256, dtype=np.float64)
    candidates = np.where(levels > background + MIN_CONTRAST / 2 * 255, counts, 0)
    # The ink's level, or, with nothing clearly off the background, the brightest level there is.
    peak = _percentile(candidates, 95) if candidates.sum() else float(np.flatnonzero(counts).max())
    if peak - background < MIN_CONTRAST * 255:
        # Faint lines over much more of the page than the ink (a notebook's rules, a few
        # levels off the paper) may have set that level: the ink is then what stands twice as
        # far off, if there is enough of it.
        clear = np.where(levels > background + 2 * MIN_CONTRAST * 255, counts, 0)
        if clear.sum() < CLEAR_INK * counts.sum():
            raise NoInkError("the image has no ink: it is blank or nearly uniform")
        peak = _percentile(clear, 95)
    own = levels[::-1] if inverted else levels
    ink = np.clip((own - background) / (peak - background), 0.0, 1.0)
    ink[ink < NOISE_FLOOR] = 0.0
    table: list[int] = np.round(ink * 255).astype(np.uint8).tolist()
    return table


def _ink_box(ink: Image.Image, speckled: bool) -> tuple[int, int, int, int] | None:
    """The ink's bounding box. On a speckled image (a photo's grain passing the noise floor),
    first on a reduced copy, where an isolated speck averages away and a stroke does not, from
    a quarter lit; then within that region at full scale, from a quarter lit too: grain would
    otherwise widen the box by up to the padding, and the digit would come out small. Within
    that region (of a picture large enough to be reduced), a lit pixel counts only with
    ``SPECK_CLUSTER`` lit in its 3x3 window, itself included: specks of grain of a few pixels
    beside the strokes would still set the box. If none has that many, every lit pixel counts.

    Otherwise, the whole ink's box, unless a few specks lie apart from the strokes (grain on
    evenly lit paper, too little to call the page grainy, or a fleck of dust: they set the box
    to the page): on the reduced copy, from ``SPECK_LIT`` of full white over the reduction, a
    stroke a pixel wide at full ink stays, a speck of a pixel or two (on the largest reduction,
    four) averages away. If the box reaches beyond that region, it is read as a speckled one."""
    w, h = ink.size
    factor = max(1, min(GRAIN_REDUCTION, min(w, h) // PAPER_SIDE))
    lit, bbox = QUARTER_LIT, None
    if not speckled:
        bbox = ink.getbbox()
        if factor == 1 or bbox is None:
            return bbox
        level = math.ceil(SPECK_LIT * 255 / factor)
        lit = [0] * level + [255] * (256 - level)
    coarse = ink.reduce(factor).point(lit).getbbox()
    if coarse is None:
        return bbox or ink.getbbox()  # the whole ink's box, read once
    left, top, right, bottom = (v * factor for v in coarse)
    pad = 2 * factor  # the faint ends of strokes, below the reduced copy's threshold
    region = (max(0, left - pad), max(0, top - pad), min(w, right + pad), min(h, bottom + pad))
    if bbox is not None:
        left, top, right, bottom = bbox
        if region[0] <= left and region[1] <= top and right <= region[2] and bottom <= region[3]:
            return bbox
    lit_region = ink.crop(region).point(QUARTER_LIT)
    inner = lit_region.getbbox()
    if inner is None:
        return None
    if factor > 1:
        near = lit_region.filter(ImageFilter.BoxBlur(1)).point(CLUSTERED)
        inner = ImageChops.multiply(lit_region, near).getbbox() or inner
    return (region[0] + inner[0], region[1] + inner[1], region[0] + inner[2], region[1] + inner[3])


def _to_box(crop: Image.Image) -> tuple[Image.Image, float]:
    """``crop`` scaled so its longer side is ``BOX``, keeping its aspect ratio, anti-aliased
    (reduced by whole factors first when it shrinks more than twice); and the scale."""
    factor = BOX / max(crop.size)
    size = (max(1, round(crop.width * factor)), max(1, round(crop.height * factor)))
    resized = crop.resize(
        size, Image.Resampling.LANCZOS, reducing_gap=3.0 if factor < 0.5 else None
    )
    return resized, factor


def _fit_box(ink: Image.Image, *, speckled: bool = False) -> FloatImage:
    """The ink's bounding box, scaled so its longer side is ``BOX``, anti-aliased. Reduced, a
    stroke thinner than the reduction comes out fainter than the ink was (a 3 px pen on a
    280 px drawing at a third of full white, where MNIST's strokes reach it): the strokes'
    level (``INK_LEVEL``) is then brought back to full white. The strokes are what reaches the
    noise floor once reduced. Where nothing does, a drawing reduced more than 16 times is
    reduced again, by blocks first, each taking its brightest (``POOL_LEFT``: a 1 px pen on a
    1000 px canvas or larger); and where still nothing does, the strokes are what reaches
    ``VISIBLE``. Where nothing reaches that (specks that average away: the grain left between
    a blank page's rules once they are gone), there is no ink to show."""
    bbox = _ink_box(ink, speckled)
    if bbox is None:
        raise NoInkError("the image has no ink: it is blank or nearly uniform")
    crop = ink.crop(bbox)
    resized, factor = _to_box(crop)
    floor = round(NOISE_FLOOR * 255)
    pool = math.floor(1 / (factor * POOL_LEFT))
    if pool >= 2 and not speckled and int(np.asarray(resized).max()) < floor:
        pooled = _pooled(crop, pool)
        if _lines(np.asarray(pooled) > 0):
            resized = _to_box(pooled)[0]
    box: FloatImage = np.asarray(resized, dtype=np.float32) / 255.0
    if factor < 1:
        strokes = np.asarray(resized.histogram(), dtype=np.int64)
        if not strokes[floor:].any():
            floor = math.ceil(VISIBLE * 255)
            if not strokes[floor:].any():
                raise NoInkError("the image has no ink: nothing in it shows at the digit's scale")
        strokes[:floor] = 0
        level = _percentile(strokes, INK_LEVEL)
        if level < 255:
            box = np.minimum(box * (255.0 / level), 1.0)
    return box


def _pooled(image: Image.Image, factor: int) -> Image.Image:
    """``image`` reduced ``factor`` times, each pixel the brightest of its block (the last
    blocks of a side that ``factor`` does not divide padded with black)."""
    values = np.asarray(image)
    h, w = values.shape
    rows, cols = -(-h // factor), -(-w // factor)
    padded = np.zeros((rows * factor, cols * factor), dtype=np.uint8)
    padded[:h, :w] = values
    return Image.fromarray(padded.reshape(rows, factor, cols, factor).max(axis=(1, 3)))


def _lines(lit: npt.NDArray[np.bool_]) -> bool:
    """Whether the ``lit`` pixels are lines, not specks (``POOL_JOINED``, ``POOL_COVER``)."""
    count = int(np.count_nonzero(lit))
    if count == 0 or count > POOL_COVER * lit.size:
        return False
    joined = lit & (_in_block(lit.astype(np.uint8)) >= 3)  # itself and two neighbours
    return int(np.count_nonzero(joined)) >= POOL_JOINED * count


def _centre(box: FloatImage) -> FloatImage:
    h, w = box.shape
    rows, cols = box.sum(axis=1), box.sum(axis=0)
    total = float(rows.sum())
    cy = float(rows @ np.arange(h)) / total if total else (h - 1) / 2
    cx = float(cols @ np.arange(w)) / total if total else (w - 1) / 2
    top = int(np.clip(round(SIDE / 2 - cy), 0, SIDE - h))
    left = int(np.clip(round(SIDE / 2 - cx), 0, SIDE - w))
    field = np.zeros((SIDE, SIDE), dtype=np.float32)
    field[top : top + h, left : left + w] = box
    return field


def _closing(
    values: npt.NDArray[np.uint8], window: int, *, dark: bool = False
) -> npt.NDArray[np.uint8]:
    """``values`` with what is darker than its surroundings and narrower than ``window`` (odd)
    filled in: the largest value in each window, then the smallest of those (with ``dark``,
    what is lighter: the smallest, then the largest). It keeps the shape of what is wider,
    where the first step alone would spread a peak round it. The image is extended by its edge
    lines, as far as both steps reach, so near the edges this is the closing of the picture
    extended. Each step runs along the rows, then the columns (a square window is both)."""
    first, second = (np.minimum, np.maximum) if dark else (np.maximum, np.minimum)
    half = window // 2
    out = np.pad(values, 2 * half, mode="edge")
    for step in (first, second):
        out = _running(_running(out, window, step, axis=0), window, step, axis=1)
    return out


def _running(
    values: npt.NDArray[np.uint8], window: int, step: np.ufunc, *, axis: int
) -> npt.NDArray[np.uint8]:
    """``step`` (``np.maximum`` or ``np.minimum``) over each run of ``window`` values along
    ``axis`` (as long as ``values`` less ``window - 1``): runs of 1, 2, 4, ... values taken
    together two at a time, then the last, overlapping, to make up ``window``."""

    def part(array: npt.NDArray[np.uint8], start: int, length: int) -> npt.NDArray[np.uint8]:
        return array[start : start + length] if axis == 0 else array[:, start : start + length]

    n = values.shape[axis] - window + 1
    out, width = values, 1
    while 2 * width <= window:
        size = out.shape[axis] - width
        out = step(part(out, 0, size), part(out, width, size))
        width *= 2
    if width < window:
        out = step(part(out, 0, n), part(out, window - width, n))
    return part(out, 0, n)


def _glare(counts: npt.NDArray[np.int64], background: float) -> bool:
    """Whether the page is mid-grey (``background``: the edges' median) with a glare, not light
    ink, on its lighter side: the tails rule (``_dark_ink``) takes the side reaching further
    for the ink, and a reflection on a dim photo reaches further than the ink does. A glare's
    light falls off smoothly (``GLARE_SHARE``). ``counts``: the whole image's grey levels."""
    if not MID_GREY[0] <= background <= MID_GREY[1] or _dark_ink(counts, background):
        return False  # not mid-grey, or dark ink read as such already
    lightest = _percentile(counts, 99.9)
    levels = np.arange(256)
    lit = int(counts[levels >= background + (lightest - background) / 4].sum())
    bright = int(counts[levels >= background + (lightest - background) * 3 / 4].sum())
    return bright < GLARE_SHARE * lit


def _paper(grey: Image.Image, *, light_paper: bool) -> npt.NDArray[np.int16]:
    """The paper's level on a copy reduced to about ``PAPER_SIDE`` pixels on the shorter side
    (by a whole factor), its strokes taken out by a closing (``_closing``)."""
    small = np.asarray(grey.reduce(_paper_factor(grey.size)))
    return _closing(small, PAPER_WINDOW, dark=not light_paper).astype(np.int16)


def _paper_factor(size: tuple[int, int]) -> int:
    """The whole factor that reduces a picture of ``size`` to about ``PAPER_SIDE`` pixels on
    its shorter side: where the paper's level is estimated, and what ``_enlarged`` undoes."""
    return max(1, min(size) // PAPER_SIDE)


def _without_paper(
    grey: Image.Image, *, light_paper: bool, closed: npt.NDArray[np.int16] | None = None
) -> Image.Image:
    """The ink alone, light on black: the paper's level (``_flatten``) taken away. ``closed``:
    the paper's level on the reduced copy (``_paper``), when known."""
    if closed is None:
        closed = _paper(grey, light_paper=light_paper)
    paper = _enlarged(closed, grey.size)
    return ImageChops.subtract(paper, grey) if light_paper else ImageChops.subtract(grey, paper)


def _enlarged(level: npt.NDArray[np.int16], size: tuple[int, int]) -> Image.Image:
    """The paper's ``level`` on the copy reduced to about ``PAPER_SIDE`` (``_paper``) brought
    back to ``size``: carried on along its slope beyond its edges (extended by two blocks,
    linearly), smoothed, and enlarged with each block's level at its centre. Held level beyond
    the outer centres, or smoothed up to the edges as they are, the paper under a glare rising
    towards an edge came out up to 14 grey levels too light there, which reads as ink."""
    w, h = size
    factor = _paper_factor(size)
    extended = np.clip(np.pad(level, 2, mode="reflect", reflect_type="odd"), 0, 255)
    smooth = Image.fromarray(extended.astype(np.uint8)).filter(ImageFilter.GaussianBlur(1))
    box = (2.0, 2.0, 2 + w / factor, 2 + h / factor)
    return smooth.resize((w, h), Image.Resampling.BILINEAR, box=box)


def _flatten(grey: Image.Image, histograms: Histograms) -> tuple[Image.Image, bool]:
    """The ink alone, light on black, with the paper's level taken away where it is, and
    whether that was needed. Uneven light (a photo lit from one side) leaves parts of the page
    as dark as ink; seen along the edges, the paper then spans more than ``UNEVEN`` grey levels
    between its 10th and 90th percentiles, or, estimated, more than ``VIGNETTE`` (light falling
    off towards the corners only). A glare on a photo (``_glare``) may not reach the
    edges: the page is then read as dark ink on uneven paper, if that leaves ink
    (``MIN_CONTRAST``: a glare on the digit lifts its ink to the paper's level elsewhere, so
    the page's tails do not show it; light ink in soft strokes leaves none, and is read as
    light ink). The paper is estimated on a reduced copy, its strokes removed by a closing (a
    max filter, then a min filter; the other way round for light ink on dark), which keeps the
    paper's own shape where a max filter alone would spread a glare's peak round it; lightly
    smoothed and enlarged back. Where the edges are mid-grey, the ink's polarity is judged
    against that level too (``_darker_on_its_paper``), and a page it reads the other way by
    ``POLARITY_MARGIN`` or more is flattened. Small images and evenly lit ones are returned as
    they are.
    ``histograms``: the grey levels of the whole image and along its edges (``_histograms``)."""
    w, h = grey.size
    if min(w, h) < FLATTEN_FROM:
        return grey, False
    counts, border = histograms
    background = _percentile(border, 50)
    if min(w, h) > GLARE_FROM and _glare(counts, background):
        ink = _without_paper(grey, light_paper=True)
        if _reach(ink) >= MIN_CONTRAST * 255:
            return ink, True
    light_paper = _dark_ink(counts, background)
    if min(w, h) > GLARE_FROM and MID_GREY[0] <= background <= MID_GREY[1]:
        # Mid-grey edges may not be the paper round the ink: a shadow over most of them, or
        # the dim part of a page round a pool of light (a lamp close over it). The paper round
        # the digit then reaches as far from their median as the ink does, and the tails rule
        # may take it for the ink. Not on crops of GLARE_FROM px or less, which the edges'
        # median reads better: judged so at 28 px, MNIST's own digits lost 2.6 points under
        # brightness, 0.5 under fog (MNIST-C, 10,000 each).
        darker = _darker_on_its_paper(grey)
        if abs(darker) >= POLARITY_MARGIN and (darker > 0) != light_paper:
            return _without_paper(grey, light_paper=darker > 0), True
    closed = None
    if _percentile(border, 90) - _percentile(border, 10) <= UNEVEN:
        # Even along most of the edges; but the paper may still darken towards the corners
        # (a lens's vignetting) by more than the ink table takes for paper (``VIGNETTE``; on
        # dark paper, lighten). Only if the edges' darkest hundredth stands that far off (it is
        # ink, or such paper), the paper's level is estimated and read along the edges, a
        # block in from them: a line along an edge (a rule, a frame) outlasts the closing there.
        if light_paper:
            tail = background - _percentile(border, 1)
        else:
            tail = _percentile(border, 99) - background
        if tail <= VIGNETTE:
            return grey, False
        closed = _paper(grey, light_paper=light_paper)
        inner = closed[1:-1, 1:-1]
        ring = np.concatenate([inner[0], inner[-1], inner[:, 0], inner[:, -1]])
        if int(ring.max()) - int(ring.min()) <= VIGNETTE:
            return grey, False
    return _without_paper(grey, light_paper=light_paper, closed=closed), True


def _darker_on_its_paper(grey: Image.Image) -> float:
    """How much further what is darker than its paper reaches from it than what is lighter,
    in grey levels, on a page lit unevenly: the tails rule (``_dark_ink``) with each pixel set
    against the paper's level where it is, not against the edges' median; above 0, the ink is
    dark. That level is the median of each window ``PAPER_WINDOW`` wide on a copy
    reduced to about ``PAPER_SIDE``, which ink of neither polarity fills, enlarged back as
    ``_without_paper`` does; a shadow's edge comes out a little off it on both sides alike,
    the ink on one. Read on a copy reduced to about ``POLARITY_SIDE``, where strokes keep
    their level: about 2.4 ms on an 800x600 page (6.3 ms with each reading made at full size)."""
    copy = grey.reduce(max(1, min(grey.size) // POLARITY_SIDE))
    small = np.pad(
        np.asarray(copy.reduce(_paper_factor(copy.size))), PAPER_WINDOW // 2, mode="edge"
    )
    windows = np.lib.stride_tricks.sliding_window_view(small, (PAPER_WINDOW, PAPER_WINDOW))
    flat = windows.reshape(*windows.shape[:2], PAPER_WINDOW**2)
    middle = PAPER_WINDOW**2 // 2  # the median of each window: its middle value, once sorted
    paper = _enlarged(np.partition(flat, middle, axis=2)[..., middle].astype(np.int16), copy.size)
    return _reach(ImageChops.subtract(paper, copy)) - _reach(ImageChops.subtract(copy, paper))


def _reach(ink: Image.Image) -> float:
    """How far ``ink`` (light on black) reaches: its 99.9th percentile."""
    return _percentile(np.asarray(ink.histogram(), dtype=np.int64), 99.9)


def _salt_and_pepper(grey: Image.Image, background: float) -> bool:
    """Whether at least ``SPECKLE_SHARE`` of the pixels stand off the ``background`` (the
    edges' median) on their own, none of their 8 neighbours off it too: impulse noise, not
    strokes."""
    far = np.abs(np.arange(256) - background) > MIN_CONTRAST * 255
    off = far.astype(np.uint8)[np.asarray(grey)]
    alone = int(np.count_nonzero((_in_block(off) == 1) & (off == 1)))
    return bool(alone >= SPECKLE_SHARE * off.size)


def _in_block(marked: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """How many of each pixel's 3x3 neighbourhood, itself included, are ``marked`` (0 or 1),
    summed down then across."""
    column = marked.copy()
    column[1:] += marked[:-1]
    column[:-1] += marked[1:]
    block = column.copy()
    block[:, 1:] += column[:, :-1]
    block[:, :-1] += column[:, 1:]
    return block


def _grainy(edges: npt.NDArray[np.int64]) -> bool:
    """Whether at least ``GRAIN_SHARE`` of the edges (``edges``: how many of their pixels have
    each ink level) are ink: the paper's grain passes the noise floor, as it does when faint
    ink on grey paper sets the scale (a dim photo), and would widen the ink's box to the
    page."""
    return int(edges[1:].sum()) >= GRAIN_SHARE * int(edges.sum())


def _unframed(ink: Image.Image) -> Image.Image:
    """``ink`` (light on black) inside its frame, if it has one: a screenshot's border, or the
    lines of a form's box cropped with the digit, would otherwise make the whole picture the
    ink's box and the digit small in it. A frame is a line along a side, within the strip
    along it that ``_histograms`` reads (``_edge_width``), of mean ink ``FRAME_LEVEL`` or more
    (dark along 80% of the side), on at least ``FRAME_SIDES`` sides; the picture is cut inside
    the innermost such line of each side. None of the 10,000 MNIST test digits, as they
    are or cropped to their ink (at 1x and 8x), has one. Each strip is averaged down to one
    value a line, in C."""
    w, h = ink.size
    k = _edge_width(ink.size)
    bands = (  # each side's lines, from the side inwards
        ink.crop((0, 0, k, h)).resize((k, 1), Image.Resampling.BOX),
        ink.crop((0, 0, w, k)).resize((1, k), Image.Resampling.BOX),
        ink.crop((w - k, 0, w, h)).resize((k, 1), Image.Resampling.BOX),
        ink.crop((0, h - k, w, h)).resize((1, k), Image.Resampling.BOX),
    )
    cuts = []
    for side, band in enumerate(bands):
        means = np.asarray(band).ravel()
        lines = np.flatnonzero((means[::-1] if side >= 2 else means) >= FRAME_LEVEL)
        cuts.append(int(lines[-1]) + 1 if lines.size else 0)
    left, top, right, bottom = cuts
    if sum(cut > 0 for cut in cuts) < FRAME_SIDES or left + right >= w or top + bottom >= h:
        return ink  # no frame, or a picture of a few pixels that would be all frame
    return ink.crop((left, top, w - right, h - bottom))


def _unboxed(ink: Image.Image) -> Image.Image:
    """``ink`` inside a box drawn round the digit away from the picture's edges (a form's box
    cropped with a margin), if it has one: the frame (``_unframed``) of the ink's bounding
    box."""
    bbox = ink.getbbox()
    if bbox is None:
        return ink
    # A frame's sides meet, or reach, the box's corners: at least three of them are ink.
    left, top, right, bottom = bbox
    corners = [(left, top), (right - 1, top), (left, bottom - 1), (right - 1, bottom - 1)]
    if np.count_nonzero(np.array([ink.getpixel(corner) for corner in corners]) >= QUARTER) < 3:
        return ink
    tight = ink.crop(bbox)
    inside = _unframed(tight)
    return ink if inside is tight else inside


def _rules(core: npt.NDArray[np.bool_], faint: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """The bands (first line, line after the last) that are rules: runs of lines with ink
    across them (``faint``), thin enough, through at least one line with clear ink across it
    (``core``); none unless there are at least ``RULES`` of them."""
    bounds = np.flatnonzero(np.diff(np.concatenate(([0], faint.astype(np.int8), [0]))))
    widest = max(2, round(RULE_WIDTH * faint.size))
    bands = [
        (int(a), int(b))
        for a, b in zip(bounds[::2], bounds[1::2], strict=True)
        if b - a <= widest and core[a:b].any()
    ]
    return bands if len(bands) >= RULES else []


def _covered(
    lines: npt.NDArray[np.uint8], maybe: npt.NDArray[np.bool_], lengths: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Which ``lines`` (the rows of an ink image, or its columns) have ink across ``RULE_COVER``
    of their ``lengths`` in the picture: a quarter lit or more, and any at all; only those
    ``maybe`` are read."""
    core, faint = np.zeros(len(lines), dtype=bool), np.zeros(len(lines), dtype=bool)
    if maybe.any():
        some, cover = lines[maybe], RULE_COVER * lengths[maybe]
        core[maybe] = np.count_nonzero(some >= QUARTER, axis=1) >= cover
        faint[maybe] = np.count_nonzero(some, axis=1) >= cover
    return core, faint


def _rule_slope(ink: Image.Image, *, columns: bool) -> float:
    """The slope (lines down per pixel across) within ``RULE_TILT`` either way at which lines
    of ink along ``ink``'s rows (its columns, with ``columns``: then across and down swap)
    line up best: where the sum of the squares of the rows' totals is highest, each column
    moved up by the slope. Searched in three steps, on copies reduced across (a turned rule
    drifts a few pixels over each of their columns), each round the best slope of the one
    before: on one reduced to ``RULE_SEARCH_COLUMNS`` across and down too, by steps drifting a
    line down it (reduced by about as many lines as this tries slopes each way); on that copy
    at full height, within two of those steps (a rule fills little of a reduced line, and a
    slope a step off may line it up as well), by steps drifting a pixel down the picture; on
    one reduced to ``RULE_FINE_COLUMNS`` across, within two of those (a rule drifting two
    pixels across the picture is read in part). The first step stays square unless a slope
    does ``RULE_BETTER`` better."""
    w = ink.height if columns else ink.width
    across, copy = _reduced_across(ink, RULE_SEARCH_COLUMNS, columns=columns)
    down, coarse = _reduced_down(copy, w)
    slope = _best_slope(coarse, across / down, 0.0, RULE_TILT, down / w, better=RULE_BETTER)
    slope = _best_slope(copy, across, slope, 2 * down / w, 1 / w, better=1.0)
    across, copy = _reduced_across(ink, RULE_FINE_COLUMNS, columns=columns)
    return _best_slope(copy, across, slope, 2 / w, 1 / w, better=1.0)


def _reduced_across(
    ink: Image.Image, count: int, *, columns: bool
) -> tuple[int, npt.NDArray[np.float64]]:
    """How many pixels across are averaged into one, and ``ink`` so reduced to about
    ``count`` across its rows (its columns, with ``columns``: transposed, so that they
    lie along the copy's rows)."""
    w = ink.height if columns else ink.width
    across = max(1, w // count)
    if columns:
        reduced = ink.reduce((1, across)).transpose(Image.Transpose.TRANSPOSE)
    else:
        reduced = ink.reduce((across, 1))
    return across, np.asarray(reduced, dtype=np.float64)


def _reduced_down(copy: FloatArray, length: int) -> tuple[int, FloatArray]:
    """How many of ``copy``'s lines (a picture's, ``length`` pixels long) the coarsest step of
    a slope's search sums into one (about as many as it tries slopes each way), and ``copy``
    so summed (the last lines left out that would not fill one)."""
    down = max(1, round(math.sqrt(RULE_TILT * length)))
    rows = len(copy) // down * down
    coarse: FloatArray = copy[:rows].reshape(rows // down, down, -1).sum(axis=1)
    return down, coarse


def _best_slope(
    copy: npt.NDArray[np.float64],
    scale: float,
    centre: float,
    reach: float,
    step: float,
    *,
    better: float,
) -> float:
    """Of the slopes ``centre`` and round it, ``step`` apart, ``reach`` either way (none beyond
    ``RULE_TILT``), the one at which ``copy`` (a picture reduced ``scale`` times more across
    than down) has its lines most along its rows (``_alignment``); ``centre`` unless another
    does ``better`` times better."""
    h, w = copy.shape
    count = round(reach / step)
    slopes = np.clip(centre + step * np.arange(-count, count + 1), -RULE_TILT, RULE_TILT)
    shifts = _shifts(slopes, w, scale)
    pad = int(np.abs(shifts).max())
    span = h + 2 * pad
    rows = (np.arange(len(slopes)) * span)[:, None, None] + np.arange(h)[None, :, None]
    scores = _alignment(copy, rows + (pad - shifts)[:, None, :], span)
    best = int(np.argmax(scores))
    return float(slopes[best]) if scores[best] > scores[count] * better else centre


def _alignment(copy: npt.NDArray[np.float64], rows: npt.NDArray[np.int64], span: int) -> FloatArray:
    """For each way of laying ``copy``'s pixels on rows (``rows``: for each way, the row of
    each pixel, the ways' rows numbered apart, ``span`` each), how well its lines lie along
    them: the sum of the squares of the rows' totals. All ways' totals come from one count
    (NumPy's ``bincount``)."""
    weights = np.broadcast_to(copy, rows.shape).ravel()
    totals = np.bincount(rows.ravel(), weights=weights, minlength=len(rows) * span)
    scores: FloatArray = np.square(totals).reshape(len(rows), span).sum(axis=1)
    return scores


def _shifts(
    slopes: npt.NDArray[np.float64] | float, columns: int, width: float = 1.0
) -> npt.NDArray[np.int64]:
    """For each of ``slopes`` (or the one), how many whole pixels each of ``columns`` columns
    ``width`` pixels wide moves down for lines at that slope to lie along the rows, the
    middle of the picture staying where it is."""
    middle = (np.arange(columns) - (columns - 1) / 2) * width
    shifts: npt.NDArray[np.int64] = np.round(np.multiply.outer(slopes, middle)).astype(np.int64)
    return shifts


def _straightened(
    lines: npt.NDArray[np.uint8], slope: float
) -> tuple[npt.NDArray[np.uint8], list[tuple[int, int, int]], npt.NDArray[np.int64]]:
    """``lines`` with each column moved down or up by a whole number of pixels so that lines at
    ``slope`` lie along the rows, on a canvas padded above and below; the runs of columns
    moved alike (first column, column after the last, row of the canvas where their first
    row goes); and how many pixels of each row of the canvas are the picture's."""
    h, w = lines.shape
    shifts = _shifts(slope, w)
    pad = int(np.abs(shifts).max())
    canvas = np.zeros((h + 2 * pad, w), dtype=np.uint8)
    lengths = np.zeros(h + 2 * pad, dtype=np.int64)
    starts = np.concatenate(([0], np.flatnonzero(np.diff(shifts)) + 1))
    runs = []
    for a, b in zip(starts.tolist(), [*starts[1:].tolist(), w], strict=True):
        top = pad - int(shifts[a])
        canvas[top : top + h, a:b] = lines[:, a:b]
        lengths[top : top + h] += b - a
        runs.append((a, b, top))
    return canvas, runs, lengths


def _crossed(ink: Image.Image, *, columns: bool) -> bool:
    """Whether lines of ink cross ``ink`` along its rows (its columns, with ``columns``) as a
    page's rules do, square or turned: the strips along both of their ends (``_edge_width``)
    are inked (a quarter lit on average, across the strip) in at least ``RULES`` separate runs
    each. Each strip is averaged across, in C."""
    w, h = ink.size
    k = _edge_width(ink.size)
    if columns:
        ends = [(0, 0, w, k), (0, h - k, w, h)]
        across: tuple[int, int] = (w, 1)
    else:
        ends = [(0, 0, k, h), (w - k, 0, w, h)]
        across = (1, h)
    for box in ends:
        lit = np.asarray(ink.crop(box).resize(across, Image.Resampling.BOX)).ravel() >= QUARTER
        if int(lit[0]) + np.count_nonzero(lit[1:] & ~lit[:-1]) < RULES:
            return False
    return True


def _found_rules(
    lines: npt.NDArray[np.uint8], slope: float
) -> tuple[npt.NDArray[np.uint8], list[tuple[int, int, int]], list[tuple[int, int]]]:
    """The rules along ``lines``' rows at ``slope``: the lines (sheared to lay them along its
    rows, ``_straightened``, unless square), the runs of columns moved alike, and the rules'
    bands in it (``_bands``)."""
    h, w = lines.shape
    if slope:
        canvas, runs, lengths = _straightened(lines, slope)
    else:
        canvas, runs, lengths = lines, [], np.full(h, w)
    return canvas, runs, _bands(canvas, lengths, moved=bool(slope))


def _bands(
    canvas: npt.NDArray[np.uint8], lengths: npt.NDArray[np.int64], *, moved: bool
) -> list[tuple[int, int]]:
    """The rules' bands along ``canvas``' rows (first line, line after the last), of which
    ``lengths`` pixels each are the picture's; none unless at least ``RULES`` of them cross
    half of the picture or more (then a rule's end cut off by the picture's edge is one too).
    Lines are read whole only where ``RULE_POINTS`` points evenly along them are mostly lit
    (three in four of those in the picture: one lit along 90% of its length is, unless its
    gaps fall on the points). On a canvas ``moved`` to lay turned lines along its rows, a rule
    may still drift a pixel across the picture: it is read in each line and the next together,
    and both go."""
    w = canvas.shape[1]
    if moved:
        seen = np.maximum(canvas[:-1], canvas[1:])
        seen_lengths = np.maximum(lengths[:-1], lengths[1:])
    else:
        seen, seen_lengths = canvas, lengths
    points = ((np.arange(RULE_POINTS) + 0.5) * w / RULE_POINTS).astype(np.intp)
    lit = np.count_nonzero(seen[:, points] > 0, axis=1)
    # Lines of which fewer than four points lie in the picture are read whole.
    short = seen_lengths * RULE_POINTS < 4 * w
    maybe = ((lit * 4 * w >= 3 * RULE_POINTS * seen_lengths) | short) & (seen_lengths > 0)
    bands = _rules(*_covered(seen, maybe, seen_lengths)) if maybe.any() else []
    if sum(int(seen_lengths[a:b].max()) * 2 >= w for a, b in bands) < RULES:
        return []
    return [(a, b + 1) if moved else (a, b) for a, b in bands]


def _cleared(canvas: npt.NDArray[np.uint8], bands: list[tuple[int, int]]) -> None:
    """Each line of ``bands`` in ``canvas`` becomes, pixel by pixel, the fainter of the lines
    just outside the band."""
    for a, b in bands:
        before = canvas[a - 1] if a > 0 else np.zeros_like(canvas[0])
        after = canvas[b] if b < len(canvas) else np.zeros_like(canvas[0])
        canvas[a:b] = np.minimum(before, after)


def _fanned(
    lines: npt.NDArray[np.uint8], slope: float, spread: float
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``lines`` resampled (nearest pixel) so that lines fanning out from one point lie along
    its rows: the one crossing the middle column ``r`` rows from the middle row has the slope
    ``slope + spread * r``. Each column is scaled about the middle row (by ``1 + spread * c``,
    ``c`` its distance from the middle column) and moved (by ``slope * c``). The canvas; for
    each pixel of ``lines``, the canvas row it lies on; and how many pixels of each canvas row
    are the picture's."""
    h, w = lines.shape
    middle = (h - 1) / 2
    across = np.arange(w) - (w - 1) / 2
    scale, moved = 1 + spread * across, slope * across
    ends = (np.array([[0.0], [h - 1.0]]) - middle - moved) / scale
    first = math.floor(float(ends.min()))
    rows = np.arange(first, math.ceil(float(ends.max())) + 1)
    source = np.rint(middle + np.multiply.outer(rows, scale) + moved).astype(np.int64)
    inside = (source >= 0) & (source < h)
    canvas = np.where(inside, lines[np.clip(source, 0, h - 1), np.arange(w)], 0).astype(np.uint8)
    on = np.rint((np.arange(h)[:, None] - middle - moved) / scale).astype(np.int64) - first
    return canvas, on, np.count_nonzero(inside, axis=1)


def _fan_rows(
    shape: tuple[int, int], across: float, down: float, slopes: FloatArray, spreads: FloatArray
) -> npt.NDArray[np.int64]:
    """For each pair of ``slopes`` and ``spreads`` (``_fanned``), the row of the fanned canvas
    (from its middle) on which each pixel of a copy of ``shape`` lies, reduced ``across`` times
    along the lines and ``down`` times across them."""
    h, w = shape
    along = (np.arange(w) - (w - 1) / 2) * across
    shrink = 1 / (1 + np.multiply.outer(spreads, along))
    moved = np.multiply.outer(slopes, along) / down * shrink
    lines = (np.arange(h) - (h - 1) / 2).astype(np.float32)
    rows = lines[None, :, None] * shrink[:, None, :].astype(np.float32)
    rows -= moved[:, None, :].astype(np.float32)
    whole: npt.NDArray[np.int64] = np.rint(rows, out=rows).astype(np.int64)
    return whole


def _best_fan(
    copy: npt.NDArray[np.float64],
    across: float,
    down: float,
    slopes: FloatArray,
    spreads: FloatArray,
) -> tuple[float, float]:
    """Of the pairs of ``slopes`` and ``spreads`` (none turned beyond ``RULE_TILT`` at the
    middle, none spreading beyond ``RULE_FAN``), the one at which ``copy`` (reduced
    ``across`` times along its lines and ``down`` times across them) has its lines most along
    the fanned canvas' rows (``_alignment``)."""
    widest = RULE_FAN / (copy.shape[1] * across / 2)
    slopes, spreads = np.clip(slopes, -RULE_TILT, RULE_TILT), np.clip(spreads, -widest, widest)
    rows = _fan_rows(copy.shape, across, down, slopes, spreads)
    low = int(rows.min())
    span = int(rows.max()) - low + 1
    rows += (np.arange(len(rows)) * span - low)[:, None, None]
    best = int(np.argmax(_alignment(copy, rows, span)))
    return float(slopes[best]), float(spreads[best])


def _centred(across: int, copy: FloatArray) -> tuple[int, FloatArray]:
    """``copy`` (reduced ``across`` times) less each of its columns' mean, and ``across``."""
    return across, copy - copy.mean(axis=0)


def _fan(ink: Image.Image, *, columns: bool) -> tuple[float, float]:
    """The slope at the middle of the lines of ink along ``ink``'s rows (its columns, with
    ``columns``) and how much it changes from one line to the next, as a page's rules converge
    in a photo taken at an angle (``_fanned``): up to ``RULE_TILT`` either way at the middle,
    and up to three times that more or less at the picture's edges. Searched on the copies the
    slope alone is (``_rule_slope``): every pair on the one reduced down, by steps drifting a
    line down it at the middle, or three at the edges; on it at full height, every pair within
    two steps of the best so far, by that step and then by halves of it, until a step drifts
    two pixels or less; on the one with ``RULE_FINE_COLUMNS``, the slope and then the spread,
    within two pixels. Each copy is read less its columns' means: the lines the other way add
    the same to every row, and the sum of the squares favours the fan that spreads the rows
    least, whether it lines them up or not."""
    w, h = (ink.height, ink.width) if columns else ink.size
    across, copy = _centred(*_reduced_across(ink, RULE_SEARCH_COLUMNS, columns=columns))
    down, coarse = _reduced_down(copy, w)
    count = round(RULE_TILT * w / down)
    grid = np.arange(-count, count + 1) * (down / w)
    turns = 3 * grid
    slope, spread = _best_fan(
        coarse, across, down, np.repeat(grid, len(turns)), np.tile(turns, len(grid)) / (h / 2)
    )
    step = 2 * down
    while step > 2:
        step //= 2
        moves = np.arange(-2.0, 3.0) * step / w
        slope, spread = _best_fan(
            copy, across, 1, slope + np.repeat(moves, 5), spread + np.tile(moves, 5) / (h / 2)
        )
    across, copy = _centred(*_reduced_across(ink, RULE_FINE_COLUMNS, columns=columns))
    moves = np.arange(-2.0, 3.0) / w
    slope, _ = _best_fan(copy, across, 1, slope + moves, np.full(5, spread))
    _, spread = _best_fan(copy, across, 1, np.full(5, slope), spread + moves / (h / 2))
    return slope, spread


def _without_fanned_rules(
    ink: Image.Image, lines: npt.NDArray[np.uint8], *, columns: bool
) -> npt.NDArray[np.uint8] | None:
    """``lines`` with rules that converge (``_fan``) taken out, read on the fanned canvas
    (``_fanned``): a pixel on a rule's band takes the value the band's line at its place
    takes (``_cleared``), every other pixel keeps its own. None if none are found, or the
    lines do not converge (the slope alone has been tried)."""
    slope, spread = _fan(ink, columns=columns)
    if not spread:
        return None
    canvas, on, lengths = _fanned(lines, slope, spread)
    bands = _bands(canvas, lengths, moved=True)
    if not bands:
        return None
    ruled = np.zeros(len(canvas), dtype=bool)
    for a, b in bands:
        ruled[a:b] = True
    _cleared(canvas, bands)
    picked = canvas[on, np.arange(lines.shape[1])]
    return np.where(ruled[on], picked, lines)


def _without_rules(
    ink: Image.Image, lines: npt.NDArray[np.uint8], *, columns: bool
) -> npt.NDArray[np.uint8] | None:
    """``lines`` (the values of ``ink``, or with ``columns`` their transpose) with the rules
    along its rows taken out; None if it has none. Where lines of ink cross the picture
    (``_crossed``), they are looked for at the slope that lines them up best
    (``_rule_slope``), and square to the picture if none lie along it (the slope may line up
    a digit's long stroke better than square rules); square to it otherwise. If lines of ink
    still cross the picture then, the rules are looked for as lines that converge
    (``_without_fanned_rules``: a page photographed at an angle), and taken out so if that
    leaves none crossing it (of lines drawn in a fan, some may be found and others not: the
    picture is then kept as the one slope left it, not cut into strokes)."""
    h = len(lines)
    crossed = _crossed(ink, columns=columns)
    slope = _rule_slope(ink, columns=columns) if crossed else 0.0
    canvas, runs, bands = _found_rules(lines, slope)
    if not bands and slope:
        canvas, runs, bands = _found_rules(lines, 0.0)
    straight = None
    if bands:
        canvas = canvas.copy() if canvas is lines else canvas
        _cleared(canvas, bands)
        if runs:
            straight = np.empty_like(lines)
            for a, b, top in runs:
                straight[:, a:b] = canvas[top : top + h, a:b]
        else:
            straight = canvas
    left = lines if straight is None else np.ascontiguousarray(straight)
    if crossed and _crossed(Image.fromarray(left), columns=False):
        fanned = _without_fanned_rules(ink, lines, columns=columns)
        if fanned is not None and not _crossed(Image.fromarray(fanned), columns=False):
            return fanned
    return straight


def _unruled(ink: Image.Image) -> Image.Image:
    """``ink`` (light on black) with the lines of ruled or squared paper taken out: they would
    otherwise make the whole picture the ink's box. A rule is a thin band (``RULE_WIDTH``) of
    lines with ink across ``RULE_COVER`` of the picture, at least a quarter of full white in
    one of them at least (the others are its anti-aliased edges); with at least ``RULES`` of
    them one way, each line of a rule becomes, pixel by pixel, the fainter of the lines just
    outside it, so a stroke crossing a rule goes on through it and the rule itself goes.
    Rules square to the picture (a drawing, a scan, a screenshot) or turned by up to
    ``RULE_TILT`` (a photo of a page: its lines are read with the picture sheared to lay them
    along its rows, ``_rule_slope``) are found; the rows' rules are taken out first, then the
    columns' (a column rule crossing a row rule goes on through it)."""
    values = np.asarray(ink)
    rows = _without_rules(ink, values, columns=False)
    if rows is not None:
        values = rows
    cols = _without_rules(ink, values.T, columns=True)
    if cols is not None:
        values = cols.T
    elif rows is None:
        return ink
    return Image.fromarray(np.ascontiguousarray(values))


def _hull(points: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The convex hull of ``points``, counter-clockwise (Andrew's monotone chain)."""
    ordered = sorted(set(points))
    if len(ordered) < 3:
        return ordered

    def turn(o: tuple[int, int], a: tuple[int, int], b: tuple[int, int]) -> int:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[int, int]] = []
    upper: list[tuple[int, int]] = []
    for point in ordered:
        while len(lower) >= 2 and turn(lower[-2], lower[-1], point) <= 0:
            lower.pop()
        lower.append(point)
    for point in reversed(ordered):
        while len(upper) >= 2 and turn(upper[-2], upper[-1], point) <= 0:
            upper.pop()
        upper.append(point)
    return lower[:-1] + upper[:-1]


def _area(polygon: list[tuple[int, int]]) -> float:
    """The area of a polygon (the shoelace formula); 0 for fewer than three corners."""
    if len(polygon) < 3:
        return 0.0
    edges = zip(polygon, polygon[1:] + polygon[:1], strict=True)
    return abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in edges)) / 2


def _rectangle(hull: list[tuple[int, int]]) -> tuple[float, float]:
    """The smallest rectangle, turned any way, round a convex polygon (``hull``, three corners
    or more): its area, and the turn (degrees counter-clockwise, -45 to 45) that would make its
    sides square to the picture. One of its sides lies along one of the polygon's (Freeman and
    Shapira, 1975), so each of those directions is tried."""
    corners = np.asarray(hull, dtype=np.float64)
    sides = np.roll(corners, -1, axis=0) - corners
    along = sides / np.linalg.norm(sides, axis=1, keepdims=True)
    across = np.stack([-along[:, 1], along[:, 0]], axis=1)
    lengths, widths = corners @ along.T, corners @ across.T  # a corner a row, a direction a column
    spans = np.ptp(lengths, axis=0) * np.ptp(widths, axis=0)
    best = int(spans.argmin())
    # Rows run down the picture: a side turned counter-clockwise by t on screen runs along
    # (cos t, -sin t), and turning the picture by -t counter-clockwise sets it square.
    turn = float(np.degrees(np.arctan2(along[best, 1], along[best, 0])))
    return float(spans[best]), (turn + 45) % 90 - 45


def _eroded(
    mask: npt.NDArray[np.bool_], radius: int, *, outside: bool = False
) -> npt.NDArray[np.bool_]:
    """``mask`` eroded ``radius`` times by a 3x3 square, what lies beyond it taken as
    ``outside``."""
    h, w = mask.shape
    for _ in range(radius):
        padded = np.pad(mask, 1, constant_values=outside)
        kept = np.ones_like(mask)
        for dy in range(3):
            for dx in range(3):
                kept &= padded[dy : dy + h, dx : dx + w]
        mask = kept
    return mask


def _sheet(
    grey: Image.Image,
    *,
    dark: bool = False,
    counts: npt.NDArray[np.int64] | None = None,
    split: float | None = None,
) -> Image.Image | None:
    """A sheet photographed on a surface of the other polarity, alone on its own paper: cropped
    to, the surface around it painted the sheet's colour, and turned square to the picture
    (its digit with it, ``SHEET_SQUARE``); None when the picture is not one.
    A light sheet on a darker surface (a note on a desk) is looked for when the edges of the
    picture are dark, and with ``dark`` a dark sheet on a lighter one (a slate or a black note
    on a table) when they are light: either would otherwise make the sheet the ink and its
    digit the paper.

    On a copy reduced to about ``SHEET_SIDE`` pixels (inverted for a dark sheet), split at the
    middle of the 10th and 90th percentiles, a sheet is the light shape, and it is: large
    (``SHEET_SPAN`` of the picture each way); convex (``SHEET_SOLID`` of the convex hull of
    its pixels' corners, of which a square turned 30 to 42 degrees fills 0.96: a digit's
    strokes are not convex, though a bold 0 can be); a rectangle, turned any way
    (``SHEET_RECTANGLE`` of the smallest rectangle round it: sheets turned up to 20 degrees
    fill 0.99 of theirs, the convex bold 0s of the MNIST test set 0.85 at most, an ellipse
    0.79); with ink inside (``SHEET_INK``, a share of the shape) drawn in strokes, which a few
    erosions remove (``SHEET_THIN`` of it may remain after ``SHEET_STROKE`` of the sheet's
    shorter side: strokes up to a sixth of it wide go), where a hole in a rectangular shape
    (a square 0) stays; and its edge a step, where a pool of light round a digit fades into
    the dimmer page round it (``_fading``: cut by the picture's edges, a pool passes the other
    tests). None of the 10,000 MNIST test digits enlarged (to 100, 224, 280 or 500
    px) is taken for a sheet; of test digits filling sheets turned up to 20 degrees
    (``bench/imaging.py``), 99.1 to 99.2% are read right, light sheets and dark.

    A page cut by the picture's edges (``SHEET_CUT``), with what lies beyond it showing at
    others (a desk beside a page that fills most of a photo), is not a rectangle and is not
    turned; it must stand off its surface, which must be a region, and keep its ink off it.
    ``counts``: the grey levels of ``grey``, when known (``_histograms``); ``split``: the level
    between page and surface, when only such a page is looked for (``_cut``)."""
    w, h = grey.size
    if min(w, h) < SHEET_MIN_SIDE:
        return None
    factor = max(1, min(w, h) // SHEET_SIDE)
    reduced = grey.reduce(factor)
    if factor > 1 or counts is None:
        counts = np.asarray(reduced.histogram(), dtype=np.int64)
    if dark:  # the levels of the inverted copy
        counts = counts[::-1]
    low, high = _percentile(counts, 10), _percentile(counts, 90)
    given = split is not None  # by ``_cut``: a page cut by the picture's edges is looked for
    contrasted = given or high - low >= CUT_CONTRAST  # ``_cut`` has found it so
    if split is None:
        if high - low < MIN_CONTRAST * 255:
            return None
        split = (low + high) / 2
    values = np.asarray(reduced)
    light = values < 255 - split if dark else values > split
    present: npt.NDArray[np.bool_] = np.asarray(light.any(axis=1))
    rows, cols = np.flatnonzero(present), np.flatnonzero(light.any(axis=0))
    if rows.size == 0:
        return None
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    if bottom - top < SHEET_SPAN * light.shape[0] or right - left < SHEET_SPAN * light.shape[1]:
        return None
    # The shape with its holes filled: each row from its first light pixel to its last; the
    # ink inside is what of that is not light.
    first = light.argmax(axis=1)
    last = light.shape[1] - 1 - light[:, ::-1].argmax(axis=1)
    area = int(np.where(present, last - first + 1, 0).sum())
    ink = area - int(np.count_nonzero(light))
    # A page cut by the picture's edges (it covers half of one or more) fills most of it, and
    # a small digit on it less than a sheet's least ink.
    cut = max(float(side.mean()) for side in (light[0], light[-1], light[:, 0], light[:, -1]))
    least = 1 if cut >= SHEET_CUT else SHEET_INK[0] * area
    if not least <= ink <= SHEET_INK[1] * area or (given and cut < SHEET_CUT):
        return None

    # Convex: the hull of every row's ends, after the cheap tests and after the hulls of the
    # ends of four rows only (the top and bottom ones, those reaching furthest left and right),
    # then of those and about 16 more, which lie inside it, so a shape short of them is short
    # of the whole hull too: a digit is, and most skip the costly part.
    def hull_of(ys: list[int]) -> list[tuple[int, int]]:
        return _hull(
            [(x, y + dy) for y in ys for x in (int(first[y]), int(last[y]) + 1) for dy in (0, 1)]
        )

    extremes = [top, bottom - 1, int(rows[first[rows].argmin()]), int(rows[last[rows].argmax()])]
    sampled = sorted({*extremes, *rows[:: max(1, rows.size // 16)].tolist()})
    for ys in (extremes, sampled, rows.tolist()):
        hull = hull_of(ys)
        if area < SHEET_SOLID * _area(hull):
            return None
    xs = np.arange(light.shape[1])
    filled: npt.NDArray[np.bool_] = (
        present[:, None] & (xs >= first[:, None]) & (xs <= last[:, None])
    )
    inside = filled & ~light
    lit = 255 - values if dark else values  # the levels of the inverted copy, for a dark sheet
    beyond = _eroded(~filled, SHEET_BEYOND, outside=True)  # the surface, off the sheet's edge
    if cut >= SHEET_CUT:
        # Only part of the page's rectangle shows, and its turn is not known. What lies beyond
        # it must stand as far from it as a desk from paper (``CUT_CONTRAST``), not be the
        # darker side of unevenly lit paper; show as a region (the rules of squared paper leave
        # such a shape too); and the ink on the page must keep SHEET_BEYOND steps off it and
        # off the picture's edges: a digit cropped to its own box touches them, and one of its
        # strokes along an edge, or its ends in the corners, would pass for a desk. (Ink a
        # step wide there is grain along the page's edge.)
        if not contrasted or not beyond.any():
            return None
        # Bare, as a desk is: a shadow over part of the page passes for one, and may hold the
        # digit (on the sheet's scale, something darker on it, if only a thousandth or two).
        bare = np.bincount(lit[beyond], minlength=256)
        if _percentile(bare, 50) - _percentile(bare, 0.2) > VIGNETTE:
            return None
        if (_eroded(inside, 1) & ~_eroded(filled, SHEET_BEYOND)).any():
            return None
        turn = 0.0
    else:
        rectangle, turn = _rectangle(hull)
        if area < SHEET_RECTANGLE * rectangle:
            return None
    radius = max(1, round(SHEET_STROKE * min(bottom - top, right - left)))
    if int(_eroded(inside, radius).sum()) > SHEET_THIN * ink:
        return None
    if _fading(lit, beyond, high):
        return None
    # The sheet alone: two steps inside its edge, the rest painted its paper's colour.
    paper = _eroded(filled, 2)[top:bottom, left:right]
    box = (left * factor, top * factor, min(w, right * factor), min(h, bottom * factor))
    sheet = grey.crop(box)
    mask = Image.fromarray(paper).resize(sheet.size, Image.Resampling.NEAREST)
    colour = round(255 - high if dark else high)
    painted = Image.new("L", sheet.size, colour)
    painted.paste(sheet, (0, 0), mask)
    if abs(turn) < SHEET_SQUARE:
        return painted
    # Turned square to the picture, and its digit with it.
    return painted.rotate(turn, Image.Resampling.BILINEAR, expand=True, fillcolor=colour)


def _fading(levels: npt.NDArray[np.uint8], beyond: npt.NDArray[np.bool_], level: float) -> bool:
    """Whether a light shape (in ``levels``, its own level ``level``) fades into what lies
    round it, as a pool of light does, rather than standing off it as a sheet does: the surface
    ``SHEET_BEYOND`` steps beyond its edge (``beyond``; the picture's edges are not its edge)
    is lit ``SHEET_EDGE`` or more of the way from the rest of the surface to the shape."""
    edge = beyond & ~_eroded(beyond, 1, outside=True)
    if not edge.any():
        return False
    surface = float(np.median(levels[beyond]))
    return float(np.median(levels[edge])) - surface >= SHEET_EDGE * (level - surface)


def _cut(edges: npt.NDArray[np.int64], background: float, *, dark: bool) -> float | None:
    """Whether the edges (``edges``: their grey levels; ``background``: their median) show what
    lies beyond the page: ``CUT_SHARE`` of them or more stand ``CUT_CONTRAST`` or more darker
    than the background (lighter with ``dark``, round a slate). If so, the level between the
    two, on the scale of ``_sheet(dark=not dark)`` (inverted for a slate); None otherwise."""
    if dark:
        beyond = int(edges[: max(0, round(background - CUT_CONTRAST))].sum())
        split = background - CUT_CONTRAST / 2
    else:
        beyond = int(edges[min(256, round(background + CUT_CONTRAST)) + 1 :].sum())
        split = 255 - (background + CUT_CONTRAST / 2)
    return split if beyond >= CUT_SHARE * int(edges.sum()) else None


def _on_a_surface(
    grey: Image.Image, histograms: Histograms, background: float
) -> Image.Image | None:
    """The sheet or page that ``grey`` shows on a surface of the other polarity (``_sheet``),
    or None. Where most of the picture's edges (``background``: their median level) are the
    surface, the sheet is the other polarity; where they are the page, cut by the picture's
    edges, the surface may still show at some (``_cut``)."""
    dark = background > 127.5
    sheet = _sheet(grey, dark=dark, counts=histograms[0])
    if sheet is None:
        split = _cut(histograms[1], background, dark=dark)
        if split is not None:
            sheet = _sheet(grey, dark=not dark, split=split)
    return sheet


def _bolder(box: FloatImage) -> FloatImage:
    """``box`` (the ink fitted to ``BOX``, ``_fit_box``) with its strokes widened a pixel each
    way and their edges softened, fitted to ``BOX`` again, if they are thin (``THIN_CORE``);
    as it is otherwise."""
    lit = box >= 0.5
    core = lit[:-1, :-1] & lit[1:, :-1] & lit[:-1, 1:] & lit[1:, 1:]
    if np.count_nonzero(core) >= THIN_CORE * np.count_nonzero(lit):
        return box
    image = ImageOps.expand(Image.fromarray(np.round(box * 255).astype(np.uint8)), 2)
    wide = image.filter(ImageFilter.MaxFilter(3)).filter(ImageFilter.GaussianBlur(0.5))
    wide = wide.point(FROM_QUARTER)  # the blur's faint tails would set the box
    return np.asarray(_to_box(wide.crop(wide.getbbox()))[0], dtype=np.float32) / 255.0


def _cleaned(
    ink: Image.Image, edges: npt.NDArray[np.int64], remove: Callable[[Image.Image], Image.Image]
) -> tuple[Image.Image, npt.NDArray[np.int64]]:
    """``ink`` with what ``remove`` takes out of it (a frame, rules), and its edges' ink levels
    (``edges`` as they were, or read again if something went)."""
    cleaned = remove(ink)
    return (ink, edges) if cleaned is ink else (cleaned, _histograms(cleaned)[1])


def to_mnist(image: Image.Image) -> MnistImage:
    """The 28x28 uint8 image, white ink on black, that the models take (divided by 255).

    Everything that touches every pixel runs in Pillow's C routines (conversion to grey,
    histograms, the ink table, the bounding box, the resample, which reduces by whole factors
    first); NumPy only sees 256-entry histograms and the 20x20 result."""
    grey = _grey(image)
    histograms = _histograms(grey)
    background = _percentile(histograms[1], 50)
    if max(grey.size) <= SPECKLE_SIDE and _salt_and_pepper(grey, background):
        grey = grey.filter(ImageFilter.MedianFilter(3))
        histograms = _histograms(grey)
        background = _percentile(histograms[1], 50)
    sheet = _on_a_surface(grey, histograms, background)
    if sheet is not None:  # a sheet on a surface of the other polarity: the page is the sheet
        grey = sheet
        histograms = _histograms(grey)
    flat, flattened = _flatten(grey, histograms)
    # A flattened page has new grey levels; an untouched one keeps the histograms just made.
    table = ink_table(flat, None if flattened else histograms)
    ink = flat.point(table)
    speckled = flattened
    if min(ink.size) >= SPECKLE_SIDE:
        if flattened:
            ink = _unruled(_unframed(ink))
        else:
            # The edges' ink levels, from their grey levels through the table. A frame needs
            # ink on 80% of three sides of them, so only then is one looked for; inside one,
            # they are read again.
            edges = np.bincount(table, weights=histograms[1], minlength=256).astype(np.int64)
            if int(edges[1:].sum()) >= 0.8 * FRAME_SIDES * min(ink.size):
                ink, edges = _cleaned(ink, edges, _unframed)
            # Each rule crosses two of the edge strips, a line of ink at least as long as the
            # strips are wide in each.
            if int(edges[1:].sum()) >= 2 * RULES * _edge_width(ink.size):
                ink, edges = _cleaned(ink, edges, _unruled)
            ink, edges = _cleaned(ink, edges, _unboxed)
            speckled = sheet is not None or _grainy(edges)
    field = _centre(_bolder(_fit_box(ink, speckled=speckled)))
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
