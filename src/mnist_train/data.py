"""The MNIST database in its canonical IDX files: locate, download, verify and load.

The four files are read from a directory (``--data-dir`` or ``MNIST_DATA_DIR``), gzip-compressed or
raw. When they are absent they are downloaded from the usual public mirrors, tried in order. The
decompressed content of every file is checked against the published SHA-256, and the IDX headers
(magic number, counts, dimensions) are validated, so a truncated, swapped or corrupted file gives a
clear error instead of silent garbage.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from mnist_train.errors import DataError

DATA_DIR_ENV = "MNIST_DATA_DIR"

IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension
IMAGE_SIDE = 28

MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


@dataclass(frozen=True)
class IdxFile:
    """One of the four MNIST files and what its decompressed content must be."""

    stem: str
    kind: str  # "images" or "labels"
    count: int
    sha256: str

    @property
    def gz_name(self) -> str:
        return f"{self.stem}.gz"


TRAIN_IMAGES = IdxFile(
    "train-images-idx3-ubyte",
    "images",
    60000,
    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
)
TRAIN_LABELS = IdxFile(
    "train-labels-idx1-ubyte",
    "labels",
    60000,
    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
)
TEST_IMAGES = IdxFile(
    "t10k-images-idx3-ubyte",
    "images",
    10000,
    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
)
TEST_LABELS = IdxFile(
    "t10k-labels-idx1-ubyte",
    "labels",
    10000,
    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
)
FILES: tuple[IdxFile, ...] = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

U8Array = npt.NDArray[np.uint8]
# How many training images are held out for validation unless told otherwise.
VALIDATION_EXAMPLES = 5000


@dataclass(frozen=True)
class Mnist:
    """The four arrays, as uint8 (images N x 28 x 28, labels N), and the files' checksums."""

    train_images: U8Array
    train_labels: U8Array
    test_images: U8Array
    test_labels: U8Array
    checksums: dict[str, str]
    data_dir: Path


def default_data_dir() -> Path:
    """``MNIST_DATA_DIR`` when set, otherwise ``./data/mnist``."""
    configured = os.environ.get(DATA_DIR_ENV)
    return Path(configured) if configured else Path("data") / "mnist"


def find_file(data_dir: Path, spec: IdxFile) -> Path | None:
    """The file for ``spec`` in ``data_dir``, gzip or raw, or None."""
    for name in (spec.gz_name, spec.stem):
        candidate = data_dir / name
        if candidate.is_file():
            return candidate
    return None


def read_bytes(path: Path) -> bytes:
    """The decompressed content of ``path`` (gzip is recognised by its magic bytes)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path} is a damaged gzip file ({exc})") from exc
    return raw


def parse_idx(content: bytes, spec: IdxFile, source: str) -> U8Array:
    """Validate the IDX header of ``content`` against ``spec`` and return its array."""
    expected_magic = IMAGES_MAGIC if spec.kind == "images" else LABELS_MAGIC
    header_len = 16 if spec.kind == "images" else 8
    if len(content) < header_len:
        raise DataError(f"{source} is truncated: {len(content)} bytes, not even an IDX header")
    magic, count = struct.unpack(">II", content[:8])
    if magic != expected_magic:
        other = "labels" if magic == LABELS_MAGIC else "images" if magic == IMAGES_MAGIC else None
        hint = f" (it looks like an MNIST {other} file)" if other else ""
        raise DataError(
            f"{source} has magic number {magic:#010x}, expected {expected_magic:#010x} "
            f"for {spec.kind}{hint}"
        )
    if count != spec.count:
        raise DataError(f"{source} holds {count} {spec.kind}, expected {spec.count}")
    shape: tuple[int, ...] = (count,)
    if spec.kind == "images":
        rows, cols = struct.unpack(">II", content[8:16])
        if (rows, cols) != (IMAGE_SIDE, IMAGE_SIDE):
            raise DataError(f"{source} has {rows}x{cols} images, expected 28x28")
        shape = (count, rows, cols)
    expected_len = header_len + int(np.prod(shape))
    if len(content) != expected_len:
        state = "truncated" if len(content) < expected_len else "longer than its header says"
        raise DataError(f"{source} is {state}: {len(content)} bytes, expected {expected_len}")
    array = np.frombuffer(content, dtype=np.uint8, offset=header_len).reshape(shape)
    if spec.kind == "labels" and int(array.max()) > 9:
        raise DataError(f"{source} has a label {int(array.max())}, outside 0-9")
    return array


def load_file(data_dir: Path, spec: IdxFile) -> tuple[U8Array, str]:
    """One file from ``data_dir``, checksum verified: its array and its SHA-256."""
    path = find_file(data_dir, spec)
    if path is None:
        raise DataError(f"{spec.gz_name} is missing from {data_dir}")
    content = read_bytes(path)
    array = parse_idx(content, spec, str(path))
    digest = hashlib.sha256(content).hexdigest()
    if digest != spec.sha256:
        raise DataError(
            f"{path} is not the genuine MNIST file: SHA-256 of its content is {digest}, "
            f"expected {spec.sha256}"
        )
    return array, digest


def download(
    data_dir: Path, files: Sequence[IdxFile] = FILES, mirrors: Sequence[str] = MIRRORS
) -> None:
    """Download the missing files into ``data_dir``, trying each mirror in order."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for spec in files:
        if find_file(data_dir, spec) is not None:
            continue
        failures: list[str] = []
        for mirror in mirrors:
            url = mirror + spec.gz_name
            try:
                _fetch(url, data_dir / spec.gz_name, spec)
                break
            except (OSError, urllib.error.URLError, DataError) as exc:
                failures.append(f"{url}: {getattr(exc, 'reason', None) or exc}")
        else:
            raise DataError(
                f"could not download {spec.gz_name} ({'; '.join(failures)}). Put the four MNIST "
                f"files ({', '.join(f.gz_name for f in FILES)}) in {data_dir} "
                f"or point --data-dir / {DATA_DIR_ENV} at a folder that holds them"
            )


