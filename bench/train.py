"""Train both models with default settings on the full MNIST data; print accuracy and wall time.

    MNIST_DATA_DIR=../shared/data/mnist .venv/bin/python bench/train.py [--output DIR]

Targets on a 2-core machine without GPU: cnn >= 99.4% in <= 10 minutes; softmax >= 91.5%.
The targets are on the test set; training holds 5,000 training images out for validation (the
default of ``mnist-train train``) and the validation accuracy is printed next to it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

TARGETS = {"cnn": (0.994, 600.0), "softmax": (0.915, None)}


def main() -> int:
    from mnist_core.runtime import import_tensorflow
    from mnist_train.data import load_mnist

    import_tensorflow()
    from mnist_train.train import TrainConfig, train

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, help="keep the artifacts here")
    parser.add_argument("--models", nargs="+", default=["cnn", "softmax"])
    args = parser.parse_args()
    output = args.output or Path(tempfile.mkdtemp(prefix="bench-train-"))
    data = load_mnist()
    rows = []
    for model_type in args.models:
        started = time.perf_counter()
        result = train(TrainConfig(model_type=model_type, verbose=0), data, output)
        wall = time.perf_counter() - started
        meta = result.metadata
        min_accuracy, max_seconds = TARGETS[model_type]
        ok = meta.test_accuracy >= min_accuracy and (
            max_seconds is None or meta.training_seconds <= max_seconds
        )
        rows.append((model_type, meta, wall, min_accuracy, max_seconds, ok))
        validation = meta.validation_accuracy
        shown = f"{validation * 100:6.2f}%" if validation is not None else "   none"
        print(
            f"{model_type:8} validation {shown}  "
            f"test accuracy {meta.test_accuracy * 100:6.2f}%  "
            f"fit {meta.training_seconds:6.1f} s  (epochs {meta.hyperparameters.epochs}, "
            f"{meta.hyperparameters.train_examples} training and {meta.validation_examples} "
            f"validation images, wall with evaluation and saving {wall:6.1f} s)",
            flush=True,
        )
    print()
    for model_type, _meta, _wall, min_accuracy, max_seconds, ok in rows:
        limit = f", fit <= {max_seconds:.0f} s" if max_seconds else ""
        verdict = "met" if ok else "MISSED"
        print(f"target {model_type}: test accuracy >= {min_accuracy * 100:.1f}%{limit}: {verdict}")
    print(f"artifacts: {output}")
    return 0 if all(row[-1] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
