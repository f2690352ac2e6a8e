"""The artifact's ``model.tflite``, run by LiteRT: how the service reads digits by default.

LiteRT (``ai-edge-litert``) is TensorFlow's own inference runtime: the same graph, converted from
the trained Keras model when the artifact is written, run by a small interpreter with XNNPACK's
CPU kernels and without TensorFlow in the process. Its ``invoke()`` releases the GIL.

An interpreter is not safe to share between threads: a call takes one from a pool (making one
when every interpreter is busy, so there are never more than the calls at once) and gives it
back. An interpreter holds one input shape at a time: a batch of another size resizes it first,
which costs microseconds.

``Classifier`` (TensorFlow) and ``LiteClassifier`` answer the same calls, so serving takes either
(``MNIST_API_RUNTIME``), and training checks, before it writes an artifact, that this one reads
the test set like TensorFlow does (``mnist_train.export``).
"""

from __future__ import annotations

import hashlib
import queue
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mnist_core.artifact import LITE_FILE, ArtifactMetadata, ArtifactModel, read_metadata
from mnist_core.calibration import apply_temperature
from mnist_core.errors import ArtifactError
from mnist_core.imaging import model_input
from mnist_core.runtime import quietly

Probabilities = npt.NDArray[np.float64]  # N x 10, each row sums to 1
Pixels = npt.NDArray[np.uint8]  # N x 28 x 28, MNIST's format


class _Runner:
    """One interpreter, used by one thread at a time."""

    def __init__(self, content: bytes) -> None:
        from ai_edge_litert.interpreter import Interpreter

        # The first allocation applies XNNPACK, which says so on descriptor 2 ("INFO: Created
        # TensorFlow Lite XNNPACK delegate for CPU."), once per interpreter.
        with quietly():
            self.interpreter = Interpreter(model_content=content, num_threads=1)
            self.interpreter.allocate_tensors()
        (given,) = self.interpreter.get_input_details()
        (answer,) = self.interpreter.get_output_details()
        if tuple(given["shape_signature"][1:]) != (28, 28, 1) or answer["shape"][-1] != 10:
            raise ArtifactError(
                f"the LiteRT model takes {given['shape_signature']} and answers "
                f"{answer['shape']}; expected 28x28x1 -> 10"
            )
        self.input: int = given["index"]
        self.output: int = answer["index"]
        self.size = 0

    def __call__(self, inputs: npt.NDArray[np.float32]) -> npt.NDArray[Any]:
        interpreter = self.interpreter
        if len(inputs) != self.size:
            interpreter.resize_tensor_input(self.input, list(inputs.shape), strict=False)
            interpreter.allocate_tensors()
            self.size = len(inputs)
        interpreter.set_tensor(self.input, inputs)
        interpreter.invoke()
        result: npt.NDArray[Any] = interpreter.get_tensor(self.output)
        return result


class LiteModel:
    """A TFLite flatbuffer, ready to classify batches of 28x28 inputs from any thread."""

    def __init__(self, content: bytes) -> None:
        self._content = content
        self._idle: queue.SimpleQueue[_Runner] = queue.SimpleQueue()
        # A model LiteRT cannot read fails here, not on the first request.
        self._idle.put(_Runner(content))

    def predict_batch(self, pixels: Pixels) -> Probabilities:
        """Probabilities (N x 10) for N inputs: one ``invoke`` of an idle interpreter."""
        try:
            runner = self._idle.get_nowait()
        except queue.Empty:
            runner = _Runner(self._content)
        try:
            raw = np.asarray(runner(model_input(pixels)), dtype=np.float64)
        finally:
            self._idle.put(runner)
        normalised: Probabilities = raw / raw.sum(axis=1, keepdims=True)
        return normalised


class LiteClassifier(LiteModel, ArtifactModel):
    """A model artifact served by LiteRT: the same calls as ``mnist_core.classifier.Classifier``
    without TensorFlow."""

    def __init__(self, path: Path, metadata: ArtifactMetadata, content: bytes) -> None:
        self.path = path
        self.metadata = metadata
        super().__init__(content)

    def predict_batch(self, pixels: Pixels) -> Probabilities:
        """Calibrated probabilities: the artifact's temperature applied."""
        return apply_temperature(super().predict_batch(pixels), self.metadata.temperature)

    @classmethod
    def load(cls, path: Path) -> LiteClassifier:
        """The artifact at ``path`` (a folder, or one whose LATEST names one), by its
        ``model.tflite``, checked against the checksum in its metadata."""
        directory, metadata = read_metadata(path)
        lite_path = directory / LITE_FILE
        if metadata.lite is None or not lite_path.is_file():
            raise ArtifactError(
                f"{directory} has no {LITE_FILE} (written before LiteRT served the models): add "
                f"it with `mnist-train export {directory}`, or serve it with "
                "MNIST_API_RUNTIME=tensorflow"
            )
        content = lite_path.read_bytes()
        if hashlib.sha256(content).hexdigest() != metadata.lite.sha256:
            raise ArtifactError(f"{lite_path} does not match the checksum in the metadata")
        try:
            return cls(directory, metadata, content)
        except ValueError as exc:  # LiteRT's word for a flatbuffer it cannot read
            raise ArtifactError(f"LiteRT cannot load {lite_path}: {exc}") from exc

    def warm_up(self, max_batch: int) -> None:
        """A call at batch 1 and at ``max_batch``, so that the first request finds XNNPACK's
        kernels ready."""
        for size in sorted({1, max_batch}):
            self.predict_batch(np.zeros((size, 28, 28), dtype=np.uint8))
