"""The versioned model artifact: what is saved is what is loaded, its metadata tells the truth,
``LATEST`` names the newest, and anything incomplete or altered is refused with a clear error."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from mnist_core.artifact import (
    ARTIFACT_FORMAT,
    LATEST_FILE,
    LITE_FILE,
    METADATA_FILE,
    MODEL_FILE,
    ArtifactMetadata,
    load_artifact,
    read_metadata,
    save_artifact,
)
from mnist_core.errors import ArtifactError, MnistError
from mnist_core.imaging import model_input
from mnist_train.data import Mnist
from mnist_train.evaluate import evaluate
from mnist_train.models import ModelType, build
from mnist_train.train import TrainResult

# Keras 3.15 on TensorFlow 2.21 with NumPy 2 warns from inside ``fit`` (TF tensors' ``__array__``
# lacks the ``copy`` keyword); that is theirs, not ours, and must not fail the run.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

VERSION = re.compile(r"^(softmax|cnn)-\d{8}T\d{6}Z-[0-9a-f]{8}$")


def build_metadata(mnist: Mnist, model_type: ModelType = "softmax") -> dict[str, object]:
    return {
        "hyperparameters": {
            "epochs": 1,
            "batch_size": 100,
            "learning_rate": 0.5,
            "optimizer": "sgd",
            "seed": 1,
            "train_examples": 1000,
            "augmentation": model_type == "cnn",
        },
        "test_accuracy": 0.5,
        "per_class_accuracy": [0.5] * 10,
        "training_seconds": 1.0,
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "data_checksums": mnist.checksums,
    }


def fitted(model_type: ModelType, mnist: Mnist, examples: int) -> keras.Model:
    """A model fitted briefly in memory, so that its weights (and batch-norm state) are not
    the initial ones."""
    keras.utils.set_random_seed(11)
    model = build(model_type)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(
        model_input(mnist.train_images[:examples]),
        mnist.train_labels[:examples],
        batch_size=64,
        epochs=1,
        verbose=0,
    )
    return model


@pytest.fixture(scope="module")
def saved(mnist: Mnist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small softmax artifact; tests that damage it work on a artifact."""
    root = tmp_path_factory.mktemp("artifact")
    directory, _ = save_artifact(
        fitted("softmax", mnist, 1000),
        root,
        model_type="softmax",
        build_metadata=build_metadata(mnist),
    )
    return directory


@pytest.fixture
def artifact(saved: Path, tmp_path: Path) -> Path:
    target = tmp_path / saved.name
    shutil.copytree(saved, target)
    return target


def refusal(path: Path) -> str:
    with pytest.raises(ArtifactError) as caught:
        load_artifact(path)
    assert isinstance(caught.value, MnistError)
    message = str(caught.value)
    assert "\n" not in message
    return message


# Round trips.


@pytest.mark.slow
@pytest.mark.parametrize(("model_type", "examples"), [("softmax", 1000), ("cnn", 512)])
def test_loaded_model_predicts_exactly_as_saved(
    model_type: ModelType, examples: int, mnist: Mnist, tmp_path: Path
) -> None:
    model = fitted(model_type, mnist, examples)
    directory, metadata = save_artifact(
        model, tmp_path, model_type=model_type, build_metadata=build_metadata(mnist, model_type)
    )
    loaded = load_artifact(directory)
    x = model_input(mnist.test_images[:100])
    expected = model.predict(x, verbose=0)
    actual = loaded.model.predict(x, verbose=0)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(actual.argmax(axis=1), expected.argmax(axis=1))
    assert loaded.metadata == metadata
    assert loaded.path == directory
    assert loaded.model.input_shape == (None, 28, 28, 1)
    assert loaded.model.output_shape == (None, 10)


@pytest.mark.slow
def test_trained_artifact_reproduces_its_evaluation(softmax_run: TrainResult, mnist: Mnist) -> None:
    loaded = load_artifact(softmax_run.artifact_dir)
    again = evaluate(loaded.model, model_input(mnist.test_images), mnist.test_labels)
    np.testing.assert_array_equal(again.confusion, softmax_run.evaluation.confusion)
    assert again.accuracy == loaded.metadata.test_accuracy == softmax_run.metadata.test_accuracy
    assert again.per_class_accuracy == loaded.metadata.per_class_accuracy


