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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from imaging import drawn, photo
from mnist_core.artifact import LITE_FILE, read_metadata
from mnist_core.calibration import apply_temperature, expected_calibration_error
from mnist_core.imaging import decode, to_mnist
from mnist_core.lite import LiteModel
from mnist_train.data import Mnist, load_mnist

TARGET = 0.01


@dataclass(frozen=True)
class CalibrationRow:
    name: str
    examples: int
    ece_before: float
    ece_after: float
    accuracy: float
    confidence_before: float
    confidence_after: float

    @property
    def met(self) -> bool:
        return self.ece_after <= TARGET

    def line(self) -> str:
        return (
            f"{'met   ' if self.met else 'MISSED'} {self.name:22} ({self.examples:,}): ECE "
            f"{self.ece_before:.2%} -> {self.ece_after:.2%} (<= 1%), accuracy "
            f"{self.accuracy:.2%}, mean confidence {self.confidence_before:.2%} -> "
            f"{self.confidence_after:.2%}"
        )


def calibration_rows(model: Path, data: Mnist, uploads: int) -> list[CalibrationRow]:
    """ECE before and after the temperature of the artifact at ``model`` on the MNIST test set
    and on ``uploads`` test digits in each upload-style rendering."""
    directory, meta = read_metadata(model)
    temperature = meta.temperature
    raw_model = LiteModel((directory / LITE_FILE).read_bytes())
    sets = {"MNIST test set": (data.test_images, data.test_labels)}
    digits, labels = data.test_images[:uploads], data.test_labels[:uploads]
    renderings = {
        "224x224 PNG drawings": [drawn(d) for d in digits],
        "1000x1000 JPEG photos": [photo(d, 1000, 1000, i) for i, d in enumerate(digits)],
    }
    for name, files in renderings.items():
        sets[name] = (np.stack([to_mnist(decode(f).image) for f in files]), labels)
    rows = []
    for name, (images, truth) in sets.items():
        raw = raw_model.predict_batch(images)
        calibrated = apply_temperature(raw, temperature)
        rows.append(
            CalibrationRow(
                name=name,
                examples=len(truth),
                ece_before=expected_calibration_error(raw, truth),
                ece_after=expected_calibration_error(calibrated, truth),
                accuracy=float((raw.argmax(axis=1) == truth).mean()),
                confidence_before=float(raw.max(axis=1).mean()),
                confidence_after=float(calibrated.max(axis=1).mean()),
            )
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("models"))
    parser.add_argument("--uploads", type=int, default=2000, help="test digits rendered per kind")
    args = parser.parse_args()
    _, meta = read_metadata(args.model)
    if meta.calibration is None:
        print(f"{meta.version} has no calibration (trained before it): retrain", file=sys.stderr)
        return 2
    print(
        f"model {meta.version}: temperature {meta.temperature:g} (fitted on the validation split)"
    )
    rows = calibration_rows(args.model, load_mnist(), args.uploads)
    for row in rows:
        print(row.line())
    return 0 if all(row.met for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
