"""The JSON bodies of the models API: the model serving, and what a reload did."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from mnist_api.kernel.schemas import Double
from mnist_api.models.registry import Reloaded, ServedModel
from mnist_core.verdicts import Thresholds


class ModelCorrections(BaseModel):
    """Corrections that went into the training (``mnist-train train --extra``)."""

    file: str
    sha256: str
    examples: int = Field(description="corrections trained on")
    held_out: int = Field(description="corrections held out for `mnist-train compare`")
    weight: Double = Field(description="of each, against one MNIST image")


class ModelTraining(BaseModel):
    """What the model was trained on, and how."""

    train_examples: int = Field(description="training images (MNIST, and corrections)")
    validation_examples: int = Field(description="MNIST training images held out")
    epochs: int
    ensemble: int = Field(description="networks averaged into the model")
    seed: int
    training_seconds: Double
    fine_tuned_from: str | None = Field(description="the model it started from (--init)")
    corrections: ModelCorrections | None


class ModelCalibration(BaseModel):
    """Temperature scaling, fitted on the validation split and applied to every answer."""

    temperature: Double
    test_ece_before: Double = Field(description="expected calibration error on MNIST test")
    test_ece_after: Double


class VerdictThresholds(BaseModel):
    """How a confidence becomes a verdict: below `not_a_digit_below`, `not_a_digit`; below
    `uncertain_below`, `uncertain`; otherwise `digit`."""

    not_a_digit_below: Double = Field(ge=0, le=1)
    uncertain_below: Double = Field(ge=0, le=1)
    negatives_trained: int = Field(
        description="non-digits the model was trained on (outlier exposure); 0: its confidence "
        "was never taught to fall on non-digits"
    )
    source: Literal["model", "settings"] = Field(
        description="model: fitted on the validation split at training; settings: set by "
        "MNIST_API_NOT_A_DIGIT_BELOW / MNIST_API_UNCERTAIN_BELOW"
    )


class ModelInfo(BaseModel):
    version: str
    model_type: str = Field(description="cnn or softmax")
    runtime: Literal["litert", "tensorflow"]
    created_at: datetime = Field(description="when the artifact was written")
    loaded_at: datetime = Field(description="when this worker started serving it")
    test_accuracy: Double = Field(description="on the MNIST test set")
    validation_accuracy: Double | None
    per_class_accuracy: list[Double] = Field(description="on the MNIST test set, digit 0 first")
    training: ModelTraining
    calibration: ModelCalibration | None = Field(
        description="null: a model trained before calibration (temperature 1)"
    )
    verdicts: VerdictThresholds = Field(description="the thresholds in force on this worker")

    @classmethod
    def of(
        cls,
        served: ServedModel,
        runtime: Literal["litert", "tensorflow"],
        thresholds: Thresholds,
    ) -> ModelInfo | None:
        meta, loaded_at = served.metadata, served.loaded_at
        if meta is None or loaded_at is None:
            return None
        hyper, extra, calibration = meta.hyperparameters, meta.extra, meta.calibration
        return cls(
            version=meta.version,
            model_type=meta.model_type,
            runtime=runtime,
            created_at=meta.created_at,
            loaded_at=loaded_at,
            test_accuracy=meta.test_accuracy,
            validation_accuracy=meta.validation_accuracy,
            per_class_accuracy=meta.per_class_accuracy,
            training=ModelTraining(
                train_examples=hyper.train_examples,
                validation_examples=meta.validation_examples,
                epochs=hyper.epochs,
                ensemble=hyper.ensemble,
                seed=hyper.seed,
                training_seconds=meta.training_seconds,
                fine_tuned_from=meta.init_from,
                corrections=ModelCorrections(**extra.model_dump()) if extra is not None else None,
            ),
            calibration=ModelCalibration(
                temperature=calibration.temperature,
                test_ece_before=calibration.test_ece_before,
                test_ece_after=calibration.test_ece_after,
            )
            if calibration is not None
            else None,
            verdicts=VerdictThresholds(
                not_a_digit_below=thresholds.not_a_digit_below,
                uncertain_below=thresholds.uncertain_below,
                negatives_trained=hyper.negatives,
                source="model" if thresholds == meta.thresholds else "settings",
            ),
        )


class Models(BaseModel):
    serving: ModelInfo | None = Field(
        description="the model answering this worker's requests (null: the service runs "
        "without one)"
    )


class ModelReload(BaseModel):
    changed: bool = Field(description="whether another model now serves")
    version: str = Field(description="the model serving now")
    previous: str = Field(description="the model serving before")

    @classmethod
    def of(cls, reloaded: Reloaded) -> ModelReload:
        return cls(changed=reloaded.changed, version=reloaded.version, previous=reloaded.previous)
