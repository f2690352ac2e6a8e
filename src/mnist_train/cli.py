"""``mnist-train``: train, evaluate and try MNIST digit classifiers."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mnist_core.corrections import EXTRA_WEIGHT, load_corrections
from mnist_core.errors import MnistError
from mnist_core.model_types import MODEL_TYPES, ModelType
from mnist_core.runtime import import_tensorflow
from mnist_train import __version__
from mnist_train.data import VALIDATION_EXAMPLES

if TYPE_CHECKING:
    from mnist_core.artifact import LiteExport

DEFAULT_OUTPUT = Path("models")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{value} must be between 0 and {2**32 - 1}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or value > 4:
        raise argparse.ArgumentTypeError(f"{text} must be a number from 0 to 4")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mnist-train", description="Train and evaluate MNIST digit classifiers."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="train a model and write a versioned artifact")
    train.add_argument(
        "--model", choices=MODEL_TYPES, help="default: cnn, or the type of the --init model"
    )
    train.add_argument("--epochs", type=_positive, help="default: 15 (cnn), 5 (softmax)")
    train.add_argument("--batch-size", type=_positive, help="default: 128 (cnn), 100 (softmax)")
    train.add_argument(
        "--learning-rate", type=_positive_float, help="default: 0.003 (cnn), 0.5 (softmax)"
    )
    train.add_argument(
        "--seed",
        type=_seed,
        default=1,
        help="random seed of the training and of the validation split (default: 1)",
    )
    train.add_argument(
        "--validation-examples",
        type=_positive,
        default=VALIDATION_EXAMPLES,
        metavar="N",
        help="hold N training images out for validation, chosen by a permutation seeded with "
        f"--seed; never trained on (default: {VALIDATION_EXAMPLES})",
    )
    train.add_argument(
        "--train-examples",
        type=_positive,
        metavar="N",
        help="train on the first N of the training images left after the validation split",
    )
    train.add_argument(
        "--no-augmentation", action="store_true", help="turn the CNN's augmentation off"
    )
    train.add_argument(
        "--ensemble",
        type=_positive,
        metavar="N",
        help="train N CNNs apart (seeds SEED, SEED+1, ...) and serve the mean of their "
        "probabilities as one model (default: 1)",
    )
    train.add_argument(
        "--negatives",
        type=_share,
        metavar="SHARE",
        help="non-digits (generated, mnist_train.negatives) trained toward the uniform answer, "
        "as a share of the digits, so that the model's confidence falls on what is not a digit "
        "(default: 0.25 for cnn, 0 for softmax)",
    )
    train.add_argument(
        "--extra",
        type=Path,
        metavar="FILE",
        help="corrections (mnist-api export-labels) to mix into the training images; their "
        "held-out fifth is left out for mnist-train compare",
    )
    train.add_argument(
        "--extra-weight",
        type=_positive_float,
        default=EXTRA_WEIGHT,
        metavar="W",
        help=f"each correction counts as W MNIST images in the loss (default: {EXTRA_WEIGHT:g})",
    )
    train.add_argument(
        "--init",
        type=Path,
        metavar="ARTIFACT",
        help="fine-tune this artifact's model briefly instead of starting over (default then: "
        "2 epochs at a tenth of the learning rate)",
    )
    train.add_argument(
        "--data-dir",
        type=Path,
        help="folder with the MNIST IDX files (default: $MNIST_DATA_DIR or ./data/mnist); "
        "missing files are downloaded",
    )
    train.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="folder for artifacts; LATEST names the newest (default: ./models)",
    )

    evaluate = sub.add_parser("evaluate", help="evaluate an artifact on the MNIST test set")
    evaluate.add_argument("artifact", type=Path, help="artifact folder, or a folder with LATEST")
    evaluate.add_argument("--data-dir", type=Path)

    export = sub.add_parser(
        "export",
        help="add model.tflite (LiteRT) to an artifact written without it, checked on the test set",
    )
    export.add_argument("artifact", type=Path, help="artifact folder, or a folder with LATEST")
    export.add_argument("--data-dir", type=Path)

    compare = sub.add_parser(
        "compare",
        help="whether a candidate model beats the current one, on the MNIST test set and the "
        "held-out corrections; exits 1 when it loses",
    )
    compare.add_argument("new", type=Path, metavar="NEW", help="the candidate artifact")
    compare.add_argument("old", type=Path, metavar="OLD", help="the current artifact (or LATEST)")
    compare.add_argument("--extra", type=Path, metavar="FILE", help="corrections to judge on")
    compare.add_argument("--data-dir", type=Path)

    promote = sub.add_parser(
        "promote",
        help="copy an artifact under a models folder and point its LATEST at it (a running "
        "service follows)",
    )
    promote.add_argument("candidate", type=Path, metavar="ARTIFACT")
    promote.add_argument("root", type=Path, metavar="MODELS", help="the folder the service serves")

    predict = sub.add_parser("predict", help="classify image files with an artifact")
    predict.add_argument("artifact", type=Path)
    predict.add_argument("images", type=Path, nargs="+")
    return parser


def _train(args: argparse.Namespace) -> None:
    from mnist_train.data import load_mnist

    # Everything a person can get wrong is checked before TensorFlow loads (seconds of CPU).
    if args.output.exists() and not args.output.is_dir():
        raise MnistError(f"--output {args.output} exists and is not a folder")
    data = load_mnist(args.data_dir)
    total = len(data.train_labels)
    if args.validation_examples >= total:
        raise MnistError(
            f"--validation-examples {args.validation_examples} leaves no training images "
            f"(the training set has {total})"
        )
    available = total - args.validation_examples
    if args.train_examples is not None and args.train_examples > available:
        raise MnistError(
            f"--train-examples {args.train_examples} is more than the {available} training "
            f"images left after holding {args.validation_examples} out for validation"
        )
    model_type: ModelType = args.model or "cnn"
    if args.init is not None:
        from mnist_core.artifact import read_metadata

        _, start = read_metadata(args.init)  # a missing or broken artifact says so here
        if args.model is not None and args.model != start.model_type:
            raise MnistError(
                f"--init {args.init} holds a {start.model_type} model, not {args.model}"
            )
        model_type = start.model_type
        if args.ensemble is not None and args.ensemble > 1:
            raise MnistError(
                "--ensemble with --init: a fine-tuning trains the one model it starts from"
            )
    if args.ensemble is not None and args.ensemble > 1 and model_type != "cnn":
        raise MnistError("--ensemble applies to the CNN only")
    if args.extra is not None:
        load_corrections(args.extra)  # a file that is not one says so before TensorFlow loads
    import_tensorflow()
    from mnist_train.train import TrainConfig, train

    config = TrainConfig(
        model_type=model_type,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        train_examples=args.train_examples,
        validation_examples=args.validation_examples,
        augmentation=False if args.no_augmentation else None,
        ensemble=args.ensemble,
        extra=args.extra,
        extra_weight=args.extra_weight,
        init=args.init,
        negatives=args.negatives,
    )
    result = train(config, data, args.output)
    meta = result.metadata
    print(f"artifact: {result.artifact_dir}")
    print(f"model: {meta.model_type}, version {meta.version}")
    print(f"training time: {meta.training_seconds:.1f} s")
    if meta.validation_accuracy is not None:
        print(f"validation accuracy: {meta.validation_accuracy * 100:.2f}%")
    print(f"test accuracy: {meta.test_accuracy * 100:.2f}%")
    if meta.calibration is not None:
        c = meta.calibration
        print(
            f"calibration: temperature {c.temperature:g} (fitted on the validation split); "
            f"expected calibration error on the test set {c.test_ece_before:.2%} -> "
            f"{c.test_ece_after:.2%}"
        )
    if meta.verdicts is not None:
        v = meta.verdicts
        print(
            f"verdicts: not_a_digit below a confidence of {v.not_a_digit_below:g}, uncertain "
            f"below {v.uncertain_below:g} (fitted on the validation split; "
            f"{meta.hyperparameters.negatives:,} non-digits trained on)"
        )
    if meta.init_from is not None:
        print(f"fine-tuned from: {meta.init_from}")
    if meta.extra is not None:
        print(
            f"corrections: {meta.extra.examples} trained on (weight {meta.extra.weight:g}), "
            f"{meta.extra.held_out} held out, from {meta.extra.file}"
        )
    if meta.lite is not None:
        _print_parity(meta.lite)


def _print_parity(lite: LiteExport) -> None:
    print(
        f"LiteRT: model.tflite reads the {lite.parity_examples:,} test images as TensorFlow does "
        f"(same digit for {lite.parity_argmax_agreement:.2%}, probabilities within "
        f"{lite.parity_max_difference:.1g})"
    )


def _export(args: argparse.Namespace) -> None:
    from mnist_core.artifact import read_metadata
    from mnist_train.data import load_mnist

    read_metadata(args.artifact)  # a wrong path is reported before TensorFlow loads
    data = load_mnist(args.data_dir)
    import_tensorflow()
    from mnist_train.export import export_artifact

    directory, lite = export_artifact(args.artifact, data.test_images)
    print(f"artifact: {directory}: model.tflite written")
    _print_parity(lite)


def _evaluate(args: argparse.Namespace) -> None:
    from mnist_core.artifact import load_artifact
    from mnist_core.imaging import model_input
    from mnist_train.data import load_mnist
    from mnist_train.evaluate import evaluate

    loaded = load_artifact(args.artifact)
    data = load_mnist(args.data_dir)
    result = evaluate(loaded.model, model_input(data.test_images), data.test_labels)
    meta = loaded.metadata
    print(f"artifact: {loaded.path} ({meta.model_type}, {meta.version})")
    if meta.validation_accuracy is not None:
        print(
            f"validation accuracy: {meta.validation_accuracy * 100:.2f}% "
            f"(recorded in training, {meta.validation_examples} held-out training images)"
        )
    print(result.report())


def _predict(args: argparse.Namespace) -> None:
    import numpy as np

    from mnist_core.classifier import Classifier
    from mnist_core.imaging import from_bytes

    classifier = Classifier.load(args.artifact)
    for path in args.images:
        try:
            pixels = from_bytes(path.read_bytes())
        except OSError as exc:
            raise MnistError(f"cannot read {path}: {exc.strerror or exc}") from exc
        except MnistError as exc:
            raise MnistError(f"{path}: {exc}") from exc
        probabilities = classifier.predict_batch(pixels[np.newaxis])[0]
        digit = int(np.argmax(probabilities))
        print(f"{path}: {digit} ({probabilities[digit] * 100:.1f}%)")


def _compare(args: argparse.Namespace) -> int:
    from mnist_core.artifact import read_metadata
    from mnist_train.data import load_mnist

    for path in (args.new, args.old):
        read_metadata(path)  # a wrong path is reported before TensorFlow loads
    if args.extra is not None:
        load_corrections(args.extra)
    data = load_mnist(args.data_dir)
    import_tensorflow()
    from mnist_train.compare import compare

    comparison = compare(args.new, args.old, data, args.extra)
    print(comparison.report())
    return 0 if comparison.candidate_wins else 1


def _promote(args: argparse.Namespace) -> None:
    from mnist_core.artifact import promote

    metadata = promote(args.candidate, args.root)
    print(
        f"{args.root / 'LATEST'} names {metadata.version} (test accuracy "
        f"{metadata.test_accuracy:.2%}); a running service swaps it in within "
        "MNIST_API_MODEL_POLL_S"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {
        "train": _train,
        "evaluate": _evaluate,
        "export": _export,
        "promote": _promote,
        "predict": _predict,
    }
    try:
        if args.command == "compare":
            return _compare(args)
        handlers[args.command](args)
    except MnistError as exc:
        print(f"mnist-train: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mnist-train: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
