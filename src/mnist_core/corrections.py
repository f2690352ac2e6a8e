"""Corrections: predictions that people labelled, as the model saw them, in one file that the
service writes (``mnist-api export-labels``) and training and comparison read.

The file is a NumPy ``.npz`` archive (``numpy.load`` opens it); row ``i`` of every array is one
correction:

=================  ==============  =====================================================
``images``         uint8 N x 28x28 the model's input (MNIST polarity: white ink on black)
``labels``         uint8 N         the digit the person gave; 10 (``NOT_A_DIGIT_LABEL``): no digit
``predicted``      uint8 N         the digit the service had answered
``ids``            str N           the prediction's id
``created_at_ms``  int64 N         when it was predicted (ms since 1970, UTC)
``labeled_at_ms``  int64 N         when it was labelled
``model_versions`` str N           the model that had answered
``owners``         str N           the key that uploaded it (or ``anonymous``)
``format``         str             ``mnist-corrections/1``
=================  ==============  =====================================================

A fifth of the corrections is held out, chosen by id (its SHA-256, modulo 5), so the choice is
the same in every export, whatever else it holds: training never sees those (``split``), and
``mnist-train compare`` judges models on them.

``CorrectionsWriter`` streams: rows go to temporary files as they come, and the archive is
assembled from those at the end, so an export of a million corrections never holds them in
memory at once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt

from mnist_core.errors import MnistError
from mnist_core.verdicts import NOT_A_DIGIT_LABEL

FORMAT = "mnist-corrections/1"
SIDE = 28
HOLD_OUT_MODULUS = 5  # one correction in five, by id, is held out
EXTRA_WEIGHT = 5.0  # a correction's weight in the training loss, against 1 for an MNIST image
NUMBERS: dict[str, tuple[np.dtype[np.generic], tuple[int, ...]]] = {  # dtype, one row's shape
    "images": (np.dtype(np.uint8), (SIDE, SIDE)),
    "labels": (np.dtype(np.uint8), ()),
    "predicted": (np.dtype(np.uint8), ()),
    "created_at_ms": (np.dtype("<i8"), ()),
    "labeled_at_ms": (np.dtype("<i8"), ()),
}
TEXTS = ("ids", "model_versions", "owners")
CHUNK = 1 << 20


class CorrectionsError(MnistError):
    """A corrections file that cannot be read or is not in the format."""


@dataclass(frozen=True)
class Correction:
    """One labelled prediction, as an export writes it."""

    id: str
    created_at_ms: int
    labeled_at_ms: int
    label: int
    predicted: int
    model_version: str
    owner: str
    pixels: bytes  # 784 bytes, row-major


def is_held_out(prediction_id: str) -> bool:
    digest = hashlib.sha256(prediction_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % HOLD_OUT_MODULUS == 0


@dataclass(frozen=True)
class Corrections:
    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.uint8]
    predicted: npt.NDArray[np.uint8]
    ids: npt.NDArray[np.str_]
    created_at_ms: npt.NDArray[np.int64]
    labeled_at_ms: npt.NDArray[np.int64]
    model_versions: npt.NDArray[np.str_]
    owners: npt.NDArray[np.str_]
    sha256: str = ""  # of the file read
    path: str = ""

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def _rows(self, mask: npt.NDArray[np.bool_]) -> Corrections:
        return replace(
            self,
            images=self.images[mask],
            labels=self.labels[mask],
            predicted=self.predicted[mask],
            ids=self.ids[mask],
            created_at_ms=self.created_at_ms[mask],
            labeled_at_ms=self.labeled_at_ms[mask],
            model_versions=self.model_versions[mask],
            owners=self.owners[mask],
        )

    def split(self) -> tuple[Corrections, Corrections]:
        """(for training, held out): the held-out fifth is chosen by id."""
        held = np.array([is_held_out(str(i)) for i in self.ids], dtype=bool)
        return self._rows(~held), self._rows(held)


def load_corrections(path: Path) -> Corrections:
    """Read and check a corrections file."""
    not_one = f"{path} is not a corrections file ({FORMAT}, written by mnist-api export-labels)"
    if not path.is_file():
        raise CorrectionsError(f"cannot read the corrections file {path}: there is no such file")
    if not zipfile.is_zipfile(path):
        raise CorrectionsError(not_one)
    try:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                digest.update(block)
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CorrectionsError(f"cannot read the corrections file {path}: {exc}") from exc
    if "format" not in arrays or str(arrays["format"]) != FORMAT:
        raise CorrectionsError(not_one)
    missing = [name for name in (*NUMBERS, *TEXTS) if name not in arrays]
    if missing:
        raise CorrectionsError(f"{path} lacks {', '.join(missing)}")
    count = int(arrays["labels"].shape[0])
    for name, (dtype, shape) in NUMBERS.items():
        if arrays[name].dtype != dtype or arrays[name].shape != (count, *shape):
            raise CorrectionsError(f"{path}: {name} is not {dtype} of shape {(count, *shape)}")
    for name in TEXTS:
        if arrays[name].dtype.kind != "U" or arrays[name].shape != (count,):
            raise CorrectionsError(f"{path}: {name} is not {count} strings")
    if count and int(arrays["labels"].max()) > NOT_A_DIGIT_LABEL:
        raise CorrectionsError(f"{path}: a label is neither a digit nor {NOT_A_DIGIT_LABEL}")
    return Corrections(
        **{name: arrays[name] for name in (*NUMBERS, *TEXTS)},
        sha256=digest.hexdigest(),
        path=str(path),
    )


class CorrectionsWriter:
    """Writes a corrections file row by row, in bounded memory; ``close`` returns the count and
    puts the file in place (replacing it at once: a reader never sees half a file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(prefix=".corrections-", dir=path.parent))
        self._files: dict[str, IO[bytes]] = {
            name: (self._dir / name).open("wb") for name in (*NUMBERS, *TEXTS)
        }
        self._widths = dict.fromkeys(TEXTS, 1)
        self.count = 0

    def add(self, row: Correction) -> None:
        if len(row.pixels) != SIDE * SIDE:
            raise ValueError(f"a model input has {SIDE * SIDE} bytes, not {len(row.pixels)}")
        if not 0 <= row.label <= NOT_A_DIGIT_LABEL or not 0 <= row.predicted <= 9:
            raise ValueError("predictions are digits, labels digits or NOT_A_DIGIT_LABEL")
        f = self._files
        f["images"].write(row.pixels)
        f["labels"].write(bytes([row.label]))
        f["predicted"].write(bytes([row.predicted]))
        f["created_at_ms"].write(int(row.created_at_ms).to_bytes(8, "little", signed=True))
        f["labeled_at_ms"].write(int(row.labeled_at_ms).to_bytes(8, "little", signed=True))
        for name, text in zip(TEXTS, (row.id, row.model_version, row.owner), strict=True):
            if "\n" in text:
                raise ValueError(f"{name} holds a line break")
            f[name].write(text.encode() + b"\n")
            self._widths[name] = max(self._widths[name], len(text))
        self.count += 1

    def close(self) -> int:
        for file in self._files.values():
            file.close()
        partial = self._dir / "archive.npz"
        try:
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                for name, (dtype, shape) in NUMBERS.items():
                    with archive.open(f"{name}.npy", "w", force_zip64=True) as out:
                        _header(out, dtype, (self.count, *shape))
                        with (self._dir / name).open("rb") as source:
                            shutil.copyfileobj(source, out, CHUNK)
                for name in TEXTS:
                    dtype = np.dtype(f"<U{self._widths[name]}")
                    with archive.open(f"{name}.npy", "w", force_zip64=True) as out:
                        _header(out, dtype, (self.count,))
                        for text in _lines(self._dir / name):
                            out.write(np.array(text, dtype=dtype).tobytes())
                with archive.open("format.npy", "w") as out:
                    np.lib.format.write_array(out, np.array(FORMAT))
            os.replace(partial, self.path)
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)
        return self.count

    def discard(self) -> None:
        for file in self._files.values():
            file.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def _header(out: IO[bytes], dtype: np.dtype[np.generic], shape: tuple[int, ...]) -> None:
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_2_0(out, header)


def _lines(path: Path) -> Iterator[str]:
    with path.open("rb") as f:
        for line in f:
            yield line[:-1].decode()
