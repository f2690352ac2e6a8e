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
first 2,000 MNIST test digits uploaded as 224x224 PNGs, through the same preprocessing: the
figure that must not drop when preprocessing gets cheaper.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from mnist_core import imaging
from mnist_train.data import load_mnist


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


def accuracy(model_path: Path, images: np.ndarray, labels: np.ndarray) -> float:
    from mnist_core.classifier import Classifier  # the same reader before and after a change

    model = Classifier.load(model_path)
    pixels = np.stack([imaging.from_bytes(drawn(image)) for image in images])
    predicted = model.predict_batch(pixels).argmax(axis=1)
    return float((predicted == labels).mean())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="also measure accuracy through preprocessing")
    parser.add_argument("--seconds", type=float, default=3.0, help="per image and measure")
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
        n = 2000
        score = accuracy(args.model, data.test_images[:n], data.test_labels[:n])
        print(f"accuracy on {n:,} MNIST test digits uploaded as 224x224 PNGs: {score:.2%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
