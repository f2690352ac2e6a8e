"""Calibrated confidence: the expected calibration error (15 bins) of a model's answers before
and after its temperature (fitted on the validation split at training), on the MNIST test set
and on upload-style renderings of it, through the service's own preprocessing and runtime.

    MNIST_DATA_DIR=../shared/data/mnist .venv/bin/python bench/calibration.py --model models \\
        [--uploads 2000]

Renderings (``bench/imaging.py``'s): the digit drawn dark on white at 224x224 (PNG), and on a
photo-like 1000x1000 page (JPEG). Target: ECE at most 1% on both after calibration.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from imaging import drawn, photo
from mnist_core.artifact import LITE_FILE, read_metadata
from mnist_core.calibration import apply_temperature, expected_calibration_error
from mnist_core.imaging import decode, to_mnist
from mnist_core.lite import LiteModel
from mnist_train.data import load_mnist

TARGET = 0.01


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("models"))
    parser.add_argument("--uploads", type=int, default=2000, help="test digits rendered per kind")
    args = parser.parse_args()
    directory, meta = read_metadata(args.model)
    if meta.calibration is None:
        print(f"{meta.version} has no calibration (trained before it): retrain", file=sys.stderr)
        return 2
    temperature = meta.temperature
    raw_model = LiteModel((directory / LITE_FILE).read_bytes())
    data = load_mnist()
    n = args.uploads
    sets = {"MNIST test set": (data.test_images, data.test_labels)}
    digits, labels = data.test_images[:n], data.test_labels[:n]
    renderings = {
        "224x224 PNG drawings": [drawn(d) for d in digits],
        "1000x1000 JPEG photos": [photo(d, 1000, 1000, i) for i, d in enumerate(digits)],
    }
    for name, uploads in renderings.items():
        sets[name] = (np.stack([to_mnist(decode(u).image) for u in uploads]), labels)
    print(f"model {meta.version}: temperature {temperature:g} (fitted on the validation split)")
    met = True
    for name, (images, truth) in sets.items():
        raw = raw_model.predict_batch(images)
        calibrated = apply_temperature(raw, temperature)
        before = expected_calibration_error(raw, truth)
        after = expected_calibration_error(calibrated, truth)
        accuracy = float((raw.argmax(axis=1) == truth).mean())
        ok = after <= TARGET
        met &= ok
        print(
            f"{'met   ' if ok else 'MISSED'} {name:22} ({len(truth):,}): ECE {before:.2%} -> "
            f"{after:.2%} (<= 1%), accuracy {accuracy:.2%}, mean confidence "
            f"{raw.max(axis=1).mean():.2%} -> {calibrated.max(axis=1).mean():.2%}"
        )
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
