"""MNIST-C-style corruptions of 28x28 digits (Mu & Gilmer 2019, "MNIST-C: A Robustness Benchmark
for Computer Vision"), written here from the paper's descriptions, seeded.

Each takes an N x 28 x 28 uint8 batch in MNIST's polarity (white ink on black) and a NumPy
generator and returns the corrupted batch. Strengths, where the paper leaves a choice:

- shot noise: Poisson, 60 photons at full white;  impulse noise: 7% of pixels salt or pepper;
- glass blur: Gaussian (sigma 0.7), each pixel swapped with a neighbour up to 1 px away, blurred
  again;  motion blur: a 9-px line kernel (Gaussian weights, sigma 3) at a random angle
  within 45 degrees of horizontal;
- shear: 0.4 (either way);  scale: shrunk to 0.7 about the centre;  rotate: 0.4 rad (23
  degrees), either way;  translate: 3 px on each axis, either way;
- brightness: +0.3 on every pixel;  stripe: the 7 outer columns on each side inverted;
- fog: a plasma fractal (diamond-square) at 0.75 of full white, renormalised;
- spatter: drops where smooth noise rises 2 deviations above its mean (about 2% of pixels);
- dotted line: a straight line across, every other 2-px run left out;  zigzag: a zigzag line
  (2-px teeth) across;
- canny edges: the digit replaced by its Canny edges (sigma 1).

None of these generators is used in training: the CNN's augmentation is generic (small
rotations, scaling, shifts and stroke widths, ``mnist_train.augment``).
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
    return _bytes(rng.poisson(_unit(x) * 60) / 60)


def impulse_noise(x: Batch, rng: Rng) -> Batch:
    out = x.copy()
    hit = rng.random(x.shape) < 0.07
    out[hit] = np.where(rng.random(int(hit.sum())) < 0.5, 0, 255)
    return out


def glass_blur(x: Batch, rng: Rng) -> Batch:
    from scipy.ndimage import gaussian_filter

    blurred = gaussian_filter(_unit(x), sigma=(0, 0.7, 0.7))
    n = len(x)
    for r in range(SIDE - 2, 0, -1):
        for c in range(SIDE - 2, 0, -1):
            dr, dc = rng.integers(-1, 2, size=(2, n))
            rows, cols = r + dr, c + dc
            idx = np.arange(n)
            here = blurred[idx, r, c].copy()
            blurred[idx, r, c] = blurred[idx, rows, cols]
            blurred[idx, rows, cols] = here
    return _bytes(gaussian_filter(blurred, sigma=(0, 0.7, 0.7)))


def motion_blur(x: Batch, rng: Rng) -> Batch:
    from scipy.ndimage import convolve

    out = np.empty_like(x)
    offsets = np.arange(-4, 5)
    weights = np.exp(-(offsets**2) / (2 * 3.0**2))
    for i, angle in enumerate(rng.uniform(-math.pi / 4, math.pi / 4, len(x))):
        kernel = np.zeros((9, 9))
        for o, w in zip(offsets, weights, strict=True):
            kernel[round(4 + o * math.sin(angle)), round(4 + o * math.cos(angle))] += w
        out[i] = _bytes(convolve(_unit(x[i]), kernel / kernel.sum(), mode="constant"))
    return out


def shear(x: Batch, rng: Rng) -> Batch:
    return _affine(
        x, [np.array([[1, 0, 0], [s * 0.4, 1, 0], [0, 0, 1]]) for s in _sign(rng, len(x))]
    )


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
    return _bytes(_unit(x) + 0.3)


def stripe(x: Batch, rng: Rng) -> Batch:
    out = x.copy()
    out[:, :, :7] = 255 - out[:, :, :7]
    out[:, :, 21:] = 255 - out[:, :, 21:]
    return out


def _plasma(rng: Rng, size: int = 32, decay: float = 2.5) -> npt.NDArray[np.float64]:
    """A diamond-square fractal in [0, 1], ``size`` a power of two."""
    grid = np.zeros((size + 1, size + 1))
    step, amplitude = size, 1.0
    while step > 1:
        half = step // 2
        # Squares: each centre from its four corners.
        corners = (grid[0:-1:step, 0:-1:step] + grid[step::step, 0:-1:step]
                   + grid[0:-1:step, step::step] + grid[step::step, step::step]) / 4  # fmt: skip
        grid[half::step, half::step] = corners + amplitude * rng.uniform(-1, 1, corners.shape)
        # Diamonds: each edge midpoint from its neighbours present.
        for r0, c0 in ((0, half), (half, 0)):
            rows, cols = np.meshgrid(np.arange(r0, size + 1, step), np.arange(c0, size + 1, step),
                                     indexing="ij")  # fmt: skip
            total, count = np.zeros(rows.shape), np.zeros(rows.shape)
            for dr, dc in ((-half, 0), (half, 0), (0, -half), (0, half)):
                rr, cc = rows + dr, cols + dc
                ok = (rr >= 0) & (rr <= size) & (cc >= 0) & (cc <= size)
                total[ok] += grid[rr[ok], cc[ok]]
                count[ok] += 1
            grid[rows, cols] = total / count + amplitude * rng.uniform(-1, 1, rows.shape)
        step, amplitude = half, amplitude / decay
    grid -= grid.min()
    return grid / max(grid.max(), 1e-9)


def fog(x: Batch, rng: Rng) -> Batch:
    strength = 0.75
    out = np.empty_like(x)
    for i in range(len(x)):
        image = _unit(x[i])
        top = image.max()
        fogged = image + strength * _plasma(rng)[:SIDE, :SIDE]
        out[i] = _bytes(fogged * top / (top + strength))
    return out


def spatter(x: Batch, rng: Rng) -> Batch:
    from scipy.ndimage import gaussian_filter

    # Smooth noise, standardised; where it rises 2 deviations above its mean, a drop (about 2%
    # of the pixels, in clusters), with soft edges.
    liquid = gaussian_filter(rng.normal(0, 1, x.shape), sigma=(0, 1.5, 1.5))
    liquid /= liquid.std(axis=(1, 2), keepdims=True)
    drops = gaussian_filter((liquid > 2.0).astype(float), sigma=(0, 0.5, 0.5))
    return _bytes(np.maximum(_unit(x), np.clip(drops * 1.5, 0, 1)))


def _line(c0: float, r0: float, c1: float, r1: float) -> npt.NDArray[np.float64]:
    """A soft line from (c0, r0) to (c1, r1): 1 on it, falling to 0 by 2.3 px away."""
    cols, rows = np.meshgrid(np.arange(SIDE, dtype=float), np.arange(SIDE, dtype=float))
    length = max(math.hypot(c1 - c0, r1 - r0), 1e-9)
    t = np.clip(((cols - c0) * (c1 - c0) + (rows - r0) * (r1 - r0)) / length**2, 0, 1)
    dist = np.hypot(cols - (c0 + t * (c1 - c0)), rows - (r0 + t * (r1 - r0)))
    return np.clip(1 - dist / 2.3, 0, 1) ** 0.5


def dotted_line(x: Batch, rng: Rng) -> Batch:
    out = np.empty_like(x)
    for i in range(len(x)):
        r0, r1 = rng.integers(0, SIDE, 2)
        line = _line(0, float(r0), SIDE - 1, float(r1))
        line[:, (np.arange(SIDE) // 2) % 2 == 1] = 0
        out[i] = _bytes(_unit(x[i]) + line)
    return out


def zigzag(x: Batch, rng: Rng) -> Batch:
    out = np.empty_like(x)
    for i in range(len(x)):
        r0 = float(rng.integers(2, SIDE - 2))
        r1 = r0 + float(rng.integers(-5, 6))
        angle = math.atan2(r1 - r0, 23.0)
        points = [(2.0 + k * 2.0, (-1) ** k * 2.0) for k in range(13)]
        turned = [(2 + c * math.cos(angle) - r * math.sin(angle),
                   r0 + c * math.sin(angle) + r * math.cos(angle)) for c, r in points]  # fmt: skip
        image = _unit(x[i])
        for (ca, ra), (cb, rb) in itertools.pairwise(turned):
            image = np.maximum(image, _line(ca, ra, cb, rb))
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