# Metadata.


@pytest.mark.slow
def test_metadata_of_a_trained_artifact(
    softmax_run: TrainResult, published_sha256: dict[str, str]
) -> None:
    directory = softmax_run.artifact_dir
    meta = softmax_run.metadata
    assert meta.format == ARTIFACT_FORMAT == "mnist-artifact/1"
    assert meta.model_type == "softmax"
    assert meta.version.startswith("softmax-")
    assert VERSION.match(meta.version), meta.version
    assert directory.name == meta.version
    assert len(meta.per_class_accuracy) == 10
    assert all(0.0 <= a <= 1.0 for a in meta.per_class_accuracy)
    assert 0.0 <= meta.test_accuracy <= 1.0
    assert meta.tensorflow_version == tf.__version__
    assert meta.keras_version == keras.__version__
    assert meta.data_checksums == published_sha256
    assert meta.created_at.tzinfo is not None
    assert meta.created_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - meta.created_at) < timedelta(hours=1)
    assert meta.input_shape == (28, 28, 1)
    assert meta.input_polarity == "white-on-black"
    assert meta.training_seconds > 0
    assert meta.hyperparameters.seed == 3
    # Both figures: on the held-out training images, and on the test set.
    assert meta.validation_examples == 5000
    assert meta.hyperparameters.validation_seed == 3
    assert meta.validation_accuracy is not None
    assert 0.0 <= meta.validation_accuracy <= 1.0
    # The model file is the one described, and the version carries the start of its checksum.
    digest = hashlib.sha256((directory / MODEL_FILE).read_bytes()).hexdigest()
    assert meta.model_sha256 == digest
    assert meta.version.endswith(digest[:8])


@pytest.mark.slow
def test_metadata_file_is_plain_json(softmax_run: TrainResult) -> None:
    raw = json.loads((softmax_run.artifact_dir / METADATA_FILE).read_text(encoding="utf-8"))
    assert raw["format"] == "mnist-artifact/1"
    assert raw["version"] == softmax_run.metadata.version
    assert datetime.fromisoformat(raw["created_at"]).tzinfo is not None
    assert ArtifactMetadata.model_validate(raw) == softmax_run.metadata
    files = sorted(p.name for p in softmax_run.artifact_dir.iterdir())
    assert files == sorted([METADATA_FILE, MODEL_FILE, LITE_FILE])
    assert raw["lite"]["parity_examples"] == 10_000
    assert raw["validation_accuracy"] == softmax_run.metadata.validation_accuracy
    assert raw["validation_examples"] == 5000
    assert raw["hyperparameters"]["validation_seed"] == 3


@pytest.mark.slow
def test_trained_artifact_loads_back_with_both_accuracies(softmax_run: TrainResult) -> None:
    _, metadata = read_metadata(softmax_run.artifact_dir)
    assert metadata == load_artifact(softmax_run.artifact_dir).metadata == softmax_run.metadata
    assert metadata.validation_accuracy == softmax_run.validation.accuracy
    assert metadata.test_accuracy == softmax_run.evaluation.accuracy


# LATEST.


@pytest.mark.slow
def test_latest_names_the_trained_artifact(softmax_run: TrainResult) -> None:
    root = softmax_run.artifact_dir.parent
    latest = (root / LATEST_FILE).read_text(encoding="utf-8")
    assert latest == softmax_run.metadata.version + "\n"
    assert load_artifact(root).path == softmax_run.artifact_dir
    # Nothing half-written is left: no staging folder, no temporary LATEST.
    assert sorted(p.name for p in root.iterdir()) == sorted([LATEST_FILE, latest.strip()])


def test_latest_follows_the_newest_save(mnist: Mnist, tmp_path: Path) -> None:
    model = build("softmax")
    first, _ = save_artifact(
        model,
        tmp_path,
        model_type="softmax",
        build_metadata=build_metadata(mnist),
        created_at=datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC),
    )
    model.get_layer("probabilities").bias.assign(np.arange(10, dtype=np.float32))
    second, meta = save_artifact(
        model,
        tmp_path,
        model_type="softmax",
        build_metadata=build_metadata(mnist),
        created_at=datetime(2026, 1, 2, 12, 0, 0, 123456, tzinfo=UTC),
    )
    assert first != second
    assert first.name.startswith("softmax-20260101T120000Z-")
    assert second.name.startswith("softmax-20260102T120000Z-")
    assert meta.created_at == datetime(2026, 1, 2, 12, 0, 0, tzinfo=UTC)
    assert (tmp_path / LATEST_FILE).read_text(encoding="utf-8").strip() == second.name
    assert load_artifact(tmp_path).path == second
    assert load_artifact(first).path == first  # an older version stays loadable by its folder
    bias = load_artifact(tmp_path).model.get_layer("probabilities").bias.numpy()
    np.testing.assert_array_equal(bias, np.arange(10, dtype=np.float32))


