"""The MNIST IDX files: the genuine ones load and match MNIST's known facts; damaged, swapped or
missing ones give one clear DataError; downloads fail clearly and never leave a bad file behind."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mnist_core.errors import MnistError
from mnist_core.imaging import model_input
from mnist_train.data import (
    FILES,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    IdxFile,
    Mnist,
    download,
    load_file,
    load_mnist,
)
from mnist_train.errors import DataError

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def content(mnist_dir: Path, spec: IdxFile) -> bytes:
    """The decompressed bytes of one genuine file."""
    return gzip.decompress((mnist_dir / spec.gz_name).read_bytes())


def folder_with(tmp_path: Path, spec: IdxFile, data: bytes, *, gz: bool = False) -> Path:
    """A folder holding only ``data`` under the name of ``spec`` (raw, or .gz when asked)."""
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    (folder / (spec.gz_name if gz else spec.stem)).write_bytes(data)
    return folder


def full_folder(tmp_path: Path, mnist_dir: Path, replaced: IdxFile, data: bytes) -> Path:
    """All four files, the genuine ones as links, ``replaced`` as a raw file holding ``data``."""
    folder = tmp_path / "full"
    folder.mkdir()
    for spec in FILES:
        if spec is replaced:
            (folder / spec.stem).write_bytes(data)
        else:
            (folder / spec.gz_name).symlink_to(mnist_dir / spec.gz_name)
    return folder


def load_error(folder: Path, spec: IdxFile) -> str:
    with pytest.raises(DataError) as caught:
        load_file(folder, spec)
    return str(caught.value)


# The genuine files.


def test_shapes_and_types(mnist: Mnist) -> None:
    assert mnist.train_images.shape == (60000, 28, 28)
    assert mnist.train_labels.shape == (60000,)
    assert mnist.test_images.shape == (10000, 28, 28)
    assert mnist.test_labels.shape == (10000,)
    for array in (mnist.train_images, mnist.train_labels, mnist.test_images, mnist.test_labels):
        assert array.dtype == np.uint8


def test_first_labels(mnist: Mnist) -> None:
    assert mnist.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.test_labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_label_counts(mnist: Mnist) -> None:
    assert np.bincount(mnist.train_labels, minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(mnist.test_labels, minlength=10).tolist() == TEST_COUNTS


def test_pixel_statistics(mnist: Mnist) -> None:
    mean = float(mnist.train_images.mean(dtype=np.float64))
    assert mean == pytest.approx(33.318, abs=1e-3)
    assert mean / 255 == pytest.approx(0.1307, abs=1e-4)
    assert int(mnist.train_images.min()) == 0
    assert int(mnist.train_images.max()) == 255
    # MNIST's digits: white ink on a black field, the border almost always empty.
    assert float(mnist.test_images[:, 0, :].mean()) < 1.0


def test_checksums_are_the_published_ones(
    mnist: Mnist, mnist_dir: Path, published_sha256: dict[str, str]
) -> None:
    assert mnist.checksums == published_sha256
    assert mnist.data_dir == mnist_dir


def test_scale_gives_model_input(mnist: Mnist) -> None:
    scaled = model_input(mnist.test_images[:50])
    assert scaled.shape == (50, 28, 28, 1)
    assert scaled.dtype == np.float32
    assert float(scaled.min()) == 0.0
    assert float(scaled.max()) == 1.0
    np.testing.assert_allclose(scaled[..., 0] * 255, mnist.test_images[:50], atol=1e-3)


def test_raw_and_gzip_files_load_alike(tmp_path: Path, mnist_dir: Path, mnist: Mnist) -> None:
    # Training files as the genuine .gz, test files decompressed (raw IDX).
    folder = tmp_path / "mixed"
    folder.mkdir()
    for spec in (TRAIN_IMAGES, TRAIN_LABELS):
        (folder / spec.gz_name).symlink_to(mnist_dir / spec.gz_name)
    for spec in (TEST_IMAGES, TEST_LABELS):
        (folder / spec.stem).write_bytes(content(mnist_dir, spec))
    mixed = load_mnist(folder, allow_download=False)
    np.testing.assert_array_equal(mixed.test_images, mnist.test_images)
    np.testing.assert_array_equal(mixed.test_labels, mnist.test_labels)
    np.testing.assert_array_equal(mixed.train_labels, mnist.train_labels)
    assert mixed.checksums == mnist.checksums


def test_raw_training_labels_load(tmp_path: Path, mnist_dir: Path, mnist: Mnist) -> None:
    folder = folder_with(tmp_path, TRAIN_LABELS, content(mnist_dir, TRAIN_LABELS))
    labels, digest = load_file(folder, TRAIN_LABELS)
    np.testing.assert_array_equal(labels, mnist.train_labels)
    assert digest == TRAIN_LABELS.sha256


# Damaged, swapped and altered files.


def test_truncated_labels_file(tmp_path: Path, mnist_dir: Path) -> None:
    data = content(mnist_dir, TEST_LABELS)[:5000]
    message = load_error(folder_with(tmp_path, TEST_LABELS, data), TEST_LABELS)
    assert "truncated" in message
    assert "5000 bytes" in message
    assert "expected 10008" in message


def test_file_shorter_than_a_header(tmp_path: Path) -> None:
    message = load_error(folder_with(tmp_path, TEST_IMAGES, b"\x00\x00\x08\x03\x00"), TEST_IMAGES)
    assert "truncated" in message
    assert "header" in message


def test_truncated_images_file(tmp_path: Path, mnist_dir: Path) -> None:
    data = content(mnist_dir, TEST_IMAGES)[:-784]  # the last image is missing
    message = load_error(folder_with(tmp_path, TEST_IMAGES, data), TEST_IMAGES)
    assert "truncated" in message
    assert f"expected {16 + 10000 * 784}" in message


def test_file_longer_than_its_header_says(tmp_path: Path, mnist_dir: Path) -> None:
    data = content(mnist_dir, TEST_LABELS) + b"\x00"
    message = load_error(folder_with(tmp_path, TEST_LABELS, data), TEST_LABELS)
    assert "longer than its header says" in message


def test_images_file_in_place_of_labels(tmp_path: Path, mnist_dir: Path) -> None:
    data = content(mnist_dir, TEST_IMAGES)
    message = load_error(folder_with(tmp_path, TEST_LABELS, data), TEST_LABELS)
    assert "magic number 0x00000803" in message
    assert "expected 0x00000801" in message
    assert "looks like an MNIST images file" in message


def test_labels_file_in_place_of_images(tmp_path: Path, mnist_dir: Path) -> None:
    data = content(mnist_dir, TEST_LABELS)
    message = load_error(folder_with(tmp_path, TEST_IMAGES, data), TEST_IMAGES)
    assert "magic number 0x00000801" in message
    assert "looks like an MNIST labels file" in message


def test_file_that_is_not_idx_at_all(tmp_path: Path) -> None:
    message = load_error(folder_with(tmp_path, TEST_LABELS, b"<html>not found</html>"), TEST_LABELS)
    assert "magic number" in message
    assert "looks like" not in message


def test_one_pixel_byte_flipped(tmp_path: Path, mnist_dir: Path) -> None:
    data = bytearray(content(mnist_dir, TEST_IMAGES))
    data[16 + 5000 * 784 + 400] ^= 0x01  # one pixel of image 5000
    path = folder_with(tmp_path, TEST_IMAGES, bytes(data))
    message = load_error(path, TEST_IMAGES)
    assert "not the genuine MNIST file" in message
    assert "SHA-256" in message
    assert hashlib.sha256(data).hexdigest() in message
    assert TEST_IMAGES.sha256 in message


def test_one_label_changed(tmp_path: Path, mnist_dir: Path) -> None:
    data = bytearray(content(mnist_dir, TEST_LABELS))
    assert data[8] == 7
    data[8] = 1  # still a valid digit, so only the checksum can tell
    message = load_error(folder_with(tmp_path, TEST_LABELS, bytes(data)), TEST_LABELS)
    assert "not the genuine MNIST file" in message


def test_one_label_changed_inside_valid_gzip(tmp_path: Path, mnist_dir: Path) -> None:
    data = bytearray(content(mnist_dir, TEST_LABELS))
    data[-1] = (data[-1] + 1) % 10
    folder = folder_with(tmp_path, TEST_LABELS, gzip.compress(bytes(data)), gz=True)
    message = load_error(folder, TEST_LABELS)
    assert "not the genuine MNIST file" in message
    assert TEST_LABELS.gz_name in message


def test_label_outside_zero_to_nine(tmp_path: Path, mnist_dir: Path) -> None:
    data = bytearray(content(mnist_dir, TEST_LABELS))
    data[100] = 200
    message = load_error(folder_with(tmp_path, TEST_LABELS, bytes(data)), TEST_LABELS)
    assert "label 200" in message
    assert "outside 0-9" in message


def test_wrong_count_in_header(tmp_path: Path, mnist_dir: Path) -> None:
    data = bytearray(content(mnist_dir, TEST_LABELS))
    data[4:8] = struct.pack(">I", 9999)
    message = load_error(folder_with(tmp_path, TEST_LABELS, bytes(data[:-1])), TEST_LABELS)
    assert "holds 9999 labels, expected 10000" in message


def test_wrong_image_size_in_header(tmp_path: Path, mnist_dir: Path) -> None:
    data = bytearray(content(mnist_dir, TEST_IMAGES))
    data[8:16] = struct.pack(">II", 32, 24)
    message = load_error(folder_with(tmp_path, TEST_IMAGES, bytes(data)), TEST_IMAGES)
    assert "32x24" in message
    assert "expected 28x28" in message


def test_truncated_gzip(tmp_path: Path, mnist_dir: Path) -> None:
    packed = (mnist_dir / TEST_LABELS.gz_name).read_bytes()
    folder = folder_with(tmp_path, TEST_LABELS, packed[: len(packed) // 2], gz=True)
    message = load_error(folder, TEST_LABELS)
    assert "damaged gzip" in message
    assert TEST_LABELS.gz_name in message


def test_gzip_with_bad_crc(tmp_path: Path, mnist_dir: Path) -> None:
    packed = bytearray((mnist_dir / TEST_LABELS.gz_name).read_bytes())
    packed[-8] ^= 0xFF  # the CRC-32 of the trailer
    folder = folder_with(tmp_path, TEST_LABELS, bytes(packed), gz=True)
    assert "damaged gzip" in load_error(folder, TEST_LABELS)


def test_gzip_with_damaged_deflate_stream(tmp_path: Path, mnist_dir: Path) -> None:
    """A byte flipped inside the compressed stream: zlib itself rejects the data (zlib.error),
    which must still come out as a DataError, not as a raw zlib exception."""
    packed = (mnist_dir / TEST_LABELS.gz_name).read_bytes()
    for position in range(64, len(packed) - 8):
        damaged = bytearray(packed)
        damaged[position] ^= 0xFF
        try:
            gzip.decompress(bytes(damaged))
        except zlib.error:
            break
        except (OSError, EOFError):
            continue
    else:
        pytest.fail("no single-byte change makes zlib reject the stream")
    folder = folder_with(tmp_path, TEST_LABELS, bytes(damaged), gz=True)
    assert "damaged gzip" in load_error(folder, TEST_LABELS)


def test_corrupt_file_reported_through_load_mnist(tmp_path: Path, mnist_dir: Path) -> None:
    folder = full_folder(tmp_path, mnist_dir, TEST_LABELS, content(mnist_dir, TEST_IMAGES))
    with pytest.raises(DataError, match="magic number") as caught:
        load_mnist(folder, allow_download=False)
    assert str(folder / TEST_LABELS.stem) in str(caught.value)
    assert isinstance(caught.value, MnistError)


# Missing files and downloads.


def test_missing_file_without_download(tmp_path: Path, mnist_dir: Path) -> None:
    folder = tmp_path / "three"
    folder.mkdir()
    for spec in (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES):
        (folder / spec.gz_name).symlink_to(mnist_dir / spec.gz_name)
    with pytest.raises(DataError) as caught:
        load_mnist(folder, allow_download=False)
    message = str(caught.value)
    assert TEST_LABELS.gz_name in message
    assert TRAIN_IMAGES.gz_name not in message
    assert str(folder) in message
    assert len(list(folder.iterdir())) == 3  # nothing added, nothing removed


def test_all_files_missing_without_download(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        load_mnist(tmp_path, allow_download=False)
    for spec in FILES:
        assert spec.gz_name in str(caught.value)


def test_offline_download_fails_with_one_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "mnist"
    with pytest.raises(DataError) as caught:
        download(folder, mirrors=("http://127.0.0.1:9/",))
    message = str(caught.value)
    assert message.startswith(f"could not download {TRAIN_IMAGES.gz_name}")
    assert "http://127.0.0.1:9/train-images-idx3-ubyte.gz" in message
    assert "refused" in message.lower()
    # It says where to put the files.
    assert f"in {folder}" in message
    assert all(spec.gz_name in message for spec in FILES)
    assert "MNIST_DATA_DIR" in message
    assert "\n" not in message
    assert list(folder.iterdir()) == []


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving the files of a folder: (base URL, folder)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_download_falls_back_to_the_next_mirror(
    tmp_path: Path, mnist_dir: Path, mirror: tuple[str, Path]
) -> None:
    url, served = mirror
    (served / TEST_LABELS.gz_name).write_bytes((mnist_dir / TEST_LABELS.gz_name).read_bytes())
    folder = tmp_path / "downloaded"
    download(folder, files=(TEST_LABELS,), mirrors=("http://127.0.0.1:9/", url))
    assert sorted(p.name for p in folder.iterdir()) == [TEST_LABELS.gz_name]
    labels, digest = load_file(folder, TEST_LABELS)
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert digest == TEST_LABELS.sha256


def test_download_refuses_a_file_that_is_not_genuine(
    tmp_path: Path, mnist_dir: Path, mirror: tuple[str, Path]
) -> None:
    url, served = mirror
    data = bytearray(content(mnist_dir, TEST_LABELS))
    data[8] = 1
    (served / TEST_LABELS.gz_name).write_bytes(gzip.compress(bytes(data)))
    folder = tmp_path / "downloaded"
    with pytest.raises(DataError) as caught:
        download(folder, files=(TEST_LABELS,), mirrors=(url,))
    assert "checksum" in str(caught.value)
    assert url + TEST_LABELS.gz_name in str(caught.value)
    assert list(folder.iterdir()) == []  # no bad file and no temporary file left behind


def test_download_skips_files_already_present(tmp_path: Path, mnist_dir: Path) -> None:
    folder = tmp_path / "present"
    folder.mkdir()
    for spec in FILES:
        (folder / spec.gz_name).symlink_to(mnist_dir / spec.gz_name)
    download(folder, mirrors=("http://127.0.0.1:9/",))  # nothing to fetch, so no error
    assert len(list(folder.iterdir())) == 4
