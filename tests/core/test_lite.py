"""LiteRT, the serving runtime: every trained artifact carries a ``model.tflite`` checked on the
test set before it is written, LiteRT reads digits as TensorFlow does, older artifacts gain one
with ``export``, and anything missing, altered or reading differently is refused."""

from __future__ import annotations

import hashlib
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from mnist_core.artifact import LITE_FILE, METADATA_FILE, read_metadata, resolve
from mnist_core.classifier import Classifier
from mnist_core.errors import ArtifactError
from mnist_core.lite import LiteClassifier
from mnist_train import export
from mnist_train.data import Mnist
from mnist_train.train import TrainResult

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def older_copy(source: Path, target: Path) -> Path:
    """The artifact as it was written before LiteRT served the models."""
    shutil.copytree(resolve(source), target)
    (target / LITE_FILE).unlink()
    meta = json.loads((target / METADATA_FILE).read_text(encoding="utf-8"))
    del meta["lite"]
    (target / METADATA_FILE).write_text(json.dumps(meta), encoding="utf-8")
    return target


def test_training_writes_a_checked_litert_model(model_root: Path) -> None:
    directory, metadata = read_metadata(model_root)
    lite = metadata.lite
    assert lite is not None
    assert lite.sha256 == hashlib.sha256((directory / LITE_FILE).read_bytes()).hexdigest()
    assert lite.converter.startswith("tensorflow 2.")
    assert lite.parity_examples == 10_000  # the whole test set
    assert lite.parity_max_difference <= export.MAX_DIFFERENCE
    assert lite.parity_argmax_agreement >= export.MIN_AGREEMENT


def test_litert_reads_digits_as_tensorflow_does(model_root: Path, mnist: Mnist) -> None:
    lite, tensorflow = LiteClassifier.load(model_root), Classifier.load(model_root)
    assert lite.version == tensorflow.version
    assert lite.test_accuracy == tensorflow.test_accuracy
    pixels = mnist.test_images[:2000]
    got, expected = lite.predict_batch(pixels), tensorflow.predict_batch(pixels)
    assert got.shape == expected.shape == (2000, 10)
    assert np.allclose(got.sum(axis=1), 1.0)
    assert float(np.abs(got - expected).max()) < 1e-5
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()
    accuracy = float((got.argmax(axis=1) == mnist.test_labels[:2000]).mean())
    assert accuracy > 0.95


def test_batches_of_any_size_from_many_threads(model_root: Path, mnist: Mnist) -> None:
    model = LiteClassifier.load(model_root)
    pixels = mnist.test_images[:64]
    whole = model.predict_batch(pixels)
    # Sizes that make the interpreter resize, and back again.
    for start, size in [(0, 1), (1, 7), (8, 32), (40, 1), (41, 23)]:
        part = model.predict_batch(pixels[start : start + size])
        assert np.allclose(part, whole[start : start + size], atol=1e-6)

    def one(i: int) -> int:
        return int(model.predict_batch(pixels[i % 64 : i % 64 + 1])[0].argmax())

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(one, range(400)))
    assert answers == [int(whole[i % 64].argmax()) for i in range(400)]


def test_an_artifact_without_it_is_refused_and_export_adds_it(
    model_root: Path, mnist: Mnist, tmp_path: Path
) -> None:
    older = older_copy(model_root, tmp_path / "older")
    with pytest.raises(ArtifactError, match=r"has no model\.tflite .*`mnist-train export "):
        LiteClassifier.load(older)
    before = read_metadata(older)[1]

    directory, lite = export.export_artifact(older, mnist.test_images)
    assert directory == older
    after = read_metadata(older)[1]
    assert after.lite == lite
    assert after.model_copy(update={"lite": None}) == before  # nothing else changed
    assert lite.parity_examples == 10_000
    assert lite.parity_argmax_agreement >= export.MIN_AGREEMENT
    model = LiteClassifier.load(older)
    assert model.version == before.version
    reference = LiteClassifier.load(model_root).predict_batch(mnist.test_images[:100])
    assert np.allclose(model.predict_batch(mnist.test_images[:100]), reference, atol=1e-6)


def test_an_altered_litert_model_is_refused(model_root: Path, tmp_path: Path) -> None:
    artifact = tmp_path / "altered"
    shutil.copytree(resolve(model_root), artifact)
    with (artifact / LITE_FILE).open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ArtifactError, match=r"model\.tflite does not match the checksum"):
        LiteClassifier.load(artifact)


def test_a_conversion_that_reads_differently_is_never_written(
    model_root: Path,
    softmax_run: TrainResult,
    mnist: Mnist,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check compares the converted flatbuffer with the Keras model it came from: another
    model's flatbuffer (a real one, LiteRT loads it) must be refused, and the artifact left as
    it was."""
    other = (softmax_run.artifact_dir / LITE_FILE).read_bytes()
    cnn = Classifier.load(model_root).model
    with pytest.raises(export.ExportError, match="does not read the test set as TensorFlow does"):
        export.check(cnn, other, mnist.test_images)

    older = older_copy(model_root, tmp_path / "older")
    before = sorted(p.name for p in older.iterdir()), (older / METADATA_FILE).read_bytes()
    monkeypatch.setattr(export, "convert", lambda model: other)
    with pytest.raises(export.ExportError, match="the artifact is not written"):
        export.export_artifact(older, mnist.test_images)
    assert (sorted(p.name for p in older.iterdir()), (older / METADATA_FILE).read_bytes()) == before