def test_latest_naming_a_missing_version(artifact: Path) -> None:
    root = artifact.parent
    (root / LATEST_FILE).write_text("softmax-20990101T000000Z-deadbeef\n", encoding="utf-8")
    message = refusal(root)
    assert "softmax-20990101T000000Z-deadbeef" in message


@pytest.mark.parametrize("content", ["", "\n", "../elsewhere", "/etc", ".hidden"])
def test_latest_that_does_not_name_an_artifact(artifact: Path, content: str) -> None:
    root = artifact.parent
    (root / LATEST_FILE).write_text(content, encoding="utf-8")
    assert "does not name an artifact" in refusal(root)


# Refusals.


def test_missing_model_file(artifact: Path) -> None:
    (artifact / MODEL_FILE).unlink()
    message = refusal(artifact)
    assert "incomplete artifact" in message
    assert "model.keras is missing" in message


def test_missing_metadata_file(artifact: Path) -> None:
    (artifact / METADATA_FILE).unlink()
    message = refusal(artifact)
    assert "incomplete artifact" in message
    assert "metadata.json is missing" in message


def test_unknown_format(artifact: Path) -> None:
    path = artifact / METADATA_FILE
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["format"] = "mnist-artifact/2"
    path.write_text(json.dumps(raw), encoding="utf-8")
    message = refusal(artifact)
    assert "'mnist-artifact/2'" in message
    assert "reads 'mnist-artifact/1'" in message


def test_metadata_without_format(artifact: Path) -> None:
    (artifact / METADATA_FILE).write_text('["not", "an", "object"]', encoding="utf-8")
    assert "artifact format None" in refusal(artifact)


def test_invalid_json(artifact: Path) -> None:
    (artifact / METADATA_FILE).write_text('{"format": "mnist-artifact/1", ', encoding="utf-8")
    message = refusal(artifact)
    assert "not readable JSON" in message
    assert METADATA_FILE in message


def test_metadata_that_is_not_utf8(artifact: Path) -> None:
    (artifact / METADATA_FILE).write_bytes(b'{"format": "\xff\xfe"}')
    assert "not readable JSON" in refusal(artifact)


def test_metadata_with_an_invalid_field(artifact: Path) -> None:
    path = artifact / METADATA_FILE
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["per_class_accuracy"] = raw["per_class_accuracy"][:9]
    path.write_text(json.dumps(raw), encoding="utf-8")
    assert "invalid at per_class_accuracy" in refusal(artifact)


def test_metadata_with_a_missing_field(artifact: Path) -> None:
    path = artifact / METADATA_FILE
    raw = json.loads(path.read_text(encoding="utf-8"))
    del raw["model_sha256"]
    path.write_text(json.dumps(raw), encoding="utf-8")
    assert "invalid at model_sha256" in refusal(artifact)


# Artifacts written before the validation split: no validation fields at all.
OLD_METADATA_KEYS = {
    "format", "version", "model_type", "hyperparameters", "test_accuracy", "per_class_accuracy",
    "training_seconds", "tensorflow_version", "keras_version", "data_checksums", "created_at",
    "input_shape", "input_polarity", "model_sha256",
}  # fmt: skip
OLD_HYPERPARAMETER_KEYS = {
    "epochs", "batch_size", "learning_rate", "optimizer", "seed", "train_examples", "augmentation",
}  # fmt: skip


