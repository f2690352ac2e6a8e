"""The versioned model artifact: a directory with the Keras model, the same model converted for
LiteRT, and ``metadata.json``.

Layout under an output root::

    models/
      LATEST                      # the version id of the newest artifact
      cnn-20261124T090000Z-1a2b3c4d/
        model.keras               # the trained Keras model (training, MNIST_API_RUNTIME=tensorflow)
        model.tflite              # converted for LiteRT (what the service runs by default)
        metadata.json

Artifacts written before LiteRT served the models have no ``model.tflite`` (and no ``lite`` in
their metadata); ``mnist-train export`` adds it.

The API loads exactly this. ``load_artifact`` accepts an artifact directory or a root holding
``LATEST``, and refuses anything incomplete or of an unknown format with a clear error.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mnist_core.errors import ArtifactError
from mnist_core.model_types import ModelType
from mnist_core.runtime import import_tensorflow
from mnist_core.verdicts import DEFAULT as DEFAULT_THRESHOLDS
from mnist_core.verdicts import Thresholds

if TYPE_CHECKING:
    import keras

ARTIFACT_FORMAT: Literal["mnist-artifact/1"] = "mnist-artifact/1"
MODEL_FILE = "model.keras"
LITE_FILE = "model.tflite"
METADATA_FILE = "metadata.json"
LATEST_FILE = "LATEST"


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int
    batch_size: int
    learning_rate: float
    optimizer: str
    seed: int
    train_examples: int
    augmentation: bool
    # The seed of the permutation that chose the validation images (see ``validation_examples``);
    # None when nothing was held out, as in artifacts written before the split existed.
    validation_seed: int | None = None
    # Networks trained apart (seeds ``seed``, ``seed + 1``, ...) whose probabilities the model
    # averages, and each one's accuracy on the validation images; 1 and empty for a single one.
    ensemble: int = Field(default=1, ge=1)
    member_validation_accuracy: tuple[float, ...] = ()
    # Non-digits trained toward the uniform answer (outlier exposure, ``mnist_train.negatives``);
    # 0 in artifacts written before it.
    negatives: int = Field(default=0, ge=0)


class LiteExport(BaseModel):
    """``model.tflite``, and how closely LiteRT reads the test set like TensorFlow does: written
    only when it does, within ``max_difference`` and ``argmax_agreement`` limits checked at
    export (``mnist_train.export``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str
    converter: str  # what converted it, e.g. "tensorflow 2.21.0"
    parity_examples: int = Field(gt=0)  # test images compared
    parity_max_difference: float = Field(ge=0)  # largest |probability difference|
    parity_argmax_agreement: float = Field(ge=0, le=1)  # share read as the same digit


class ExtraData(BaseModel):
    """Corrections mixed into the training (``mnist-train train --extra``): the file, and what of
    it went in. The held-out fifth never does."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    sha256: str
    examples: int = Field(ge=0)  # trained on
    held_out: int = Field(ge=0)  # left for ``mnist-train compare``
    weight: float = Field(gt=0)  # of each correction's loss, against 1 for an MNIST image


class Calibration(BaseModel):
    """Temperature scaling fitted on the validation split (``mnist_core.calibration``), which
    both runtimes apply to every answer, and the expected calibration error (15 bins) it leaves
    on the test set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(gt=0)
    validation_nll_before: float
    validation_nll_after: float
    test_ece_before: float = Field(ge=0, le=1)
    test_ece_after: float = Field(ge=0, le=1)


class ArtifactMetadata(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    format: Literal["mnist-artifact/1"] = ARTIFACT_FORMAT
    version: str
    model_type: ModelType
    hyperparameters: Hyperparameters
    test_accuracy: float = Field(ge=0, le=1)
    # Accuracy on the training images held out for validation (taken from the training file,
    # never from the test set), and how many there were. Artifacts written before the split
    # existed have neither: they read as 0 images and None.
    validation_accuracy: float | None = Field(default=None, ge=0, le=1)
    validation_examples: int = Field(default=0, ge=0)
    per_class_accuracy: list[float] = Field(min_length=10, max_length=10)
    training_seconds: float
    tensorflow_version: str
    keras_version: str
    data_checksums: dict[str, str]
    created_at: datetime
    input_shape: tuple[int, int, int] = (28, 28, 1)
    input_polarity: Literal["white-on-black"] = "white-on-black"
    model_sha256: str
    lite: LiteExport | None = None
    extra: ExtraData | None = None
    init_from: str | None = None  # the version of the model this one was fine-tuned from
    calibration: Calibration | None = None  # artifacts written before it: a temperature of 1
    # Verdict thresholds fitted on the validation split (``mnist_core.verdicts``).
    verdicts: Thresholds | None = None

    @property
    def temperature(self) -> float:
        return self.calibration.temperature if self.calibration is not None else 1.0

    @property
    def thresholds(self) -> Thresholds:
        return self.verdicts if self.verdicts is not None else DEFAULT_THRESHOLDS

    @model_validator(mode="after")
    def _validation_is_all_or_nothing(self) -> ArtifactMetadata:
        held_out = self.validation_examples > 0
        if held_out != (self.validation_accuracy is not None) or held_out != (
            self.hyperparameters.validation_seed is not None
        ):
            raise ValueError(
                "validation_examples, validation_accuracy and hyperparameters.validation_seed "
                "must be all set (a validation split) or all unset (none)"
            )
        return self


@dataclass(frozen=True)
class LoadedArtifact:
    path: Path
    metadata: ArtifactMetadata
    model: keras.Model


class ArtifactModel:
    """What a loaded artifact tells about itself, whichever runtime runs it."""

    path: Path
    metadata: ArtifactMetadata

    @property
    def version(self) -> str:
        return self.metadata.version

    @property
    def test_accuracy(self) -> float:
        return self.metadata.test_accuracy


def new_version(model_type: ModelType, created_at: datetime, model_sha256: str) -> str:
    return f"{model_type}-{created_at.strftime('%Y%m%dT%H%M%SZ')}-{model_sha256[:8]}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve(path: Path) -> Path:
    """The artifact directory that ``path`` names: itself, or the one its ``LATEST`` points to."""
    if (path / METADATA_FILE).exists() or (path / MODEL_FILE).exists():
        return path
    latest = path / LATEST_FILE
    if latest.is_file():
        version = latest.read_text(encoding="utf-8").strip()
        if not version or "/" in version or version.startswith("."):
            raise ArtifactError(f"{latest} does not name an artifact")
        return path / version
    if not path.exists():
        raise ArtifactError(f"no model artifact at {path}: train one with `mnist-train train`")
    raise ArtifactError(
        f"{path} is not a model artifact (no {METADATA_FILE}, {MODEL_FILE} or {LATEST_FILE})"
    )


def read_metadata(path: Path) -> tuple[Path, ArtifactMetadata]:
    """Resolve ``path`` and validate its metadata and files without loading TensorFlow."""
    directory = resolve(path)
    meta_path, model_path = directory / METADATA_FILE, directory / MODEL_FILE
    for required in (meta_path, model_path):
        if not required.is_file():
            raise ArtifactError(f"incomplete artifact {directory}: {required.name} is missing")
    try:
        raw = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{meta_path} is not readable JSON: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != ARTIFACT_FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else None
        raise ArtifactError(
            f"{directory} has artifact format {found!r}; this version reads {ARTIFACT_FORMAT!r}"
        )
    try:
        metadata = ArtifactMetadata.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the top level"
        raise ArtifactError(f"{meta_path} is invalid at {where}: {first['msg']}") from exc
    if file_sha256(model_path) != metadata.model_sha256:
        raise ArtifactError(f"{model_path} does not match the checksum in {METADATA_FILE}")
    return directory, metadata


def load_artifact(path: Path) -> LoadedArtifact:
    """Load the Keras model and metadata of the artifact at ``path``."""
    directory, metadata = read_metadata(path)
    import_tensorflow()  # only once the artifact is known to be complete
    import keras

    try:
        model = keras.saving.load_model(directory / MODEL_FILE, compile=False)
    except Exception as exc:  # Keras raises many types for a bad file
        raise ArtifactError(f"cannot load {directory / MODEL_FILE}: {exc}") from exc
    if tuple(model.input_shape[1:]) != metadata.input_shape or model.output_shape[-1] != 10:
        raise ArtifactError(
            f"{directory}: model shapes {model.input_shape} -> {model.output_shape} "
            "do not fit 28x28x1 -> 10"
        )
    return LoadedArtifact(directory, metadata, model)


def save_artifact(
    model: keras.Model,
    output_root: Path,
    *,
    model_type: ModelType,
    build_metadata: dict[str, object],
    lite: bytes | None = None,
    created_at: datetime | None = None,
) -> tuple[Path, ArtifactMetadata]:
    """Write ``model`` (and ``lite``, its LiteRT conversion, described by
    ``build_metadata["lite"]``) and its metadata under ``output_root`` and point ``LATEST`` at it.

    The artifact is written to a temporary directory and renamed into place, so a crash never
    leaves a half-written artifact under its final name.
    """
    created = (created_at or datetime.now(UTC)).replace(microsecond=0)
    staging = output_root / f".staging-{created.strftime('%Y%m%dT%H%M%S')}-{id(model)}"
    try:
        output_root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        model.save(staging / MODEL_FILE)
        model_sha = file_sha256(staging / MODEL_FILE)
        if (lite is None) != (build_metadata.get("lite") is None):
            raise ArtifactError("the LiteRT model and its description go together")
        if lite is not None:
            (staging / LITE_FILE).write_bytes(lite)
        version = new_version(model_type, created, model_sha)
        metadata = ArtifactMetadata.model_validate(
            {
                **build_metadata,
                "version": version,
                "model_type": model_type,
                "created_at": created,
                "model_sha256": model_sha,
            }
        )
        (staging / METADATA_FILE).write_text(metadata.model_dump_json(indent=2) + "\n", "utf-8")
        final = output_root / version
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    except OSError as exc:
        raise ArtifactError(f"cannot write the artifact under {output_root}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _replace(output_root / LATEST_FILE, (version + "\n").encode())
    return final, metadata


def _replace(path: Path, content: bytes) -> None:
    """Write ``path`` whole or not at all: a temporary file renamed over it."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_bytes(content)
        temporary.replace(path)
    except OSError as exc:
        raise ArtifactError(f"cannot write {path}: {exc}") from exc


def promote(candidate: Path, root: Path) -> ArtifactMetadata:
    """Make the artifact ``candidate`` names the one ``root`` serves: copied under ``root`` (unless
    it is there already) and named by ``root/LATEST``, which a running service follows. Only a
    complete artifact with its LiteRT model is promoted."""
    directory, metadata = read_metadata(candidate)
    if metadata.lite is None or not (directory / LITE_FILE).is_file():
        raise ArtifactError(
            f"{directory} has no {LITE_FILE}, which the service runs: add it with "
            "`mnist-train export` first"
        )
    final = root / metadata.version
    if final.resolve() != directory.resolve():
        if final.exists():
            raise ArtifactError(f"{final} exists already and is another copy of the artifact")
        staging = root / f".promoting-{metadata.version}"
        try:
            root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(directory, staging)
            staging.rename(final)
        except OSError as exc:
            raise ArtifactError(f"cannot copy {directory} under {root}: {exc}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    read_metadata(final)  # the copy checks out, as the service will check it
    _replace(root / LATEST_FILE, (metadata.version + "\n").encode())
    return metadata


def add_lite(path: Path, lite: bytes, export: LiteExport) -> ArtifactMetadata:
    """Add (or replace) the LiteRT model of the artifact at ``path``: the file first, then the
    metadata that names its checksum, so that a crash between the two leaves an artifact that
    still reads as it did."""
    directory, metadata = read_metadata(path)
    _replace(directory / LITE_FILE, lite)
    updated = metadata.model_copy(update={"lite": export})
    _replace(directory / METADATA_FILE, (updated.model_dump_json(indent=2) + "\n").encode())
    return updated
