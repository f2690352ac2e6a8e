"""The test session: fixtures come from the plugins in ``tests/fixtures/``, which test modules
also import their helpers from (never from here)."""

from mnist_core.runtime import import_tensorflow

pytest_plugins = [
    "tests.fixtures.data",
    "tests.fixtures.apps",
    "tests.fixtures.servers",
    "tests.fixtures.cassandra",
    "tests.fixtures.cluster",
    "tests.fixtures.training",
]

# Test modules import TensorFlow as they are collected: load it first, without its start-up lines.
import_tensorflow()
