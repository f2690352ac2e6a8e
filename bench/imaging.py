"""What preprocessing costs, by image size, next to what decoding alone costs.

    MNIST_DATA_DIR=../shared/data/mnist .venv/bin/python bench/imaging.py [--model models]

Images made from real MNIST test digits, as people send them:

- ``28x28 PNG``: the MNIST digit itself (white on black);
- ``224x224 PNG``: the digit dark on white paper at 8x, as a drawing app saves it;
- ``1000x1000 JPEG``: a photo-like page: grey paper with uneven light and noise, the digit about
  a third of the height, quality 90;
- ``4000x3000 JPEG``: the same page at a phone camera's size.

For each: ``decode`` (Pillow opening and decoding the bytes, EXIF orientation applied) and
``decode + to_mnist`` (the whole of ``mnist_core.imaging.from_bytes``, what an upload costs),
median and p99 of single calls on one thread. With ``--model``, the accuracy of the model on the
first ``--digits`` MNIST test digits (2,000) uploaded in each of these ways, through the same
preprocessing: the figures that must not drop when preprocessing gets cheaper.

- ``224x224 drawing`` and ``1000x1000 photo``: as above (a seed per digit for the photo);
- ``evenly lit photo``: the digit, 150 to 250 px, dark on evenly lit paper with grain,
  anywhere on an 800x600 JPEG; ``vignetted photo``: that page darkening towards the corners,
  by 15 to 35% there, as through a lens; ``shadowed photo``: that page with a shadow 20 to 40%
  deep beyond a slanted edge, anywhere; ``lamp-lit photo``: that page in a pool of light round
  the digit, the rest of it 30 to 50% darker; ``lamp in a dark room``: the rest 50 to 75%
  darker, so the picture's edges are mostly dark;
- ``dark-mode drawing``: light ink on black, the digit enlarged to 280 px, its strokes 0 to 14 px
  bolder; ``chalk on a blackboard``: a photo cropped to the digit, 220 to 300 px, 0 to 14 px
  bolder, chalk at 190 to 230 on a board at 90 to 140 with grain, a 320x320 JPEG;
- ``3 px pen, drawing``: the digit written again along its middle with a pen 3 px wide, dark
  on white, 280 px;
- ``3 px pen, photo``: the same pen, the digit 330 px on a 1000 px photo-like page;
- ``1 px pen, 28 px``: the digit written again along its middle with a 1 px pen, dark on white,
  on a 28x28 canvas (a pixel editor's pencil); ``1 px pen, 1000 px`` and ``1 px pen, 2400 px``:
  that pen on larger canvases (a paint program's pencil on a screen-sized one);
- ``framed drawing``: the 224x224 drawing on a 300 px page with a 3 px black frame round it;
- ``form's box``: that drawing in a box of 3 px lines 8 to 40 px inside a 340 px page (a form's
  box cropped with a margin);
- ``dim photo``: an underexposed page: the digit 200 px, in ink 50 levels below paper at
  130, with grain, on an 800x600 JPEG;
- ``dim photo, glare``: that page with a light reflection on it (110 levels at its centre,
  a Gaussian of 60 px), anywhere;
- ``light sheet, dark desk`` and ``slate, light table``: the digit filling a 300 px sheet turned
  up to 20 degrees, on an 800x600 surface of the other polarity, with grain, JPEG;
- ``page's edge, desk`` and ``slate's edge, table``: the digit, 150 to 250 px, on a page that
  fills an 800x600 photo but for what lies beyond its edge on one side (or two, at a corner):
  a dark desk beside a light page, a light table beside a slate; grain, JPEG;
- ``ruled paper`` and ``squared paper``: the 224x224 drawing with rules 2 px wide at grey 120
  every 40 px, across (ruled) or across and down (squared);
- ``ruled notebook photo`` and ``squared notebook photo``: a photo of a notebook page turned up
  to 5 degrees, rules 1 to 3 px wide at grey 130 to 180 every 25 to 40 px on paper at 195 to
  225, the digit 1.5 to 4 rules tall over them, anywhere; grain, an 800x600 JPEG;
- ``ruled page at an angle`` and ``squared page at an angle``: that page photographed at an
  angle (a perspective): its far edge, one of the four, 5 to 10% narrower than its near one,
  which the picture's edge crosses; the digit kept clear of the sides the near edge cuts;
  ``ruled page, steeper`` and ``squared page, steeper``: the near edge showing the middle 60 to
  80% of the page, the digit 170 px clear of its edges.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from mnist_core import imaging
from mnist_core.errors import ImageError
from mnist_train.data import load_mnist

if TYPE_CHECKING:
    from mnist_core.classifier import Classifier


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def drawn(digit: np.ndarray, scale: int = 8) -> bytes:
    """Dark ink on white paper, enlarged: what a drawing app saves."""
    image = ImageOps.invert(Image.fromarray(digit)).resize(
        (28 * scale, 28 * scale), Image.Resampling.BICUBIC
    )
    return png(image)


def dark_mode(digit: np.ndarray, seed: int) -> bytes:
    """Light ink on black, as a drawing app in dark mode saves it: the digit enlarged to 280 px,
    its strokes 0 to 14 px bolder (a broad brush), a PNG."""
    bolder = 2 * int(np.random.default_rng(seed).integers(0, 8)) + 1
    image = Image.fromarray(digit).resize((280, 280), Image.Resampling.BICUBIC)
    return png(image.filter(ImageFilter.MaxFilter(bolder)))


def blackboard(digit: np.ndarray, seed: int) -> bytes:
    """A photo of chalk on a blackboard, cropped to the digit: the digit, 220 to 300 px, its
    strokes 0 to 14 px bolder, chalk at 190 to 230 on a board at 90 to 140 with grain (sigma 3
    to 6), anywhere on a 320x320 JPEG."""
    rng = np.random.default_rng(seed)
    side = int(rng.integers(220, 301))
    board, chalk = float(rng.uniform(90, 140)), float(rng.uniform(190, 230))
    bolder = 2 * int(rng.integers(0, 8)) + 1
    ink = Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC)
    strokes = np.asarray(ink.filter(ImageFilter.MaxFilter(bolder)), dtype=np.float32) / 255
    page = np.full((320, 320), board, dtype=np.float32)
    top, left = (int(v) for v in rng.integers(0, 321 - side, 2))
    page[top : top + side, left : left + side] += (chalk - board) * strokes
    return jpeg(page + rng.normal(0, rng.uniform(3, 6), page.shape))


def photo(digit: np.ndarray, width: int, height: int, seed: int) -> bytes:
    """A photo-like page: the digit in dark ink on grey paper, lit unevenly, with sensor noise."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    light = 200 + 40 * (xs / width) - 25 * (ys / height)  # brighter to the right, darker below
    paper = light + rng.normal(0, 6, size=(height, width))
    side = height // 3
    ink = np.asarray(
        Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32
    )
    top, left = height // 3, width // 2 - side // 2
    region = paper[top : top + side, left : left + side]
    paper[top : top + side, left : left + side] = region * (1 - 0.8 * ink / 255)
    rgb = np.repeat(np.clip(paper, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    rgb[..., 2] = np.clip(rgb[..., 2].astype(np.int16) - 12, 0, 255)  # a warm cast
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def even_photo(
    digit: np.ndarray,
    seed: int,
    *,
    vignette: bool = False,
    shadow: bool = False,
    lamp: tuple[float, float] | None = None,
) -> bytes:
    """The digit, 150 to 250 px, in dark ink (40 to 70) on evenly lit paper (195 to 225) with
    grain (sigma 3 to 5), anywhere on an 800x600 JPEG: a plain photo of a page. With
    ``vignette``, the light falls off towards the corners as through a lens, by 15 to 35% there
    (by the square of the distance from the centre); with ``shadow``, a shadow 20 to 40% deep
    covers the page beyond a slanted edge, anywhere, softened over 5 to 40 px; with ``lamp``,
    a lamp close over the page lights a pool round the digit, its radius 0.8 to 1.2 times the
    digit's size, softened over 10 to 40 px, the page beyond it darker by a share in that range
    (0.3 to 0.5: 30 to 50% darker)."""
    rng = np.random.default_rng(seed)
    side = int(rng.integers(150, 251))
    paper, pen = float(rng.uniform(195, 225)), float(rng.uniform(40, 70))
    page = np.full((600, 800), paper, dtype=np.float32)
    ink = np.asarray(
        Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32
    )
    top, left = int(rng.integers(0, 600 - side)), int(rng.integers(0, 800 - side))
    page[top : top + side, left : left + side] += (pen - paper) * ink / 255
    ys, xs = np.mgrid[0:600, 0:800].astype(np.float32)
    if shadow:
        edge = xs - rng.uniform(160, 640) - rng.uniform(-0.4, 0.4) * (ys - 300)
        soft = np.clip(edge / rng.uniform(5, 40), -50, 50)
        page *= 1 - rng.uniform(0.2, 0.4) / (1 + np.exp(-soft))
    if lamp is not None:
        out = np.hypot(xs - left - side / 2, ys - top - side / 2) - rng.uniform(0.8, 1.2) * side
        page *= 1 - rng.uniform(*lamp) / (1 + np.exp(-np.clip(out / rng.uniform(10, 40), -50, 50)))
    if vignette:
        page *= (
            1 - rng.uniform(0.15, 0.35) * (((xs - 400) / 400) ** 2 + ((ys - 300) / 300) ** 2) / 2
        )
    return jpeg(page + rng.normal(0, rng.uniform(3, 5), page.shape))


def jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
        buffer, format="JPEG", quality=90
    )
    return buffer.getvalue()


def thin_pen(digit: np.ndarray, side: int, pen: int = 3) -> np.ndarray:
    """The digit at ``side`` px written again along its middle with a pen ``pen`` px wide (odd):
    1 where the pen went, 0 elsewhere."""
    from skimage.morphology import skeletonize

    enlarged = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BILINEAR))
    middle = Image.fromarray(skeletonize(enlarged > 100).astype(np.uint8) * 255)
    return np.asarray(middle.filter(ImageFilter.MaxFilter(pen)), dtype=np.float32) / 255


