"""TensorFlow, imported once and quietly; LiteRT's interpreter, made quietly.

Importing TensorFlow writes start-up lines straight to file descriptor 2 from C++, before its own
logging is set up, so ``TF_CPP_MIN_LOG_LEVEL`` does not hold them back: "All log messages before
absl::InitializeLog() is called are written to STDERR" and "oneDNN custom operations are on",
twice per process. ``import_tensorflow`` imports it with descriptor 2 captured, drops those known
lines and writes everything else back, so a real error during the import is still seen.

Every entry point that needs TensorFlow (the training commands, the API's model loading, the
tests) calls it first; later ``import tensorflow`` statements find the module already loaded.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from mnist_core.errors import MnistError

# What TensorFlow prints at import on a CPU-only machine; nothing here is actionable for a user.
NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|^[IWE]\d{4} [\d:.]+ +\d+ (port|cpu_feature_guard|cuda_\w+|computation_placer)\.cc:\d+\]"
    r"|^To enable the following instructions: .* rebuild TensorFlow"
    # LiteRT, each time an interpreter is made.
    r"|^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$"
)


@contextmanager
def quietly() -> Iterator[None]:
    """Descriptor 2 captured for the block; everything but the known noise written back."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 at all: nothing to keep clean
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines(keepends=True) if not NOISE.search(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def import_tensorflow() -> ModuleType:
    """``tensorflow``, with Keras, imported without TensorFlow's start-up noise."""
    loaded = sys.modules.get("tensorflow")
    if loaded is not None and "keras" in sys.modules:
        return loaded
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the C++ log level, once logging is up
    try:
        with quietly():
            import keras  # noqa: F401  (loads TensorFlow's second library, which prints again)
            import tensorflow  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name not in ("keras", "tensorflow"):
            raise
        raise MnistError(
            "TensorFlow is not installed: training and MNIST_API_RUNTIME=tensorflow need it "
            "(pip install 'mnist-service[train]'); the service itself runs on LiteRT"
        ) from exc

    return sys.modules["tensorflow"]
