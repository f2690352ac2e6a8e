"""MNIST-C corruptions of 28x28 digits (Mu & Gilmer 2019, "MNIST-C: A Robustness Benchmark for
Computer Vision"), seeded, written here to do what the authors' published generators do
(github.com/google-research/mnist-c, ``corruptions.py``) at the severities their functions take
by default, which their own notebook uses:

- shot noise: Poisson, 3 photons at full white;  impulse noise: 17% of pixels salt or pepper;
- glass blur: Gaussian (sigma 0.7, down the columns only, as theirs does on a grey image), twice
  over each pixel swapped one time in two with one 0-1 px up and left, blurred again;
- motion blur: ImageMagick's (radius 10, sigma 3), one-sided, at a random angle within 45
  degrees of horizontal;
- shear: 0.4 rad (either way);  scale: shrunk to 0.7 about the centre;  rotate: 0.4 rad (23
  degrees), either way;  translate: 3 px on each axis, either way;
- brightness: +0.5 on every pixel;  stripe: the 7 outer columns on each side inverted;
- fog: a plasma fractal (diamond-square, 256 px, decay 1.4) at 3 times full white, the whole
  renormalised (the digit keeps a quarter of its contrast);
- spatter: blotches of dark grey mud (63 of 255) over the digit where smooth noise is high;
- dotted line: a straight line across, every other 2-px run left out;  zigzag: a zigzag line
  (teeth 2 px long, 2 px high) from column 2 to 25; lines 3 px thick, fading from their middle;
- canny edges: the digit replaced by its Canny edges (sigma 1).

None of these generators is used in training: the CNN's augmentation is generic (small
rotations, scaling, shifts and stroke widths, a Gaussian blur and Gaussian noise of random
strengths, ``mnist_train.augment``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

Batch = npt.NDArray[np.uint8]
Rng = np.random.Generator
SIDE = 28
CENTRE = 13.5


def _unit(x: Batch) -> npt.NDArray[np.float64]:
    return x.astype(np.float64) / 255.0


def _bytes(x: npt.NDArray[np.float64]) -> Batch:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def _sign(rng: Rng, n: int) -> npt.NDArray[np.float64]:
    return rng.choice([-1.0, 1.0], size=n)


def _affine(x: Batch, matrices: list[npt.NDArray[np.float64]]) -> Batch:
    """Each image warped by its 3x3 matrix (output -> input coordinates) about the centre."""
    from scipy.ndimage import affine_transform

    out = np.empty_like(x)
    for i, m in enumerate(matrices):
        shift = np.array([CENTRE, CENTRE]) - m[:2, :2] @ np.array([CENTRE, CENTRE]) + m[:2, 2]
        out[i] = _bytes(affine_transform(_unit(x[i]), m[:2, :2], offset=shift, order=1))
    return out


def shot_noise(x: Batch, rng: Rng) -> Batch:
    return _bytes(rng.poisson(_unit(x) * 3) / 3)


def impulse_noise(x: Batch, rng: Rng) -> Batch:
    out = x.copy()
    hit = rng.random(x.shape) < 0.17
    out[hit] = np.where(rng.random(int(hit.sum())) < 0.5, 0, 255)
    return out


def glass_blur(x: Batch, rng: Rng) -> Batch:
    from scipy.ndimage import gaussian_filter

    def blur(images: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        # Down the columns only: the published generator's 2-D Gaussian, called with
        # multichannel=True on a grey image, takes the columns for colour channels.
        return gaussian_filter(images, sigma=(0, 0.7, 0), mode="nearest")

    # Blurred, cut to whole grey levels, then twice over the image (bottom right to top left)
    # each pixel swapped, one time in two, with the one 0 or 1 px above and to its left.
    shuffled = np.floor(blur(_unit(x)) * 255)
    n = len(x)
    idx = np.arange(n)
    for _ in range(2):
        for r in range(SIDE - 1, 1, -1):
            for c in range(SIDE - 1, 1, -1):
                swap = rng.random(n) < 0.5
                dr, dc = rng.integers(-1, 1, size=(2, n))
                rows, cols = np.where(swap, r + dr, r), np.where(swap, c + dc, c)
                here = shuffled[idx, r, c].copy()
                shuffled[idx, r, c] = shuffled[idx, rows, cols]
                shuffled[idx, rows, cols] = here
    return _bytes(blur(shuffled / 255))


def motion_blur(x: Batch, rng: Rng) -> Batch:
    from scipy.ndimage import correlate

    # ImageMagick's motion blur (radius 10, sigma 3), one-sided as a moving camera smears:
    # each pixel the weighted sum of the 21 pixels from it along the direction of motion,
    # Gaussian weights (sigma 3) falling away from it; edge pixels extended outwards.
    out = np.empty_like(x)
    taps = np.arange(21)
    weights = np.exp(-(taps**2) / (2 * 3.0**2))
    for i, angle in enumerate(rng.uniform(-math.pi / 4, math.pi / 4, len(x))):
        kernel = np.zeros((41, 41))
        for t, w in zip(taps, weights, strict=True):
            kernel[round(20 + t * math.sin(angle)), round(20 + t * math.cos(angle))] += w
        out[i] = _bytes(correlate(_unit(x[i]), kernel / kernel.sum(), mode="nearest"))
    return out


def shear(x: Batch, rng: Rng) -> Batch:
    # A shear angle of 0.4 rad either way (each row moved sideways by sin 0.4 = 0.39 px a row,
    # the rows drawn together to cos 0.4), as scikit-image's AffineTransform(shear=0.4) makes.
    def matrix(angle: float) -> npt.NDArray[np.float64]:
        return np.array([[math.cos(angle), 0, 0], [-math.sin(angle), 1, 0], [0, 0, 1]])

    return _affine(x, [matrix(s * 0.4) for s in _sign(rng, len(x))])


def scale(x: Batch, rng: Rng) -> Batch:
    m = np.diag([1 / 0.7, 1 / 0.7, 1.0])
    return _affine(x, [m] * len(x))


def rotate(x: Batch, rng: Rng) -> Batch:
    out = []
    for s in _sign(rng, len(x)):
        a = 0.4 * s
        out.append(
            np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
        )
    return _affine(x, out)


def translate(x: Batch, rng: Rng) -> Batch:
    out = np.zeros_like(x)
    for i, (dr, dc) in enumerate(rng.choice([-3, 3], size=(len(x), 2))):
        shifted = np.roll(x[i], (dr, dc), axis=(0, 1))
        # What rolled over an edge is cut off, not wrapped round.
        if dr > 0:
            shifted[:dr] = 0
        else:
            shifted[dr:] = 0
        if dc > 0:
            shifted[:, :dc] = 0
        else:
            shifted[:, dc:] = 0
        out[i] = shifted
    return out


def brightness(x: Batch, rng: Rng) -> Batch:
    return _bytes(_unit(x) + 0.5)


def stripe(x: Batch, rng: Rng) -> Batch:
    out = x.copy()
    out[:, :, :7] = 255 - out[:, :, :7]
    out[:, :, 21:] = 255 - out[:, :, 21:]
    return out


def _plasma(rng: Rng, size: int = 256, decay: float = 1.4) -> npt.NDArray[np.float64]:
    """A diamond-square fractal in [0, 1] on a ``size`` x ``size`` torus (a power of two). The
    random part starts at 100 x U(-100, 100) and its scale is divided by ``decay`` at every
    halving, which divides its amplitude by ``decay`` squared."""
    grid = np.zeros((size, size))
    step, scale = size, 100.0
    while step >= 2:
        half = step // 2
        # Squares: each centre, the mean of its four corners plus noise.
        corners = grid[0:size:step, 0:size:step]
        total = corners + np.roll(corners, -1, axis=0)
        total = total + np.roll(total, -1, axis=1)
        grid[half:size:step, half:size:step] = total / 4 + scale * rng.uniform(
            -scale, scale, total.shape
        )
        # Diamonds: each edge midpoint, the mean of its four neighbours plus noise.
        centres = grid[half:size:step, half:size:step]
        corners = grid[0:size:step, 0:size:step]
        across = centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        grid[0:size:step, half:size:step] = across / 4 + scale * rng.uniform(
            -scale, scale, across.shape
        )
        down = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        grid[half:size:step, 0:size:step] = down / 4 + scale * rng.uniform(
            -scale, scale, down.shape
        )
        step, scale = half, scale / decay
    grid -= grid.min()
    return grid / max(grid.max(), 1e-9)


def fog(x: Batch, rng: Rng) -> Batch:
    # The fractal's top left corner at 3 times full white, then scaled back so that the
    # digit's brightest pixel keeps its share: the digit at a quarter of its contrast.
    strength = 3.0
    out = np.empty_like(x)
    for i in range(len(x)):
        image = _unit(x[i])
        top = image.max()
        fogged = image + strength * _plasma(rng)[:SIDE, :SIDE]
        out[i] = _bytes(fogged * top / (top + strength))
    return out


def spatter(x: Batch, rng: Rng) -> Batch:
    from scipy.ndimage import gaussian_filter

    # Mud: smooth noise (N(0.65, 0.3) blurred, sigma 1) above its mean marks the wet places;
    # blurred again (sigma 1.5), where that stays >= 0.8 the mud covers the digit in dark grey
    # (63 of 255).
    liquid = gaussian_filter(rng.normal(0.65, 0.3, x.shape), sigma=(0, 1, 1), mode="nearest")
    wet = gaussian_filter((liquid > 0.65).astype(float), sigma=(0, 1.5, 1.5), mode="nearest")
    mud = np.where(wet >= 0.8, wet, 0.0)
    return _bytes(_unit(x) * (1 - mud) + 63 / 255 * mud)


def _line(c0: float, r0: float, c1: float, r1: float) -> npt.NDArray[np.float64]:
    """A line from column ``c0`` to ``c1`` (c0 < c1) through rows ``r0`` and ``r1``: 1 on it,
    falling as log(1 - d / 2.3) + 1 with the vertical distance d (to 0 at 1.45 px); nothing
    outside its columns."""
    if c1 == c0:
        return np.zeros((SIDE, SIDE))
    cols = np.arange(SIDE, dtype=float)[np.newaxis, :]
    rows = np.arange(SIDE, dtype=float)[:, np.newaxis]
    slope = (r1 - r0) / (c1 - c0)
    dist = np.clip(np.abs(rows - (slope * (cols - c0) + r0)), 0, 2.3 - 1e-10)
    line = np.clip(np.log(1 - dist / 2.3) + 1, 0, 1)
    line[:, : math.floor(c0)] = 0
    line[:, math.ceil(c1) :] = 0
    return line


def dotted_line(x: Batch, rng: Rng) -> Batch:
    out = np.empty_like(x)
    for i in range(len(x)):
        r0, r1 = rng.integers(0, SIDE - 1, 2)
        line = _line(0, float(r0), SIDE - 1, float(r1))
        line[:, (np.arange(SIDE) // 2) % 2 == 0] = 0  # columns 0-1 off, 2-3 on, ...
        out[i] = _bytes(_unit(x[i]) + line)
    return out


def zigzag(x: Batch, rng: Rng) -> Batch:
    out = np.empty_like(x)
    c0, c1, tooth = 2.0, 25.0, 2.0  # from column 2 to 25; teeth 2 px long and 2 px high
    for i in range(len(x)):
        r0 = float(rng.integers(0, SIDE - 1))
        r1 = r0 + float(rng.integers(-5, 5))
        angle = math.atan((r1 - r0) / (c1 - c0))
        length = (c1 - c0) / math.cos(angle)
        # Along the line: peaks and troughs at odd multiples of the tooth, then the end.
        points = [(0.0, 0.0)]
        r = 0.0
        for k in range(int((length - tooth) // (2 * tooth)) + 1):
            r = (-1) ** k * tooth
            points.append(((2 * k + 1) * tooth, r))
        whole = 2 * tooth * (length // (2 * tooth))
        if length != whole:
            points.append((length, r / (2 * (length - whole))))
        turned = [(c0 + c * math.cos(angle) - q * math.sin(angle),
                   r0 + c * math.sin(angle) + q * math.cos(angle)) for c, q in points]  # fmt: skip
        image = _unit(x[i])
        for (ca, ra), (cb, rb) in itertools.pairwise(turned):
            image = np.clip(image + _line(ca, ra, cb, rb), 0, 1)
        out[i] = _bytes(image)
    return out


def canny_edges(x: Batch, rng: Rng) -> Batch:
    from skimage.feature import canny

    return np.stack([(canny(_unit(image), sigma=1.0) * 255).astype(np.uint8) for image in x])


CORRUPTIONS: dict[str, Callable[[Batch, Rng], Batch]] = {
    "shot noise": shot_noise,
    "impulse noise": impulse_noise,
    "glass blur": glass_blur,
    "motion blur": motion_blur,
    "shear": shear,
    "scale": scale,
    "rotate": rotate,
    "brightness": brightness,
    "translate": translate,
    "stripe": stripe,
    "fog": fog,
    "spatter": spatter,
    "dotted line": dotted_line,
    "zigzag": zigzag,
    "canny edges": canny_edges,
}
