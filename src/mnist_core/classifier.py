"""A loaded artifact with its forward pass compiled once, for batches of any size.

Serving runs the compiled function on batches (``predict_batch``); ``mnist-train predict`` uses
the same call, so a digit is read the same way by both. ``predict_keras`` is the original system's
way, one ``model.predict`` per request, kept only as a benchmark's baseline.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from mnist_core.artifact import ArtifactMetadata, ArtifactModel, LoadedArtifact, load_artifact
from mnist_core.calibration import apply_temperature
from mnist_core.imaging import model_input
from mnist_core.runtime import import_tensorflow

if TYPE_CHECKING:
    import keras

Probabilities = npt.NDArray[np.float64]  # N x 10, each row sums to 1
Pixels = npt.NDArray[np.uint8]  # N x 28 x 28, MNIST's format


class Classifier(ArtifactModel):
    """A model artifact, ready to classify batches of 28x28 inputs."""

    def __init__(self, loaded: LoadedArtifact) -> None:
        tf = import_tensorflow()
        self.path: Path = loaded.path
        self.metadata: ArtifactMetadata = loaded.metadata
        self.model: keras.Model = loaded.model
        model = loaded.model
        self._forward = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32)],
        )

    @classmethod
    def load(cls, path: Path, *, tf_threads: int | None = None) -> Classifier:
        """Load the artifact at ``path`` (a folder, or one whose LATEST names one). With
        ``tf_threads``, TensorFlow's thread pools are sized first, which is possible only before
        TensorFlow runs its first operation in this process."""
        tf = import_tensorflow()
        if tf_threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(tf_threads)
                tf.config.threading.set_inter_op_parallelism_threads(tf_threads)
            except RuntimeError:
                pass
        return cls(load_artifact(path))

    def _normalise(self, raw: npt.NDArray[Any]) -> Probabilities:
        """Rows that sum to 1, calibrated by the artifact's temperature."""
        probabilities: Probabilities = np.asarray(raw, dtype=np.float64)
        normalised: Probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
        return apply_temperature(normalised, self.metadata.temperature)

    def predict_batch(self, pixels: Pixels) -> Probabilities:
        """Probabilities (N x 10) for N inputs: one call of the compiled function."""
        return self._normalise(self._forward(model_input(pixels)).numpy())

    def predict_keras(self, pixels: Pixels) -> Probabilities:
        """The original system's way: ``model.predict`` per request (benchmark baseline only)."""
        return self._normalise(self.model.predict(model_input(pixels), verbose=0))

    def warm_up(self, max_batch: int) -> None:
        """Run every batch size up to ``max_batch`` once: the first call at a new size builds
        kernels for it, which would otherwise land on a request."""
        for size in range(1, max_batch + 1):
            self.predict_batch(np.zeros((size, 28, 28), dtype=np.uint8))
