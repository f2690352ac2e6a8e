"""``python -m mnist_train`` end to end, as a person runs it: train, evaluate and predict on the
real data, and one-line errors (non-zero exit, no traceback) for everything that goes wrong.

Every command is a real child process. They import TensorFlow, which costs seconds of CPU each,
so the independent ones are started together when the module begins and awaited by each test.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.servers import clean_env

pytestmark = pytest.mark.slow
# TensorFlow's C++ logging (absl), as in "I0000 00:00:... port.cc:153] oneDNN custom operations",
# and LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
TENSORFLOW_LINE = re.compile(
    r"absl::|oneDNN|^[IWEF]\d{4} [\d:.]+ +\d+ \S+\.cc:\d+\]|XNNPACK|TensorFlow Lite"
)

TIMEOUT = 600
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
ERROR_PREFIX = "mnist-train: error: "
FAILED_COMMANDS = (
    "epochs-0",
    "unknown-model",
    "no-data",
    "not-an-artifact",
    "predict-not-an-image",
    "validation-0",
    "too-many-train-examples",
    "negative-seed",
    "softmax-ensemble",
    "init-missing",
    "extra-not-corrections",
)


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if ": error: " in line]


@dataclass
class Command:
    """A started ``python -m mnist_train`` child process."""

    args: list[str]
    process: subprocess.Popen[str]
    finished: Finished | None = None

    @classmethod
    def start(cls, args: list[str], env: dict[str, str], cwd: Path) -> Command:
        process = subprocess.Popen(
            [sys.executable, "-m", "mnist_train", *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return cls(args, process)

    def wait(self) -> Finished:
        if self.finished is None:
            stdout, stderr = self.process.communicate(timeout=TIMEOUT)
            self.finished = Finished(self.process.returncode, stdout, stderr)
        return self.finished

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


@dataclass
class Workspace:
    root: Path
    env: dict[str, str]
    output: Path
    images: dict[int, Path]
    empty_data: Path
    not_an_artifact: Path
    commands: dict[str, Command]

    def start(self, name: str, *args: str) -> Command:
        command = Command.start(list(args), self.env, self.root)
        self.commands[name] = command
        return command


def user_env(mnist_dir: Path) -> dict[str, str]:
    """A person's new shell with the data folder set, and nothing else of the shell that runs
    the tests (no TensorFlow log level, for one)."""
    return clean_env(MNIST_DATA_DIR=str(mnist_dir))


@pytest.fixture(scope="module")
def work(
    mnist_dir: Path, golden: dict[int, bytes], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("cli")
    images = {}
    for digit, png in golden.items():
        images[digit] = root / f"digit-{digit}.png"
        images[digit].write_bytes(png)
    (root / "empty-data").mkdir()
    (root / "not-an-artifact").mkdir()
    (root / "not-an-artifact" / "README.txt").write_text("just notes\n", encoding="utf-8")
    (root / "not-an-image.png").write_text("plain text\n", encoding="utf-8")
    ws = Workspace(
        root=root,
        env=user_env(mnist_dir),
        output=root / "models",
        images=images,
        empty_data=root / "empty-data",
        not_an_artifact=root / "not-an-artifact",
        commands={},
    )
    try:
        # The commands that do not depend on each other, all at once.
        ws.start(
            "train",
            "train", "--model", "softmax", "--epochs", "1", "--train-examples", "2000",
            "--output", str(ws.output),
        )  # fmt: skip
        ws.start("epochs-0", "train", "--epochs", "0", "--output", str(root / "never-0"))
        ws.start("unknown-model", "train", "--model", "resnet", "--output", str(root / "never-1"))
        ws.start(
            "no-data",
            "train", "--model", "softmax", "--epochs", "1",
            "--data-dir", str(ws.empty_data), "--output", str(root / "never-2"),
        )  # fmt: skip
        ws.start("not-an-artifact", "evaluate", str(ws.not_an_artifact))
        ws.start(
            "learning-rate-0",
            "train", "--model", "softmax", "--epochs", "1", "--train-examples", "200",
            "--learning-rate", "0", "--output", str(root / "never-3"),
        )  # fmt: skip
        ws.start(
            "validation-0",
            "train", "--validation-examples", "0", "--output", str(root / "never-4"),
        )  # fmt: skip
        ws.start(
            "too-many-train-examples",
            "train", "--model", "softmax", "--train-examples", "56000",
            "--output", str(root / "never-5"),
        )  # fmt: skip
        ws.start("negative-seed", "train", "--seed", "-1", "--output", str(root / "never-6"))
        ws.start(
            "init-missing",
            "train",
            "--init",
            str(root / "no-model"),
            "--output",
            str(root / "never-8"),
        )
        (root / "hello.npz").write_text("hello")
        ws.start(
            "extra-not-corrections",
            "train", "--extra", str(root / "hello.npz"), "--output", str(root / "never-9"),
        )  # fmt: skip
        ws.start(
            "softmax-ensemble",
            "train", "--model", "softmax", "--ensemble", "2", "--output", str(root / "never-7"),
        )  # fmt: skip
        yield ws
    finally:
        for command in ws.commands.values():
            command.stop()


@pytest.fixture(scope="module")
def trained(work: Workspace) -> Workspace:
    """After ``train`` has written its artifact: evaluate and predict with it, both at once."""
    train = work.commands["train"].wait()
    assert train.returncode == 0, train.stderr[-3000:]
    digits = [str(work.images[d]) for d in range(10)]
    work.start("evaluate", "evaluate", str(work.output))
    work.start("predict", "predict", str(work.output), *digits)
    work.start(
        "predict-not-an-image", "predict", str(work.output), str(work.root / "not-an-image.png")
    )
    # An artifact as written before LiteRT served the models: no model.tflite, no "lite".
    version = (work.output / "LATEST").read_text(encoding="utf-8").strip()
    older = shutil.copytree(work.output / version, work.root / "older" / version)
    (older / "model.tflite").unlink()
    meta = json.loads((older / "metadata.json").read_text(encoding="utf-8"))
    del meta["lite"]
    (older / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    work.start("export", "export", str(older))
    return work


def validation_accuracy(work: Workspace) -> float:
    stdout = work.commands["train"].wait().stdout
    match = re.search(r"^validation accuracy: (\d+\.\d\d)%$", stdout, re.M)
    assert match, stdout
    return float(match.group(1))


def train_accuracy(work: Workspace) -> float:
    match = re.search(r"^test accuracy: (\d+\.\d\d)%$", work.commands["train"].wait().stdout, re.M)
    assert match, work.commands["train"].wait().stdout
    return float(match.group(1))


# Train, evaluate, predict.


def test_train(trained: Workspace) -> None:
    result = trained.commands["train"].wait()
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert any(line.startswith("artifact: ") for line in lines), result.stdout
    assert re.search(
        r"^model: softmax, version softmax-\d{8}T\d{6}Z-[0-9a-f]{8}$", result.stdout, re.M
    )
    assert re.search(r"^training time: \d+\.\d s$", result.stdout, re.M)
    # One epoch is 20 SGD steps on the first 2,000 training images outside the validation split:
    # 78-84% depending on the seed, far above chance (10%).
    assert 75.0 < train_accuracy(trained) <= 100.0
    # The accuracy on the held-out training images comes just before the test accuracy.
    assert 75.0 < validation_accuracy(trained) <= 100.0
    validation_line = next(i for i, line in enumerate(lines) if line.startswith("validation acc"))
    assert lines[validation_line + 1].startswith("test accuracy: ")
    # The artifact is there, and LATEST names it.
    version = (trained.output / "LATEST").read_text(encoding="utf-8").strip()
    assert (trained.output / version / "model.keras").is_file()
    assert (trained.output / version / "model.tflite").is_file()
    assert (trained.output / version / "metadata.json").is_file()
    assert re.search(
        r"^LiteRT: model\.tflite reads the 10,000 test images as TensorFlow does \(same digit "
        r"for \d+\.\d\d%, probabilities within \S+\)$",
        result.stdout,
        re.M,
    ), result.stdout
    assert f"artifact: {trained.output / version}" in lines
    assert "Traceback" not in result.stderr
    # The metadata has both figures, and how the split was made.
    meta = json.loads((trained.output / version / "metadata.json").read_text(encoding="utf-8"))
    assert meta["validation_examples"] == 5000
    assert meta["hyperparameters"]["train_examples"] == 2000
    assert meta["hyperparameters"]["validation_seed"] == meta["hyperparameters"]["seed"] == 1
    assert round(meta["validation_accuracy"] * 100, 2) == validation_accuracy(trained)
    assert round(meta["test_accuracy"] * 100, 2) == train_accuracy(trained)


def test_export_adds_the_litert_model_to_an_older_artifact(trained: Workspace) -> None:
    result = trained.commands["export"].wait()
    assert result.returncode == 0, result.stderr[-3000:]
    version = (trained.output / "LATEST").read_text(encoding="utf-8").strip()
    older = trained.root / "older" / version
    assert result.stdout.splitlines()[0] == f"artifact: {older}: model.tflite written"
    assert "LiteRT: model.tflite reads the 10,000 test images as TensorFlow does" in result.stdout
    meta = json.loads((older / "metadata.json").read_text(encoding="utf-8"))
    fresh = json.loads((trained.output / version / "metadata.json").read_text(encoding="utf-8"))
    # The same model converted by the same converter: the same figures as at training.
    assert meta["lite"]["parity_examples"] == fresh["lite"]["parity_examples"] == 10_000
    assert meta["lite"]["parity_argmax_agreement"] == fresh["lite"]["parity_argmax_agreement"]
    assert {k: v for k, v in meta.items() if k != "lite"} == {
        k: v for k, v in fresh.items() if k != "lite"
    }


def test_evaluate(trained: Workspace) -> None:
    result = trained.commands["evaluate"].wait()
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert re.search(r"^artifact: .+ \(softmax, softmax-\S+\)$", out, re.M), out
    # The same model on the same test set: the accuracy train reported.
    match = re.search(r"^test accuracy: (\d+\.\d\d)%$", out, re.M)
    assert match, out
    assert float(match.group(1)) == train_accuracy(trained)
    # ... and the validation accuracy recorded when it was trained.
    recorded = re.search(
        r"^validation accuracy: (\d+\.\d\d)% \(recorded in training, 5000 held-out training "
        r"images\)$",
        out,
        re.M,
    )
    assert recorded, out
    assert float(recorded.group(1)) == validation_accuracy(trained)
    assert "per-class accuracy:" in out
    per_class = re.findall(r"^  (\d): +(\d+\.\d\d)%$", out, re.M)
    assert [int(d) for d, _ in per_class] == list(range(10))
    assert all(0 <= float(a) <= 100 for _, a in per_class)
    assert "confusion matrix (rows: true digit, columns: predicted):" in out
    header = re.search(r"^ +0 +1 +2 +3 +4 +5 +6 +7 +8 +9$", out, re.M)
    assert header, out
    rows = re.findall(r"^ +(\d) ((?: +\d+){10})$", out, re.M)
    assert [int(d) for d, _ in rows] == list(range(10))
    matrix = np.array([[int(v) for v in values.split()] for _, values in rows])
    assert matrix.sum(axis=1).tolist() == TEST_COUNTS
    assert np.trace(matrix) / 100 == pytest.approx(float(match.group(1)), abs=0.006)


def test_predict(trained: Workspace) -> None:
    result = trained.commands["predict"].wait()
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert len(lines) == 10, result.stdout
    correct = 0
    for digit, line in enumerate(lines):
        match = re.fullmatch(r"(.+): (\d) \((\d+\.\d)%\)", line)
        assert match, line
        assert match.group(1) == str(trained.images[digit])
        assert 10.0 <= float(match.group(3)) <= 100.0  # the winner's probability
        correct += int(match.group(2)) == digit
    # A softmax trained for one epoch on 2,000 images reads most of these real MNIST digits.
    assert correct >= 7, result.stdout


def test_predict_file_that_is_not_an_image(trained: Workspace) -> None:
    result = trained.commands["predict-not-an-image"].wait()
    assert_one_line_error(result, 1)
    assert "not-an-image.png" in result.error_lines[0]
    assert "not an image" in result.error_lines[0]


# Errors: one line, non-zero exit, no traceback.


def assert_one_line_error(result: Finished, returncode: int) -> None:
    assert result.returncode == returncode, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(result.error_lines) == 1, result.stderr
    assert result.stderr.rstrip().splitlines()[-1] == result.error_lines[0]
    assert result.stdout == ""


def test_epochs_zero(work: Workspace) -> None:
    result = work.commands["epochs-0"].wait()
    assert_one_line_error(result, 2)
    assert result.error_lines[0] == (
        "mnist-train train: error: argument --epochs: 0 must be at least 1"
    )
    assert not (work.root / "never-0").exists()


def test_unknown_model(work: Workspace) -> None:
    result = work.commands["unknown-model"].wait()
    assert_one_line_error(result, 2)
    line = result.error_lines[0]
    assert "argument --model: invalid choice: 'resnet'" in line
    assert "'cnn'" in line
    assert "'softmax'" in line


def test_no_data_and_no_network(work: Workspace) -> None:
    result = work.commands["no-data"].wait()
    assert_one_line_error(result, 1)
    line = result.error_lines[0]
    assert line.startswith(ERROR_PREFIX + "could not download train-images-idx3-ubyte.gz")
    assert f"in {work.empty_data} " in line  # says where to put the files
    assert "--data-dir" in line
    assert "MNIST_DATA_DIR" in line
    assert list(work.empty_data.iterdir()) == []  # nothing partial left behind
    assert not (work.root / "never-2").exists()


def test_evaluate_a_folder_that_is_not_an_artifact(work: Workspace) -> None:
    result = work.commands["not-an-artifact"].wait()
    assert_one_line_error(result, 1)
    assert result.error_lines[0] == (
        f"{ERROR_PREFIX}{work.not_an_artifact} is not a model artifact "
        "(no metadata.json, model.keras or LATEST)"
    )


def test_learning_rate_zero(work: Workspace) -> None:
    result = work.commands["learning-rate-0"].wait()
    assert result.returncode != 0
    assert_one_line_error(result, result.returncode)
    assert "learning" in result.error_lines[0]
    assert not (work.root / "never-3").exists()


def test_validation_examples_zero(work: Workspace) -> None:
    result = work.commands["validation-0"].wait()
    assert_one_line_error(result, 2)
    assert result.error_lines[0] == (
        "mnist-train train: error: argument --validation-examples: 0 must be at least 1"
    )
    assert not (work.root / "never-4").exists()


def test_more_train_examples_than_are_left_after_the_split(work: Workspace) -> None:
    result = work.commands["too-many-train-examples"].wait()
    assert_one_line_error(result, 1)
    assert result.error_lines[0] == (
        f"{ERROR_PREFIX}--train-examples 56000 is more than the 55000 training images left "
        "after holding 5000 out for validation"
    )
    assert not (work.root / "never-5").exists()


def test_ensemble_of_softmax(work: Workspace) -> None:
    result = work.commands["softmax-ensemble"].wait()
    assert_one_line_error(result, 1)
    assert result.error_lines[0] == f"{ERROR_PREFIX}--ensemble applies to the CNN only"
    assert not (work.root / "never-7").exists()


def test_init_from_nothing(work: Workspace) -> None:
    result = work.commands["init-missing"].wait()
    assert_one_line_error(result, 1)
    assert result.error_lines[0] == (
        f"{ERROR_PREFIX}no model artifact at {work.root / 'no-model'}: train one with "
        "`mnist-train train`"
    )
    assert not (work.root / "never-8").exists()


def test_extra_that_is_not_corrections(work: Workspace) -> None:
    result = work.commands["extra-not-corrections"].wait()
    assert_one_line_error(result, 1)
    assert result.error_lines[0] == (
        f"{ERROR_PREFIX}{work.root / 'hello.npz'} is not a corrections file "
        "(mnist-corrections/1, written by mnist-api export-labels)"
    )
    assert not (work.root / "never-9").exists()


def test_negative_seed(work: Workspace) -> None:
    result = work.commands["negative-seed"].wait()
    assert_one_line_error(result, 2)
    assert result.error_lines[0] == (
        "mnist-train train: error: argument --seed: -1 must be between 0 and 4294967295"
    )
    assert not (work.root / "never-6").exists()


def test_errors_print_nothing_else(trained: Workspace) -> None:
    """A failed command shows the person its error line (after argparse's usage, for a usage
    error), and nothing else: no TensorFlow start-up logging."""
    noise = {}
    for name in FAILED_COMMANDS:
        result = trained.commands[name].wait()
        lines = result.stderr.rstrip().splitlines()
        usage = re.compile(r"^(usage: | {10,}\S)")  # argparse's usage block
        other = [line for line in lines[:-1] if not usage.match(line)]
        if other:
            noise[name] = other
    assert noise == {}


def test_no_command_prints_tensorflow_logging(trained: Workspace) -> None:
    """Training, evaluating and predicting load TensorFlow, which writes its own start-up lines
    to the console unless the command keeps them out."""
    for name in ("train", "evaluate", "export", "predict"):
        trained.commands[name].wait()
    noise = {
        name: [line for line in command.wait().stderr.splitlines() if TENSORFLOW_LINE.search(line)]
        for name, command in trained.commands.items()
    }
    assert {name: lines for name, lines in noise.items() if lines} == {}
    assert set(noise) >= {"train", "evaluate", "export", "predict", *FAILED_COMMANDS}
