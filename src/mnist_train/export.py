"""The trained Keras model converted for LiteRT, and checked before it is written: on the test
images, LiteRT (the same ``mnist_core.lite`` that serves it) must read every image as TensorFlow
does, its probabilities within ``MAX_DIFFERENCE``, the same digit for at least
``MIN_AGREEMENT`` of them. An artifact that fails is not written."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mnist_core.artifact import LiteExport, add_lite, load_artifact
from mnist_core.errors import MnistError
from mnist_core.imaging import model_input
from mnist_core.lite import LiteModel, Pixels, Probabilities

if TYPE_CHECKING:
    import keras

MAX_DIFFERENCE = 1e-4  # float32 kernels differ in rounding only: about 1e-7 in practice
MIN_AGREEMENT = 0.9999  # at most one near-tie in 10,000 read as another digit
BATCH = 1000


class ExportError(MnistError):
    """The model cannot be converted, or LiteRT does not read it as TensorFlow does."""


@contextlib.contextmanager
def _captured() -> Iterator[None]:
    """The converter's chatter (a signature listing on stdout, MLIR passes on descriptor 2)
    held back; shown only when the conversion fails."""
    log = io.StringIO()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    chatter = ""
    with tempfile.TemporaryFile() as sink, contextlib.redirect_stdout(log):
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            sink.seek(0)
            chatter = log.getvalue() + sink.read().decode("utf-8", errors="replace")
            raise
        finally:
            for fd, original in zip((1, 2), saved, strict=True):
                os.dup2(original, fd)
                os.close(original)
            if chatter:
                sys.stderr.write(chatter)


def convert(model: keras.Model) -> bytes:
    """The model as a TFLite flatbuffer (float32, the batch dimension left free)."""
    import tensorflow as tf

    try:
        with _captured():
            content: bytes = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    except Exception as exc:  # the converter raises many types
        raise ExportError(f"the model cannot be converted for LiteRT: {exc}") from exc
    return content


def _tensorflow(model: keras.Model, pixels: Pixels) -> Probabilities:
    raw = np.concatenate(
        [
            np.asarray(model(model_input(pixels[i : i + BATCH]), training=False))
            for i in range(0, len(pixels), BATCH)
        ]
    ).astype(np.float64)
    normalised: Probabilities = raw / raw.sum(axis=1, keepdims=True)
    return normalised


def check(model: keras.Model, lite: bytes, pixels: Pixels) -> LiteExport:
    """Compare LiteRT's reading of ``pixels`` with TensorFlow's; raise ``ExportError`` when it
    is not within the limits, else describe the LiteRT model for the artifact's metadata."""
    import tensorflow as tf

    try:
        runtime = LiteModel(lite)
    except (ValueError, RuntimeError) as exc:
        raise ExportError(f"LiteRT cannot load the converted model: {exc}") from exc
    expected = _tensorflow(model, pixels)
    got = np.concatenate(
        [runtime.predict_batch(pixels[i : i + BATCH]) for i in range(0, len(pixels), BATCH)]
    )
    difference = float(np.abs(got - expected).max())
    agreement = float((got.argmax(axis=1) == expected.argmax(axis=1)).mean())
    if difference > MAX_DIFFERENCE or agreement < MIN_AGREEMENT:
        raise ExportError(
            f"LiteRT does not read the test set as TensorFlow does: probabilities differ by up "
            f"to {difference:.2g} (limit {MAX_DIFFERENCE:g}), the same digit for "
            f"{agreement:.4%} of {len(pixels)} images (at least {MIN_AGREEMENT:.2%} needed); "
            "the artifact is not written"
        )
    return LiteExport(
        sha256=hashlib.sha256(lite).hexdigest(),
        converter=f"tensorflow {tf.__version__}",
        parity_examples=len(pixels),
        parity_max_difference=difference,
        parity_argmax_agreement=agreement,
    )


def export_artifact(path: Path, pixels: Pixels) -> tuple[Path, LiteExport]:
    """Add ``model.tflite`` to the artifact at ``path`` (one written before LiteRT served the
    models), checked on ``pixels`` like a new artifact."""
    loaded = load_artifact(path)
    lite = convert(loaded.model)
    export = check(loaded.model, lite, pixels)
    add_lite(loaded.path, lite, export)
    return loaded.path, export
