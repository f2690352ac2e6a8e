"""Learning from corrections: a corrections file round trip, a short fine-tuning (``--init``) with
corrections mixed in (``--extra``) that learns a way of writing MNIST lacks (digits between two
lines), and ``compare``'s rule and verdict."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mnist_core.artifact import read_metadata
from mnist_core.corrections import (
    Correction,
    CorrectionsError,
    CorrectionsWriter,
    is_held_out,
    load_corrections,
)
from mnist_train.compare import Comparison, Side, compare
from mnist_train.data import Mnist
from mnist_train.evaluate import Evaluation
from mnist_train.train import TrainConfig, TrainResult, train
from tests.fixtures.servers import clean_env
from tests.fixtures.styles import lined_inputs

CORRECTIONS = 500
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def write_corrections(path: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    writer = CorrectionsWriter(path)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        writer.add(
            Correction(
                id=f"00000000-0000-1000-8000-{i:012d}",
                created_at_ms=1_764_000_000_000 + i,
                labeled_at_ms=1_764_000_100_000 + i,
                label=int(label),
                predicted=(int(label) + 1) % 10,
                model_version="cnn-test",
                owner="anonymous",
                pixels=image.tobytes(),
            )
        )
    writer.close()
    return path


@pytest.fixture(scope="module")
def lined_corrections(mnist: Mnist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Lined training digits, labelled."""
    images = lined_inputs(mnist.train_images[:CORRECTIONS], first_seed=0)
    path = tmp_path_factory.mktemp("corrections") / "lined.npz"
    return write_corrections(path, images, mnist.train_labels[:CORRECTIONS])


@pytest.fixture(scope="module")
def tuned(
    model_root: Path,
    lined_corrections: Path,
    mnist: Mnist,
    tmp_path_factory: pytest.TempPathFactory,
) -> TrainResult:
    """The session's model fine-tuned for one epoch on MNIST with the corrections mixed in."""
    config = TrainConfig(
        model_type="cnn", init=model_root, extra=lined_corrections, epochs=1, seed=3, verbose=0
    )
    return train(config, mnist, tmp_path_factory.mktemp("tuned"))


class TestCorrectionsFile:
    def test_round_trip_and_stable_hold_out(self, tmp_path: Path) -> None:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, 50).astype(np.uint8)
        corrections = load_corrections(write_corrections(tmp_path / "c.npz", images, labels))
        np.testing.assert_array_equal(corrections.images, images)
        np.testing.assert_array_equal(corrections.labels, labels)
        assert list(corrections.predicted) == [(int(x) + 1) % 10 for x in labels]
        assert corrections.ids[3] == "00000000-0000-1000-8000-000000000003"
        assert corrections.labeled_at_ms[3] == 1_764_000_100_003
        trained, held = corrections.split()
        assert len(trained) + len(held) == 50
        assert all(is_held_out(str(i)) for i in held.ids)
        assert not any(is_held_out(str(i)) for i in trained.ids)
        assert 3 <= len(held) <= 20  # about a fifth

    def test_not_a_corrections_file(self, tmp_path: Path) -> None:
        np.savez(tmp_path / "other.npz", images=np.zeros((1, 28, 28), np.uint8))
        with pytest.raises(CorrectionsError, match="is not a corrections file"):
            load_corrections(tmp_path / "other.npz")
        (tmp_path / "text.npz").write_text("hello")
        with pytest.raises(CorrectionsError, match="is not a corrections file"):
            load_corrections(tmp_path / "text.npz")
        with pytest.raises(CorrectionsError, match="cannot read the corrections file"):
            load_corrections(tmp_path / "absent.npz")


