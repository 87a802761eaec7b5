"""`convscope train` and `convscope eval`, called as the command line calls them, on a tiny
MNIST-format dataset made here: exit codes, files written, resume, errors, and an accuracy
that matches a loop over the test images."""

import json
import struct
from pathlib import Path

import numpy as np
import pytest

import model
from app.cli import main


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory) -> Path:
    """32 training and 12 test digits (noise, labelled 0-9) in the IDX format."""
    tmp_path = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    folder = tmp_path / "mnist"
    folder.mkdir()
    for prefix, count in (("train", 32), ("t10k", 12)):
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
            idx_bytes(rng.integers(0, 256, (count, 28, 28)))
        )
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(np.arange(count) % 10))
    return folder


@pytest.fixture
def tuned(monkeypatch) -> list[bool]:
    """Records the trainer's malloc tuning instead of changing this test process's malloc."""
    calls: list[bool] = []
    monkeypatch.setattr(
        "model.training.malloc.keep_freed_buffers", lambda: calls.append(True) or True
    )
    return calls


def train_args(data: Path, tmp_path: Path, *more: str) -> list[str]:
    return [
        "train", "--model", "mnist", "--data", str(data), "--epochs", "1",
        "--batch-size", "16", "--workers", "1",
        "--out", str(tmp_path / "out" / "mnist"), "--checkpoint", str(tmp_path / "mnist.ckpt.npz"),
        *more,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def trained(mnist_dir: Path, tmp_path_factory) -> tuple[Path, list[bool]]:
    """One `convscope train` run (one epoch), shared: (its folder, the malloc tuning calls)."""
    tmp_path = tmp_path_factory.mktemp("trained")
    calls: list[bool] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("model.training.malloc.keep_freed_buffers", lambda: calls.append(True))
        assert main(train_args(mnist_dir, tmp_path)) == 0
    return tmp_path, calls


def test_train_writes_weights_card_and_checkpoint_then_resumes(
    mnist_dir: Path, trained, tuned: list[bool], capsys
) -> None:
    tmp_path, calls = trained
    assert calls == [True]  # the training process tunes its allocator
    card = json.loads((tmp_path / "out" / "mnist.json").read_text())
    assert card["epochs"] == 1 and card["dataset"]["train_images"] == 32
    assert card["dataset"]["name"] == "mnist" and len(card["history"]) == 1
    assert (tmp_path / "mnist.ckpt.npz").exists()
    trained = model.load(tmp_path / "out" / "mnist")

    capsys.readouterr()
    assert main(train_args(mnist_dir, tmp_path, "--resume")) == 0
    printed = capsys.readouterr()
    assert "resumed from" in printed.out + printed.err
    again = model.load(tmp_path / "out" / "mnist")  # no epoch left: the same weights
    for name, value in trained.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[name], value)


def test_train_reports_a_missing_dataset(tmp_path: Path, tuned, capsys) -> None:
    assert main(train_args(tmp_path / "nowhere", tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("convscope train: ") and "nowhere" in err and "Traceback" not in err


def test_train_interrupted_says_how_to_resume(
    mnist_dir: Path, tmp_path: Path, tuned, monkeypatch, capsys
) -> None:
    def interrupted(config, resume=False):
        raise KeyboardInterrupt

    monkeypatch.setattr("model.training.train.train", interrupted)
    assert main(train_args(mnist_dir, tmp_path)) == 130
    assert "--resume" in capsys.readouterr().err


def test_eval_json_matches_a_loop_and_the_table_has_the_matrix(
    mnist_dir: Path, trained, capsys
) -> None:
    weights = trained[0] / "out" / "mnist.npz"
    assert main(["eval", "--model", "mnist", "--data", str(mnist_dir), "--weights", str(weights),
                 "--json"]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)

    net = model.load(weights)
    images = np.frombuffer((mnist_dir / "t10k-images-idx3-ubyte").read_bytes()[16:], np.uint8)
    images = images.reshape(12, 28, 28, 1)
    predicted = [int(net.predict(net.preprocess(image[None])).argmax()) for image in images]
    right = sum(p == label % 10 for label, p in enumerate(predicted))
    assert result["model"] == "mnist" and result["count"] == 12
    assert result["accuracy"] == pytest.approx(right / 12)
    assert np.array(result["confusion"]).sum() == 12

    assert (
        main(["eval", "--model", "mnist", "--data", str(mnist_dir), "--weights", str(weights)]) == 0
    )
    out = capsys.readouterr().out
    assert out.startswith(f"accuracy {right / 12:.2%} on 12 images") and "confusion" in out


def test_eval_reports_a_missing_dataset(tmp_path: Path, capsys) -> None:
    assert main(["eval", "--model", "mnist", "--data", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("convscope eval: ") and "Traceback" not in err