def test_metadata_written_before_the_validation_split_still_loads(artifact: Path) -> None:
    path = artifact / METADATA_FILE
    raw = json.loads(path.read_text(encoding="utf-8"))
    old = {key: value for key, value in raw.items() if key in OLD_METADATA_KEYS}
    old["hyperparameters"] = {
        key: value
        for key, value in raw["hyperparameters"].items()
        if key in OLD_HYPERPARAMETER_KEYS
    }
    assert set(old) == OLD_METADATA_KEYS
    assert set(old["hyperparameters"]) == OLD_HYPERPARAMETER_KEYS
    path.write_text(json.dumps(old, indent=2), encoding="utf-8")
    loaded = load_artifact(artifact)
    assert loaded.metadata.format == "mnist-artifact/1"
    assert loaded.metadata.validation_accuracy is None
    assert loaded.metadata.validation_examples == 0
    assert loaded.metadata.hyperparameters.validation_seed is None
    assert loaded.metadata.test_accuracy == raw["test_accuracy"]


@pytest.mark.parametrize(
    ("change", "where"),
    [
        # A split without its figure, or a figure without a split, is not believed.
        ({"validation_examples": 5000}, "the top level"),
        ({"validation_accuracy": 0.9}, "the top level"),
        ({"validation_accuracy": 0.9, "validation_examples": 5000}, "the top level"),
        ({"validation_accuracy": 1.5, "validation_examples": 5000}, "validation_accuracy"),
        ({"validation_examples": -1}, "validation_examples"),
        ({"validation_set": "test"}, "validation_set"),  # unknown fields are still refused
    ],
)
def test_metadata_with_inconsistent_validation_fields(
    artifact: Path, change: dict[str, object], where: str
) -> None:
    path = artifact / METADATA_FILE
    raw = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(raw | change), encoding="utf-8")
    assert f"invalid at {where}" in refusal(artifact)


def test_metadata_with_a_complete_validation_split(artifact: Path) -> None:
    path = artifact / METADATA_FILE
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw |= {"validation_accuracy": 0.9, "validation_examples": 5000}
    raw["hyperparameters"]["validation_seed"] = 1
    path.write_text(json.dumps(raw), encoding="utf-8")
    _, metadata = read_metadata(artifact)
    assert (metadata.validation_accuracy, metadata.validation_examples) == (0.9, 5000)


def test_altered_model_file(artifact: Path) -> None:
    with (artifact / MODEL_FILE).open("ab") as handle:
        handle.write(b"\0")
    message = refusal(artifact)
    assert "does not match the checksum" in message
    assert MODEL_FILE in message


def test_model_file_that_keras_cannot_load(artifact: Path) -> None:
    # A consistent checksum, so that it is Keras that refuses the file.
    (artifact / MODEL_FILE).write_bytes(b"not a keras archive")
    path = artifact / METADATA_FILE
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["model_sha256"] = hashlib.sha256(b"not a keras archive").hexdigest()
    path.write_text(json.dumps(raw), encoding="utf-8")
    assert "cannot load" in refusal(artifact)


def test_model_of_the_wrong_shape(artifact: Path) -> None:
    inputs = keras.Input(shape=(8, 8, 1))
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(inputs))
    keras.Model(inputs, outputs).save(artifact / MODEL_FILE)
    path = artifact / METADATA_FILE
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["model_sha256"] = hashlib.sha256((artifact / MODEL_FILE).read_bytes()).hexdigest()
    path.write_text(json.dumps(raw), encoding="utf-8")
    assert "do not fit 28x28x1 -> 10" in refusal(artifact)


def test_nonexistent_path(tmp_path: Path) -> None:
    message = refusal(tmp_path / "no-such-folder")
    assert "no model artifact at" in message
    assert "no-such-folder" in message


def test_folder_that_is_not_an_artifact(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    message = refusal(tmp_path)
    assert "is not a model artifact" in message


def test_read_metadata_checks_without_loading_the_model(artifact: Path, saved: Path) -> None:
    directory, metadata = read_metadata(artifact)
    assert directory == artifact
    assert metadata.version == saved.name


def test_save_to_a_path_that_is_a_file(mnist: Mnist, tmp_path: Path) -> None:
    """The output folder cannot be created: one ArtifactError, not a raw OSError."""
    target = tmp_path / "models"
    target.write_text("a file, not a folder", encoding="utf-8")
    with pytest.raises(ArtifactError, match="cannot write the artifact"):
        save_artifact(
            build("softmax"), target, model_type="softmax", build_metadata=build_metadata(mnist)
        )