def pen_drawing(digit: np.ndarray, side: int, pen: int) -> bytes:
    """The digit written again along its middle with a ``pen`` px pen on a ``side`` px canvas,
    dark on white, a PNG."""
    return png(Image.fromarray(np.round(255 * (1 - thin_pen(digit, side, pen))).astype(np.uint8)))


def thin_photo(digit: np.ndarray, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:1000, 0:1000].astype(np.float32)
    paper = 200 + 40 * xs / 1000 - 25 * ys / 1000 + rng.normal(0, 6, ys.shape)
    paper[335:665, 335:665] *= 1 - 0.8 * thin_pen(digit, 330)
    return jpeg(paper)


def framed(digit: np.ndarray, seed: int) -> bytes:
    page = Image.new("L", (300, 300), 255)
    page.paste(Image.open(io.BytesIO(drawn(digit))), (38, 38))
    ImageDraw.Draw(page).rectangle((0, 0, 299, 299), outline=0, width=3)
    return png(page)


def boxed(digit: np.ndarray, seed: int) -> bytes:
    """The 224x224 drawing in a form's box (3 px lines) cropped with a margin of 8 to 40 px:
    a 340 px page."""
    rng = np.random.default_rng(seed)
    page = Image.new("L", (340, 340), 255)
    page.paste(Image.open(io.BytesIO(drawn(digit))), (58, 58))
    margin = int(rng.integers(8, 41))
    box = (margin, margin, 339 - margin, 339 - margin)
    ImageDraw.Draw(page).rectangle(box, outline=0, width=3)
    return png(page)


