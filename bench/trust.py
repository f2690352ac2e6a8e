"""Does the service know when it doesn't know? Calibration, "not a digit", the model's own
mistakes and robustness, for one model artifact, in one run.

    MNIST_DATA_DIR=../shared/data/mnist .venv/bin/python bench/trust.py --model models \\
        [--baseline OTHER] [--negatives 2100] [--robustness 10000]

1. Calibration (``bench/calibration.py``): ECE (15 bins) before and after the artifact's
   temperature, on the MNIST test set and on upload-style renderings of it. Target: <= 1%.
2. Through HTTP, on ``mnist-api serve`` (SQLite, authentication off, default thresholds): the
   10,000 MNIST test digits (28x28 PNGs), 2,000 of them drawn at 224x224, and the non-digits of
   ``bench/nondigits.py`` (seeded, built from what is offline, never seen in training). A 422
   (no ink) counts as refused, with the lowest score. Targets: AUROC of the confidence >= 0.98
   for test digits against non-digits; at the default thresholds <= 1% of test digits refused
   (verdict ``not_a_digit``) and >= 90% of non-digits flagged (``not_a_digit``, or refused).
   Also: the AUROC of the confidence for telling the model's mistakes from its right answers.
   Anchors (Hendrycks & Gimpel 2017, the maximum-softmax baseline of an MNIST network): 0.85
   against notMNIST, 0.99 against uniform noise, 0.97 for its own mistakes.
3. The score, compared in process on the same inputs: the maximum softmax probability (what
   the service uses), the energy score (Liu et al. 2020, from the logits) and the entropy, for
   the model and, with ``--baseline``, another (e.g. one trained without non-digits).
4. Robustness (``bench/corruptions.py``): accuracy of the served pipeline (PNG, decoding,
   preprocessing, LiteRT, temperature) on MNIST-C-style corruptions of the test set, per
   corruption and mean. Target: mean >= 97%.

Exit status 0 when every target is met.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api import Server
from calibration import calibration_rows
from corruptions import CORRUPTIONS
from imaging import drawn
from mnist_core.artifact import read_metadata
from mnist_core.errors import ImageError
from mnist_core.imaging import from_bytes, to_png
from mnist_core.lite import LiteClassifier
from mnist_core.verdicts import auroc
from mnist_train.data import Mnist, load_mnist
from nondigits import KINDS, nondigits

AUROC_TARGET = 0.98
REFUSED_TARGET = 0.01
FLAGGED_TARGET = 0.90
ROBUST_TARGET = 0.97
CLIENTS = 8


@dataclass
class Answer:
    status: int
    digit: int = -1
    confidence: float = -1.0  # a refused upload (422) scores below any answer
    verdict: str = "refused"


async def upload_all(port: int, files: list[bytes]) -> list[Answer]:
    answers: list[Answer | None] = [None] * len(files)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(files)):
        queue.put_nowait(i)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            reply = await client.post("/v1/predictions", files={"file": ("upload", files[i])})
            if reply.status_code == 201:
                body = reply.json()
                answers[i] = Answer(201, body["digit"], body["confidence"], body["verdict"])
            else:
                answers[i] = Answer(reply.status_code)

    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(CLIENTS)))
    return [a for a in answers if a is not None]


def scores(answers: list[Answer]) -> npt.NDArray[np.float64]:
    return np.array([a.confidence for a in answers])


def share(answers: list[Answer], *verdicts: str) -> float:
    return sum(a.verdict in verdicts for a in answers) / max(1, len(answers))


def check(results: list[bool], ok: bool, text: str) -> None:
    results.append(ok)
    print(f"{'met   ' if ok else 'MISSED'} {text}")


def through_http(
    model: Path, data: Mnist, negatives: list[tuple[str, bytes]], results: list[bool]
) -> None:
    tests = [to_png(image) for image in data.test_images]
    drawings = [drawn(image) for image in data.test_images[:2000]]
    work = Path(tempfile.mkdtemp(prefix="bench-trust-"))
    env = {
        "MNIST_API_MODEL_PATH": str(model),
        "MNIST_API_AUTH": "off",
        "MNIST_API_SQLITE_PATH": str(work / "trust.sqlite3"),
    }
    server = Server(env, work / "server.log", 1)
    try:
        thresholds = httpx.get(f"http://127.0.0.1:{server.port}/v1/models").json()["serving"][
            "verdicts"
        ]
        started = time.perf_counter()
        answers = asyncio.run(upload_all(server.port, tests + drawings + [f for _, f in negatives]))
        seconds = time.perf_counter() - started
    finally:
        server.stop()
    on_tests, rest = answers[: len(tests)], answers[len(tests) :]
    on_drawings, on_negatives = rest[: len(drawings)], rest[len(drawings) :]
    print(
        f"\n2. Through HTTP: {len(answers):,} uploads in {seconds:.0f} s; thresholds in force: "
        f"not_a_digit below {thresholds['not_a_digit_below']:g}, uncertain below "
        f"{thresholds['uncertain_below']:g} ({thresholds['source']})"
    )
    negative_scores = scores(on_negatives)
    for name, digits in (("MNIST test digits", on_tests), ("224x224 drawings", on_drawings)):
        value = auroc(scores(digits), negative_scores)
        line = f"AUROC, {name} against non-digits: {value:.4f} (>= {AUROC_TARGET})"
        if digits is on_tests:
            check(results, value >= AUROC_TARGET, line)
        else:
            print(f"       {line}: for information")
    refused = share(on_tests, "not_a_digit", "refused")
    check(
        results,
        refused <= REFUSED_TARGET,
        f"MNIST test digits refused (not_a_digit or 422): {refused:.2%} (<= 1%); uncertain "
        f"{share(on_tests, 'uncertain'):.2%}",
    )
    print(
        f"       224x224 drawings refused: {share(on_drawings, 'not_a_digit', 'refused'):.2%}, "
        f"uncertain {share(on_drawings, 'uncertain'):.2%}"
    )
    flagged = share(on_negatives, "not_a_digit", "refused")
    check(
        results,
        flagged >= FLAGGED_TARGET,
        f"non-digits flagged (not_a_digit or 422): {flagged:.2%} (>= 90%); with uncertain: "
        f"{share(on_negatives, 'not_a_digit', 'refused', 'uncertain'):.2%}",
    )
    kinds = [kind for kind, _ in negatives]
    for kind in KINDS:
        mine = [a for a, k in zip(on_negatives, kinds, strict=True) if k == kind]
        flagged_here = share(mine, "not_a_digit", "refused")
        print(
            f"       {kind:9} ({len(mine):>4}): flagged {flagged_here:6.1%}, of which 422 "
            f"{share(mine, 'refused'):6.1%}; uncertain "
            f"{share(mine, 'uncertain'):5.1%}; AUROC against test digits "
            f"{auroc(scores(on_tests), scores(mine)):.4f}"
        )
    answered = [
        (a, int(label))
        for a, label in zip(on_tests, data.test_labels, strict=True)
        if a.status == 201
    ]
    wrong = np.array([a.digit != label for a, label in answered])
    confidence = np.array([a.confidence for a, _ in answered])
    print(
        f"       the model's own mistakes ({int(wrong.sum())} of {len(answered):,} test digits):"
        f" AUROC {auroc(-confidence[wrong], -confidence[~wrong]):.4f} (baseline 0.97)"
    )


def logits_of(model: Path) -> object | None:
    """A function from inputs to logits, when the Keras model ends in one dense softmax layer."""
    from mnist_core.artifact import load_artifact

    keras_model = load_artifact(model).model
    last = keras_model.layers[-1]
    if not hasattr(last, "kernel"):
        return None  # an ensemble (an average): no single set of logits
    import keras

    features = keras.Model(keras_model.inputs, last.input)
    weights, bias = (np.asarray(w) for w in last.get_weights())

    def logits(images: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        return (
            np.asarray(features.predict(images, batch_size=1000, verbose=0), np.float64)
            @ (weights.astype(np.float64))
            + bias
        )

    return logits


def compare_scores(models: list[Path], data: Mnist, negatives: list[tuple[str, bytes]]) -> None:
    from mnist_core.imaging import model_input

    inputs = []
    for _, f in negatives:
        with contextlib.suppress(ImageError):  # refused before the model: alike for every score
            inputs.append(from_bytes(f))
    digits, others = model_input(data.test_images), model_input(np.stack(inputs))
    print(
        f"\n3. Scores compared in process (MNIST test digits against the {len(inputs):,} "
        "non-digits that reach the model), AUROC:"
    )
    for model in models:
        _, meta = read_metadata(model)
        logits = logits_of(model)
        if logits is None:
            print(f"       {meta.version}: an ensemble, no logits to compare")
            continue
        t = meta.temperature
        rows = {}
        for name, x in (("digits", digits), ("others", others)):
            z = logits(x) / t  # type: ignore[operator]
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
            rows[name] = {
                "max softmax": p.max(axis=1),
                "energy": np.log(np.exp(z).sum(axis=1)) + (logits(x) / t).max(axis=1),  # type: ignore[operator]
                "entropy": (p * np.log(np.clip(p, 1e-12, 1))).sum(axis=1),
            }
        figures = ", ".join(
            f"{score} {auroc(rows['digits'][score], rows['others'][score]):.4f}"
            for score in ("max softmax", "energy", "entropy")
        )
        print(
            f"       {meta.version} ({meta.hyperparameters.negatives:,} non-digits trained): "
            f"{figures}"
        )


def robustness(model: Path, data: Mnist, n: int, results: list[bool]) -> None:
    classifier = LiteClassifier.load(model)
    digits, labels = data.test_images[:n], data.test_labels[:n]
    print(
        f"\n4. Robustness: accuracy of the served pipeline on {n:,} corrupted test digits "
        "(PNG, decode, preprocessing, LiteRT)"
    )
    accuracies = []
    for name, corrupt in [("clean", None), *CORRUPTIONS.items()]:
        rng = np.random.default_rng(list(CORRUPTIONS).index(name) + 1 if corrupt else 0)
        images = corrupt(digits, rng) if corrupt is not None else digits
        batch, refused = [], np.zeros(n, dtype=np.bool_)
        for i, image in enumerate(images):
            try:
                batch.append(from_bytes(to_png(image)))
            except ImageError:  # refused: wrong, whatever the model makes of a blank field
                batch.append(np.zeros((28, 28), np.uint8))
                refused[i] = True
        predicted = classifier.predict_batch(np.stack(batch)).argmax(axis=1)
        right = int(((predicted == labels) & ~refused).sum())
        accuracy = right / n
        if corrupt is not None:
            accuracies.append(accuracy)
        print(f"       {name:14} {accuracy:7.2%}")
    mean = float(np.mean(accuracies))
    check(
        results,
        mean >= ROBUST_TARGET,
        f"mean accuracy over the {len(accuracies)} corruptions: {mean:.2%} (>= 97%)",
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("models"))
    parser.add_argument("--baseline", type=Path, help="another artifact, for the comparison")
    parser.add_argument("--negatives", type=int, default=2100, help="non-digits (>= 2,000)")
    parser.add_argument("--seed", type=int, default=1, help="of the non-digits")
    parser.add_argument("--robustness", type=int, default=10000, help="test digits corrupted")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    directory, meta = read_metadata(args.model)
    data = load_mnist()
    results: list[bool] = []
    print(
        f"model {meta.version}: test accuracy {meta.test_accuracy:.2%}, temperature "
        f"{meta.temperature:g}, {meta.hyperparameters.negatives:,} non-digits trained on"
    )

    print("\n1. Calibration, ECE (15 bins) before -> after the temperature")
    for row in calibration_rows(directory, data, 2000):
        check(results, row.met, row.line()[7:])
    negatives = nondigits(args.negatives, args.seed)
    through_http(directory, data, negatives, results)
    compare_scores([directory] + ([args.baseline] if args.baseline else []), data, negatives)
    robustness(directory, data, args.robustness, results)
    print(f"\n{sum(results)} of {len(results)} targets met")
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
