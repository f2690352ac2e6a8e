"""An evaluation set of uploads that are not digits, built from what is available offline, seeded,
and apart from everything training sees (``mnist_train.negatives``: Pillow's own font, straight
pen paths, shapes, textures, hatching):

- letters and symbols typed in the system's DejaVu and Liberation fonts (training uses Aileron),
  dark on light pages of many sizes, PNG or JPEG; the glyphs that many people write as digits
  are left out, as in training (``mnist_train.negatives.GLYPHS``);
- natural photographs that ship inside scikit-image (``skimage.data``: astronaut, camera, cat,
  coffee, coins, ..., and its 200 faces), cropped and scaled, PNG or JPEG;
- noise: uniform, Gaussian, salt-and-pepper pages;
- blank and nearly blank pages: white, grey, a speck, a faint smudge;
- scribbles: curved (Bezier) pen paths, loops, a crossed-out mark.

    .venv/bin/python bench/nondigits.py --out /tmp/nondigits [--count 2100] [--seed 1]

writes the files (``<kind>-<n>.png|jpg``) for a look; ``bench/trust.py`` builds them in memory.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/liberation"))
FONT_PACKAGES = "fonts-dejavu-core fonts-dejavu-extra fonts-liberation"
# All printable ASCII but digits, the glyphs left out of training as digit-like, and single
# strokes that are a 1 in many hands.
LEFT_OUT = set("0123456789OoDQIlij|[]ZzSsbGJTBgq/\\()!'`,")
GLYPHS = "".join(c for c in map(chr, range(33, 127)) if c not in LEFT_OUT)
PHOTOS = (
    "astronaut", "brick", "camera", "cell", "chelsea", "coffee", "coins", "grass", "gravel",
    "hubble_deep_field", "horse", "immunohistochemistry", "moon", "retina", "rocket",
    "clock", "logo",
)  # fmt: skip
# Shares of the set, by kind.
KINDS: dict[str, float] = {
    "letter": 0.38, "photo": 0.2, "noise": 0.14, "blank": 0.1, "scribble": 0.18,
}  # fmt: skip

Rng = np.random.Generator


def fonts() -> list[Path]:
    found = sorted(p for d in FONT_DIRS if d.is_dir() for p in d.glob("*.ttf"))
    if not found:
        raise SystemExit(f"no fonts in {', '.join(map(str, FONT_DIRS))}: apt-get install "
                         f"{FONT_PACKAGES}")  # fmt: skip
    return found


def encode(image: Image.Image, rng: Rng) -> bytes:
    buffer = io.BytesIO()
    if rng.random() < 0.5:
        image.convert("RGB").save(buffer, "JPEG", quality=int(rng.integers(70, 95)))
    else:
        image.save(buffer, "PNG")
    return buffer.getvalue()


def _side(rng: Rng) -> int:
    return int(rng.choice([28, 64, 120, 224, 400]))


def letter(rng: Rng, font_files: list[Path]) -> Image.Image:
    side = _side(rng)
    paper = int(rng.integers(215, 256))
    page = Image.new("L", (side, side), paper)
    font = ImageFont.truetype(str(font_files[int(rng.integers(len(font_files)))]),
                              size=max(8, int(side * rng.uniform(0.4, 0.8))))  # fmt: skip
    text = GLYPHS[int(rng.integers(len(GLYPHS)))]
    ImageDraw.Draw(page).text((side / 2, side / 2), text, fill=int(rng.integers(0, 90)),
                              font=font, anchor="mm")  # fmt: skip
    return page.rotate(float(rng.uniform(-10, 10)), Image.Resampling.BICUBIC, fillcolor=paper)


def photo(rng: Rng, photos: list[np.ndarray]) -> Image.Image:
    # Half from the scenes, half from the faces (there are many more faces).
    scenes = len(PHOTOS)
    pick = rng.integers(scenes) if rng.random() < 0.5 else rng.integers(scenes, len(photos))
    source = photos[int(pick)]
    h, w = source.shape[:2]
    crop = int(rng.integers(min(h, w, 24), min(h, w) + 1))
    y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    image = Image.fromarray(source[y : y + crop, x : x + crop])
    return image.resize((_side(rng),) * 2, Image.Resampling.LANCZOS)


def noise(rng: Rng) -> Image.Image:
    side = _side(rng)
    kind = int(rng.integers(3))
    if kind == 0:
        field = rng.integers(0, 256, (side, side))
    elif kind == 1:
        field = np.clip(rng.normal(128, rng.uniform(20, 80), (side, side)), 0, 255)
    else:
        field = np.full((side, side), 255)
        mask = rng.random((side, side))
        field[mask < 0.05] = 0
    return Image.fromarray(field.astype(np.uint8))


def blank(rng: Rng) -> Image.Image:
    side = _side(rng)
    level = int(rng.integers(180, 256))
    page = Image.new("L", (side, side), level)
    draw = ImageDraw.Draw(page)
    kind = int(rng.integers(4))
    if kind == 1:  # a speck
        x, y = rng.uniform(0.2, 0.8, 2) * side
        r = max(1.0, side / 100)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=int(rng.integers(0, 150)))
    elif kind == 2:  # a faint smudge
        x, y = rng.uniform(0.2, 0.8, 2) * side
        r = side * rng.uniform(0.05, 0.2)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=max(0, level - int(rng.integers(15, 40))))
        page = page.filter(ImageFilter.GaussianBlur(r / 2))
    elif kind == 3:  # paper grain
        grain = rng.normal(0, 4, (side, side))
        page = Image.fromarray(np.clip(np.asarray(page) + grain, 0, 255).astype(np.uint8))
    return page


def _bezier(rng: Rng, side: int) -> list[tuple[float, float]]:
    p = rng.uniform(0.1, 0.9, (4, 2)) * side
    t = np.linspace(0, 1, 40)[:, None]
    curve = ((1 - t) ** 3 * p[0] + 3 * (1 - t) ** 2 * t * p[1] + 3 * (1 - t) * t**2 * p[2]
             + t**3 * p[3])  # fmt: skip
    return [(float(x), float(y)) for x, y in curve]


def scribble(rng: Rng) -> Image.Image:
    side = max(64, _side(rng))
    page = Image.new("L", (side, side), int(rng.integers(220, 256)))
    draw = ImageDraw.Draw(page)
    width = max(1, int(side * rng.uniform(0.02, 0.06)))
    kind = int(rng.integers(3))
    if kind == 0:  # curves
        for _ in range(int(rng.integers(2, 5))):
            draw.line(_bezier(rng, side), fill=int(rng.integers(0, 80)), width=width)
    elif kind == 1:  # a looping coil
        turns, r = rng.uniform(3, 6), side * rng.uniform(0.08, 0.15)
        t = np.linspace(0, turns * 2 * np.pi, 200)
        x = side * 0.2 + (side * 0.6) * t / t[-1] + r * np.cos(t)
        y = side / 2 + r * np.sin(t) + rng.normal(0, 1, len(t)).cumsum() * side / 400
        draw.line(list(zip(x.tolist(), y.tolist(), strict=True)), fill=0, width=width)
    else:  # a mark crossed out with a hatch
        for _ in range(int(rng.integers(6, 12))):
            x0, y0 = rng.uniform(0.15, 0.85, 2) * side
            dx, dy = rng.uniform(-0.3, 0.3, 2) * side
            draw.line([(x0, y0), (x0 + dx, y0 + dy)], fill=0, width=width)
    return page


def photos() -> list[np.ndarray]:
    import skimage.data

    images = []
    for name in PHOTOS:
        image = np.asarray(getattr(skimage.data, name)())
        if image.dtype == bool:
            image = np.where(image, 255, 0)
        if image.ndim == 3:
            image = image[..., :3]
        images.append(image.astype(np.uint8))
    faces = skimage.data.lfw_subset()  # 200 faces, 25x25, floats in [0, 1]
    images += [(face * 255).astype(np.uint8) for face in faces]
    return images


def nondigits(count: int, seed: int) -> list[tuple[str, bytes]]:
    """``count`` uploads that are not digits, as (kind, file bytes), the same for the same seed."""
    rng = np.random.default_rng([seed, 0x6E6F6E])
    font_files, pictures = fonts(), photos()
    makers: dict[str, Callable[[], Image.Image]] = {
        "letter": lambda: letter(rng, font_files),
        "photo": lambda: photo(rng, pictures),
        "noise": lambda: noise(rng),
        "blank": lambda: blank(rng),
        "scribble": lambda: scribble(rng),
    }
    out = []
    for kind, share in KINDS.items():
        for _ in range(round(share * count)):
            out.append((kind, encode(makers[kind](), rng)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=2100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for n, (kind, data) in enumerate(nondigits(args.count, args.seed)):
        suffix = "jpg" if data[:2] == b"\xff\xd8" else "png"
        (args.out / f"{kind}-{n:04d}.{suffix}").write_bytes(data)
    print(f"{args.count} files in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