def _fetch(url: str, target: Path, spec: IdxFile) -> None:
    """Stream ``url`` to ``target`` with a progress bar; keep it only if its content verifies."""
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{spec.gz_name}.")
    tmp_path = Path(name)
    try:
        with (
            os.fdopen(handle, "wb") as tmp,
            urllib.request.urlopen(url, timeout=30) as response,
        ):
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=spec.gz_name, leave=False
            ) as bar:
                while chunk := response.read(1 << 16):
                    tmp.write(chunk)
                    bar.update(len(chunk))
        content = read_bytes(tmp_path)
        parse_idx(content, spec, url)
        if hashlib.sha256(content).hexdigest() != spec.sha256:
            raise DataError(f"{url} served a file whose content does not match MNIST's checksum")
        tmp_path.replace(target)
    finally:
        tmp_path.unlink(missing_ok=True)


def load_mnist(data_dir: Path | None = None, *, allow_download: bool = True) -> Mnist:
    """Load and verify the four MNIST files, downloading the missing ones when allowed."""
    directory = data_dir if data_dir is not None else default_data_dir()
    missing = [spec for spec in FILES if find_file(directory, spec) is None]
    if missing:
        if not allow_download:
            names = ", ".join(spec.gz_name for spec in missing)
            raise DataError(f"{names} missing from {directory}")
        download(directory, missing)
    arrays: dict[str, U8Array] = {}
    checksums: dict[str, str] = {}
    for spec in FILES:
        arrays[spec.stem], checksums[spec.stem] = load_file(directory, spec)
    return Mnist(
        train_images=arrays[TRAIN_IMAGES.stem],
        train_labels=arrays[TRAIN_LABELS.stem],
        test_images=arrays[TEST_IMAGES.stem],
        test_labels=arrays[TEST_LABELS.stem],
        checksums=checksums,
        data_dir=directory,
    )


@dataclass(frozen=True)
class Split:
    """Indices into the training file: the images trained on and the ones held out."""

    train: npt.NDArray[np.int64]
    validation: npt.NDArray[np.int64]


def split_training_set(
    count: int, validation_examples: int, seed: int, train_examples: int | None = None
) -> Split:
    """Hold ``validation_examples`` of the ``count`` training images out for validation.

    They are the first ``validation_examples`` of ``numpy.random.default_rng(seed).permutation(
    count)``, so the same seed always holds out the same images. The others stay in the files'
    order, and ``train_examples`` takes the first of them: a subset never reaches into the
    held-out images. Both index arrays are sorted."""
    if not 0 < validation_examples < count:
        raise ValueError(
            f"the validation split must hold between 1 and {count - 1} of the {count} "
            f"training images, not {validation_examples}"
        )
    available = count - validation_examples
    if train_examples is not None and not 0 < train_examples <= available:
        raise ValueError(
            f"{train_examples} training examples asked for, but {available} training images are "
            f"left after holding {validation_examples} out for validation"
        )
    order = np.random.default_rng(seed).permutation(count)
    validation = np.sort(order[:validation_examples])
    train = np.sort(order[validation_examples:])[:train_examples]
    return Split(train=train, validation=validation)