def dim_page(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An underexposed page: the digit 200 px, in ink 50 levels below paper at 130, grain."""
    paper = 130 + rng.normal(0, 4, (600, 800))
    ink = np.asarray(
        Image.fromarray(digit).resize((200, 200), Image.Resampling.BICUBIC), dtype=np.float32
    )
    paper[200:400, 300:500] -= 50 * ink / 255
    return paper


def dim_photo(digit: np.ndarray, seed: int) -> bytes:
    return jpeg(dim_page(digit, np.random.default_rng(seed)))


def glare(digit: np.ndarray, seed: int) -> bytes:
    """The dim photo with a glare: a light reflection 110 levels bright at its centre, falling
    off as a Gaussian of 60 px, anywhere on the page."""
    rng = np.random.default_rng(seed)
    paper = dim_page(digit, rng)
    ys, xs = np.mgrid[0:600, 0:800]
    cy, cx = rng.uniform(0, 600), rng.uniform(0, 800)
    paper += 110 * np.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * 60**2))
    return jpeg(paper)


def on_sheet(digit: np.ndarray, seed: int, *, dark: bool) -> bytes:
    """The digit filling a 300 px sheet (dark ink on a light one; chalk on a dark one), turned
    and placed at random on a surface of the other polarity, with grain."""
    rng = np.random.default_rng(seed)
    ink = np.asarray(
        Image.fromarray(digit).resize((300, 300), Image.Resampling.BICUBIC), dtype=np.float32
    )
    levels = 45 + 170 * ink / 255 if dark else 225 - 190 * ink / 255
    sheet = Image.fromarray(np.clip(levels, 0, 255).astype(np.uint8))
    turned = float(rng.uniform(-20, 20))
    mask = Image.new("L", sheet.size, 255).rotate(turned, expand=True)
    sheet = sheet.rotate(turned, expand=True)
    page = Image.new("L", (800, 600), 205 if dark else 50)
    left = 400 - sheet.width // 2 + int(rng.integers(-60, 60))
    top = 300 - sheet.height // 2 + int(rng.integers(-40, 40))
    page.paste(sheet, (left, top), mask)
    return jpeg(np.asarray(page, dtype=np.float32) + rng.normal(0, 5, (600, 800)))


def page_edge(digit: np.ndarray, seed: int, *, dark: bool) -> bytes:
    """The digit, 150 to 250 px, on a page filling an 800x600 photo but for what lies beyond
    its edge on one side, or on two at a corner: a band 10 to 40% of the way to the digit from
    the picture's edge, its edge slanted up to 10 degrees (up to 60% of the way); dark ink on
    a light page over a dark desk, or chalk on a slate over a light table; lightly blurred,
    with grain."""
    rng = np.random.default_rng(seed)
    w, h = 800, 600
    side = int(rng.integers(150, 251))
    ink = np.asarray(
        Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32
    )
    paper, pen, beyond = (45, 215, 205) if dark else (215, 35, 50)
    page = np.full((h, w), paper, dtype=np.float32)
    left = (w - side) // 2 + int(rng.integers(-60, 61))
    top = (h - side) // 2 + int(rng.integers(-40, 41))
    page[top : top + side, left : left + side] += (pen - paper) * ink / 255
    image = Image.fromarray(page.astype(np.uint8))
    # How far the digit's box is from each edge: left, top, right, bottom.
    room = [left, top, w - left - side, h - top - side]
    first = int(rng.integers(4))
    for edge in [first, (first + 1) % 4] if rng.random() < 0.3 else [first]:
        length = h if edge % 2 == 0 else w
        slant = float(np.tan(np.radians(rng.uniform(-10, 10)))) * length
        # The band's depth at the two ends of its edge, never more than 60% of the way.
        near = rng.uniform(0.1, 0.4) * room[edge]
        far = float(np.clip(near + slant, 8, 0.6 * room[edge]))
        corners = {  # the band: along the edge, then back along its slanted inner side
            0: [(0, 0), (near, 0), (far, h), (0, h)],
            1: [(0, 0), (w, 0), (w, far), (0, near)],
            2: [(w, 0), (w - near, 0), (w - far, h), (w, h)],
            3: [(0, h), (w, h), (w, h - far), (0, h - near)],
        }[edge]
        ImageDraw.Draw(image).polygon(corners, fill=beyond)
    pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(1)), dtype=np.float32)
    return jpeg(pixels + rng.normal(0, 5, (h, w)))


def ruled(digit: np.ndarray, seed: int, *, squared: bool = False) -> bytes:
    """The 224 px drawing on ruled paper: rules 2 px wide at grey 120, every 40 px from a random
    start; on squared paper, columns too."""
    rng = np.random.default_rng(seed)
    page = np.array(Image.open(io.BytesIO(drawn(digit))))
    for lines in (page, page.T) if squared else (page,):
        for start in range(int(rng.integers(0, 40)), 224, 40):
            lines[start : start + 2] = np.minimum(lines[start : start + 2], 120)
    return png(Image.fromarray(page))


def notebook_page(
    digit: np.ndarray, rng: np.random.Generator, *, squared: bool, margin: int = 0
) -> np.ndarray:
    """The notebook page of ``notebook``, before its grain, the digit at least ``margin`` px
    from its edges."""
    paper, pen = float(rng.uniform(195, 225)), float(rng.uniform(40, 70))
    rule, gap, width = float(rng.uniform(130, 180)), float(rng.uniform(25, 40)), rng.uniform(1, 3)
    turn = np.deg2rad(rng.uniform(-5, 5))
    ys, xs = np.mgrid[0:600, 0:800].astype(np.float32)
    page = np.full((600, 800), paper, dtype=np.float32)
    across = ys * np.cos(turn) - xs * np.sin(turn)
    for along in (across, xs * np.cos(turn) + ys * np.sin(turn)) if squared else (across,):
        beyond = np.abs((along - rng.uniform(0, gap)) % gap - gap / 2) - width / 2
        page += (rule - paper) * np.clip(0.5 - beyond, 0, 1)  # the rule's share of each pixel
    side = int(gap * rng.uniform(1.5, 4))
    ink = np.asarray(
        Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32
    )
    top = int(rng.integers(margin, 600 - side - margin))
    left = int(rng.integers(margin, 800 - side - margin))
    region = page[top : top + side, left : left + side]
    page[top : top + side, left : left + side] = region + (pen - region) * ink / 255
    return page


def notebook(digit: np.ndarray, seed: int, *, squared: bool = False) -> bytes:
    """A photo of a notebook page held by hand, turned up to 5 degrees either way: rules 1 to 3
    px wide at grey 130 to 180, anti-aliased, every 25 to 40 px, across (ruled) or across and
    down (squared), on paper at 195 to 225; the digit in dark ink (40 to 70) over them, 1.5 to 4
    rules tall, anywhere; grain (sigma 3 to 5), an 800x600 JPEG."""
    rng = np.random.default_rng(seed)
    page = notebook_page(digit, rng, squared=squared)
    return jpeg(page + rng.normal(0, rng.uniform(3, 5), page.shape))


def perspective(quad: list[tuple[float, float]], size: tuple[int, int]) -> list[float]:
    """Pillow's coefficients for a perspective transform that shows the quadrilateral ``quad``
    (corners clockwise from the top left) of a picture as a whole one of ``size``."""
    w, h = size
    rows, values = [], []
    for (x, y), (u, v) in zip([(0, 0), (w, 0), (w, h), (0, h)], quad, strict=True):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        values += [u, v]
    return [float(c) for c in np.linalg.solve(np.array(rows), np.array(values))]


def angled(digit: np.ndarray, seed: int, *, squared: bool = False, steep: bool = False) -> bytes:
    """The notebook page photographed at an angle: the whole page at its far edge (one of the
    four, at random), the middle 90 to 95% of it at its near one (``steep``: 60 to 80%), the
    digit clear of the sides that cuts (at least 5% of the picture; ``steep``, 170 px); grain,
    an 800x600 JPEG."""
    rng = np.random.default_rng(seed)
    page = notebook_page(digit, rng, squared=squared, margin=170 if steep else 40)
    far = int(rng.integers(0, 4))
    inset = float(rng.uniform(0.1, 0.2) if steep else rng.uniform(0.025, 0.05))
    dx, dy = inset * 800, inset * 600
    quad = [  # the page's points seen at the picture's corners: the near edge shows less
        [(0, 0), (800, 0), (800 - dx, 600), (dx, 600)],  # far edge at the top
        [(0, dy), (800, 0), (800, 600), (0, 600 - dy)],  # at the right
        [(dx, 0), (800 - dx, 0), (800, 600), (0, 600)],  # at the bottom
        [(0, 0), (800, dy), (800, 600 - dy), (0, 600)],  # at the left
    ][far]
    seen = Image.fromarray(page).transform(
        (800, 600),
        Image.Transform.PERSPECTIVE,
        perspective(quad, (800, 600)),
        Image.Resampling.BILINEAR,
    )
    pixels = np.asarray(seen, dtype=np.float32)
    return jpeg(pixels + rng.normal(0, rng.uniform(3, 5), pixels.shape))


UPLOADS: dict[str, Callable[[np.ndarray, int], bytes]] = {
    "224x224 drawing": lambda digit, seed: drawn(digit),
    "1000x1000 photo": lambda digit, seed: photo(digit, 1000, 1000, seed),
    "evenly lit photo": even_photo,
    "vignetted photo": lambda digit, seed: even_photo(digit, seed, vignette=True),
    "shadowed photo": lambda digit, seed: even_photo(digit, seed, shadow=True),
    "lamp-lit photo": lambda digit, seed: even_photo(digit, seed, lamp=(0.3, 0.5)),
    "lamp in a dark room": lambda digit, seed: even_photo(digit, seed, lamp=(0.5, 0.75)),
    "dark-mode drawing": dark_mode,
    "chalk on a blackboard": blackboard,
    "3 px pen, drawing": lambda digit, seed: pen_drawing(digit, 280, 3),
    "3 px pen, photo": thin_photo,
    "1 px pen, 28 px": lambda digit, seed: pen_drawing(digit, 28, 1),
    "1 px pen, 1000 px": lambda digit, seed: pen_drawing(digit, 1000, 1),
    "1 px pen, 2400 px": lambda digit, seed: pen_drawing(digit, 2400, 1),
    "framed drawing": framed,
    "form's box": boxed,
    "dim photo": dim_photo,
    "dim photo, glare": glare,
    "light sheet, dark desk": lambda digit, seed: on_sheet(digit, seed, dark=False),
    "slate, light table": lambda digit, seed: on_sheet(digit, seed, dark=True),
    "page's edge, desk": lambda digit, seed: page_edge(digit, seed, dark=False),
    "slate's edge, table": lambda digit, seed: page_edge(digit, seed, dark=True),
    "ruled paper": ruled,
    "squared paper": lambda digit, seed: ruled(digit, seed, squared=True),
    "ruled notebook photo": notebook,
    "squared notebook photo": lambda digit, seed: notebook(digit, seed, squared=True),
    "ruled page at an angle": angled,
    "squared page at an angle": lambda digit, seed: angled(digit, seed, squared=True),
    "ruled page, steeper": lambda digit, seed: angled(digit, seed, steep=True),
    "squared page, steeper": lambda digit, seed: angled(digit, seed, squared=True, steep=True),
}


def decode_only(data: bytes) -> None:
    imaging.decode(data)


def timed(call: Callable[[bytes], object], data: bytes, seconds: float) -> tuple[float, float]:
    """Median and p99 of single calls, in microseconds, over about ``seconds``."""
    call(data)  # warm
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 5:
        started = time.perf_counter()
        call(data)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1e6), float(np.percentile(times, 99) * 1e6)


def accuracy(model: Classifier, uploads: list[bytes], labels: np.ndarray) -> float:
    """The share read right; a refused upload (no ink found) is wrong, whatever the model would
    make of the blank field put in its place (a 1, often)."""
    pixels, refused = [], np.zeros(len(uploads), dtype=np.bool_)
    for i, upload in enumerate(uploads):
        try:
            pixels.append(imaging.from_bytes(upload))
        except ImageError:
            pixels.append(np.zeros((imaging.SIDE, imaging.SIDE), dtype=np.uint8))
            refused[i] = True
    predicted = model.predict_batch(np.stack(pixels)).argmax(axis=1)
    return float(((predicted == labels) & ~refused).mean())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="also measure accuracy through preprocessing")
    parser.add_argument("--seconds", type=float, default=3.0, help="per image and measure")
    parser.add_argument("--digits", type=int, default=2000, help="for the accuracy")
    args = parser.parse_args()
    data = load_mnist()
    digit = data.test_images[0]  # a 7
    images = {
        "28x28 PNG": png(Image.fromarray(digit)),
        "224x224 PNG": drawn(digit),
        "1000x1000 JPEG": photo(digit, 1000, 1000, seed=1),
        "4000x3000 JPEG": photo(digit, 4000, 3000, seed=2),
    }
    header = ("image", "bytes", "decode µs p50/p99", "decode+to_mnist µs p50/p99")
    print(f"{header[0]:<16} {header[1]:>10} {header[2]:>20} {header[3]:>28}")
    for name, content in images.items():
        assert imaging.from_bytes(content).shape == (28, 28), name
        d50, d99 = timed(decode_only, content, args.seconds)
        t50, t99 = timed(imaging.from_bytes, content, args.seconds)
        print(
            f"{name:<16} {len(content):>10,} {d50:>10,.0f} /{d99:>8,.0f} {t50:>16,.0f} "
            f"/{t99:>9,.0f}   (preprocessing {t50 - d50:,.0f} µs)",
            flush=True,
        )
    if args.model:
        n = args.digits
        digits, labels = data.test_images[:n], data.test_labels[:n]
        from mnist_core.classifier import Classifier  # the same reader before and after a change

        model = Classifier.load(args.model)
        print(f"\naccuracy on {n:,} MNIST test digits, uploaded as")
        for name, upload in UPLOADS.items():
            uploads = [upload(digit, seed) for seed, digit in enumerate(digits)]
            print(f"  {name:<24} {accuracy(model, uploads, labels):7.2%}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
