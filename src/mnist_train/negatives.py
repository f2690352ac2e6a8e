"""Pictures that are not digits, for training the CNN to say so (outlier exposure).

Hendrycks, Mazeika and Dietterich (2019, "Deep Anomaly Detection with Outlier Exposure") train a
classifier on its own data and, beside it, on pictures of other things with the uniform
distribution as their target: the network learns to spread its probability over the ten digits
when it sees something else, and its top probability becomes a usable "is this a digit" score.

The pictures here are drawn from seeded generators, on a page as an upload would be (dark on
light, sometimes grey paper), and go through ``mnist_core.imaging.to_mnist`` like any upload:
the network sees them as it will see a non-digit upload. Five kinds, in equal shares:

- glyphs: letters and symbols in Pillow's own font (Aileron), at random sizes, weights, slants
  and turns. Glyphs that are digits in many hands (O, I, l, S, Z, ...) are left out;
- strokes: a few straight-segmented pen paths;
- shapes: ellipses, boxes, polygons, outlined or filled, one to three of them;
- textures: noise at random scales, thresholded or not;
- hatching: parallel or crossing lines.

The evaluation set of ``bench/trust.py`` is built apart from these: other fonts, photographs,
curved scribbles, blank pages; training never sees it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from mnist_core.errors import ImageError
from mnist_core.imaging import to_mnist
from mnist_core.verdicts import NOT_A_DIGIT_LABEL

PAGE = 64
# Letters and symbols, less those that many people write as a digit (0 O o D Q, 1 I l i j | [ ],
# 2 Z z, 5 S s, 6 b G, 7 J T, 8 B, 9 g q).
GLYPHS = "ACEFHKLMNPRUVWXYacdefhkmnprtuvwxy#%&*+<=>?@${}"
NEGATIVE = NOT_A_DIGIT_LABEL  # a non-digit's label in training arrays; its target is uniform

Generator = Callable[[np.random.Generator], Image.Image]


def _page(rng: np.random.Generator) -> tuple[Image.Image, ImageDraw.ImageDraw, int]:
    paper = int(rng.integers(200, 256))
    page = Image.new("L", (PAGE, PAGE), paper)
    ink = int(rng.integers(0, max(1, paper - 120)))
    return page, ImageDraw.Draw(page), ink


def _points(rng: np.random.Generator, n: int) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in rng.uniform(6, PAGE - 6, size=(n, 2))]


def glyph(rng: np.random.Generator) -> Image.Image:
    page, draw, ink = _page(rng)
    font = ImageFont.load_default(size=float(rng.integers(30, 52)))
    text = GLYPHS[int(rng.integers(len(GLYPHS)))]
    draw.text(
        (PAGE / 2, PAGE / 2), text, fill=ink, font=font, anchor="mm",
        stroke_width=int(rng.integers(0, 3)), stroke_fill=ink,
    )  # fmt: skip
    shear = float(rng.uniform(-0.3, 0.3))
    page = page.transform(
        page.size, Image.Transform.AFFINE, (1, shear, -shear * PAGE / 2, 0, 1, 0),
        resample=Image.Resampling.BILINEAR, fillcolor=page.getpixel((0, 0)),
    )  # fmt: skip
    return page.rotate(float(rng.uniform(-25, 25)), Image.Resampling.BILINEAR,
                       fillcolor=page.getpixel((0, 0)))  # fmt: skip


def strokes(rng: np.random.Generator) -> Image.Image:
    page, draw, ink = _page(rng)
    # At least three segments, and mostly two paths: one or two segments alone are a 1 or a 7.
    for _ in range(int(rng.integers(1, 4))):
        draw.line(_points(rng, int(rng.integers(4, 9))), fill=ink, width=int(rng.integers(2, 7)))
    return page


def shapes(rng: np.random.Generator) -> Image.Image:
    page, draw, ink = _page(rng)
    for _ in range(int(rng.integers(2, 4))):  # one ellipse alone is a 0
        (x0, y0), (x1, y1) = sorted(_points(rng, 2))
        box = (x0, min(y0, y1), max(x1, x0 + 8), max(y0, y1, min(y0, y1) + 8))
        fill = ink if rng.random() < 0.4 else None
        width = int(rng.integers(2, 6))
        kind = int(rng.integers(3))
        if kind == 0:
            draw.ellipse(box, outline=ink, fill=fill, width=width)
        elif kind == 1:
            draw.rectangle(box, outline=ink, fill=fill, width=width)
        else:
            draw.polygon(_points(rng, int(rng.integers(3, 7))), outline=ink, fill=fill,
                         width=width)  # fmt: skip
    return page


def texture(rng: np.random.Generator) -> Image.Image:
    scale = int(rng.choice([1, 2, 4, 8, 16]))
    side = max(2, PAGE // scale)
    field = rng.random((side, side)).astype(np.float32)
    image = Image.fromarray((field * 255).astype(np.uint8)).resize(
        (PAGE, PAGE), Image.Resampling.BICUBIC
    )
    if rng.random() < 0.5:  # blobs
        cut = int(rng.integers(60, 200))
        image = image.point(lambda v: 0 if v < cut else 255)
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2))))
    return image


def hatching(rng: np.random.Generator) -> Image.Image:
    page, draw, ink = _page(rng)
    gap = int(rng.integers(5, 16))
    width = int(rng.integers(1, 4))
    for angle in rng.uniform(0, math.pi, size=int(rng.integers(1, 3))):
        dx, dy = math.cos(angle), math.sin(angle)
        for offset in range(-PAGE, PAGE, gap):
            cx, cy = PAGE / 2 - dy * offset, PAGE / 2 + dx * offset
            draw.line(
                [(cx - dx * PAGE, cy - dy * PAGE), (cx + dx * PAGE, cy + dy * PAGE)],
                fill=ink, width=width,
            )  # fmt: skip
    return page


GENERATORS: tuple[Generator, ...] = (glyph, strokes, shapes, texture, hatching)


def negatives(count: int, seed: int) -> npt.NDArray[np.uint8]:
    """``count`` non-digits as 28x28 model inputs (MNIST's format), the same for the same seed.
    A page in which preprocessing finds no ink is drawn again."""
    rng = np.random.default_rng([seed, 0x4E4547])
    out = np.empty((count, 28, 28), dtype=np.uint8)
    made = 0
    while made < count:
        page = GENERATORS[made % len(GENERATORS)](rng)
        try:
            out[made] = to_mnist(page)
        except ImageError:
            continue
        made += 1
    return out