@pytest.mark.slow
class TestFineTuning:
    def test_metadata_records_what_went_in(
        self, tuned: TrainResult, model_root: Path, lined_corrections: Path
    ) -> None:
        meta = tuned.metadata
        _, base = read_metadata(model_root)
        assert meta.init_from == base.version
        assert meta.extra is not None
        held = len(load_corrections(lined_corrections).split()[1])
        assert (meta.extra.examples, meta.extra.held_out) == (CORRECTIONS - held, held)
        assert meta.extra.sha256 == load_corrections(lined_corrections).sha256
        assert meta.extra.weight == 5.0
        assert meta.hyperparameters.epochs == 1
        assert meta.hyperparameters.seed == 3
        # The images the base model never saw stay held out: its split (seed 7), not seed 3's.
        assert meta.hyperparameters.validation_seed == base.hyperparameters.validation_seed == 7
        assert meta.hyperparameters.learning_rate == pytest.approx(0.0003)  # a tenth

    def test_learns_the_new_style_and_keeps_mnist(
        self, tuned: TrainResult, model_root: Path, lined_corrections: Path, mnist: Mnist
    ) -> None:
        comparison = compare(tuned.artifact_dir, model_root, mnist, lined_corrections)
        new, old = comparison.new, comparison.old
        assert new.corrections is not None
        assert old.corrections is not None
        assert old.corrections.accuracy < 0.6, comparison.report()  # the base reads few lined
        assert new.corrections.accuracy >= old.corrections.accuracy + 0.25, comparison.report()
        assert new.mnist.accuracy >= old.mnist.accuracy - 0.001, comparison.report()
        assert comparison.candidate_wins, comparison.report()

    def test_compare_command_exit_status(
        self, tuned: TrainResult, model_root: Path, lined_corrections: Path, mnist_dir: Path
    ) -> None:
        def run(new: Path, old: Path) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "mnist_train", "compare", str(new), str(old),
                 "--extra", str(lined_corrections), "--data-dir", str(mnist_dir)],
                env=clean_env(), capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip

        wins = run(tuned.artifact_dir, model_root)
        assert wins.returncode == 0, wins.stderr
        assert wins.stdout.splitlines()[-1].startswith("verdict: the candidate wins (MNIST test")
        loses = run(model_root, tuned.artifact_dir)
        assert loses.returncode == 1, loses.stderr
        verdict = loses.stdout.splitlines()[-1]
        assert verdict.startswith("verdict: the candidate loses: its MNIST test accuracy")
        assert "held-out corrections, not more than the current model" in verdict


def evaluation(accuracy: float, right: int, total: int) -> Evaluation:
    confusion = np.zeros((10, 10), dtype=np.int64)
    confusion[0, 0], confusion[0, 1] = right, total - right
    return Evaluation(accuracy, [accuracy] * 10, confusion)


@dataclass(frozen=True)
class Case:
    new_mnist: float
    new_right: int | None
    wins: bool


@pytest.mark.parametrize(
    "case",
    [
        Case(0.9900, 30, True),  # better on corrections, MNIST equal
        Case(0.9891, 30, True),  # 0.09 point lower on MNIST: within the rule
        Case(0.9889, 30, False),  # 0.11 point lower
        Case(0.9950, 20, False),  # as many corrections right: not better
        Case(0.9950, None, True),  # no corrections: better on MNIST
        Case(0.9900, None, False),  # no corrections: equal on MNIST
    ],
)
def test_the_rule(case: Case) -> None:
    with_corrections = case.new_right is not None
    old = Side("old", evaluation(0.99, 0, 1), evaluation(0.5, 20, 40) if with_corrections else None)
    new_corrections = evaluation(0.7, case.new_right or 0, 40) if with_corrections else None
    new = Side("new", evaluation(case.new_mnist, 0, 1), new_corrections)
    comparison = Comparison(new, old, 40 if with_corrections else 0, [40] + [0] * 9)
    assert comparison.candidate_wins is case.wins, comparison.report()


def test_not_a_digit_corrections_count_when_flagged() -> None:
    """A "not a digit" correction is right when the model calls it not_a_digit."""
    old = Side("old", evaluation(0.99, 0, 1), evaluation(0.5, 20, 40), flagged=2)
    new = Side("new", evaluation(0.99, 0, 1), evaluation(0.5, 20, 40), flagged=7)
    comparison = Comparison(new, old, 50, [40] + [0] * 9, held_out_not_a_digit=10)
    assert (new.right, old.right) == (27, 22)
    assert comparison.candidate_wins, comparison.report()
    assert "  not a digit (10)" in comparison.report()
    assert "held-out corrections 27 right against 22 of 50" in comparison.report()


def test_compare_judges_not_a_digit_corrections(
    model_root: Path, mnist: Mnist, tmp_path: Path
) -> None:
    """Non-digits people labelled "not a digit" (label 10), held out, through a real model."""
    from mnist_core.lite import LiteClassifier
    from mnist_core.verdicts import NOT_A_DIGIT_LABEL
    from mnist_train.negatives import negatives

    count = 200
    path = write_corrections(
        tmp_path / "nothing.npz", negatives(count, seed=99), np.full(count, NOT_A_DIGIT_LABEL)
    )
    _, held_out = load_corrections(path).split()
    comparison = compare(model_root, model_root, mnist, path)
    assert comparison.held_out == comparison.held_out_not_a_digit == len(held_out) > 20
    assert comparison.new.corrections is None  # no digit among them
    # The served model's own verdicts on the held-out images (LiteRT, calibrated).
    served = LiteClassifier.load(model_root)
    confidence = served.predict_batch(held_out.images).max(axis=1)
    flagged = int((confidence < served.metadata.thresholds.not_a_digit_below).sum())
    assert comparison.new.flagged == comparison.old.flagged == flagged > 0, comparison.report()
    assert f"  not a digit ({len(held_out)})" in comparison.report()
