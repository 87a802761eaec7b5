"""`convscope forward IMAGE --model ID --out DIR`: the layers as PNGs and a JSON summary."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.cli import main
from tests.images import digit, jpeg, photo


def test_forward_writes_every_layer_and_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(jpeg(photo(60, 40)))
    out = tmp_path / "out"
    assert main(["forward", str(image), "--model", "cifar10", "--out", str(out)]) == 0
    assert "17 layers written" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "cifar10" and summary["input"]["shape"] == [32, 32, 3]
    assert [layer["png"] for layer in summary["layers"]][:2] == ["00-conv1.png", "01-relu1.png"]
    assert sum(summary["probabilities"]) == pytest.approx(1.0)
    assert len(summary["top"]) == 5
    for layer in summary["layers"]:
        picture = Image.open(io.BytesIO((out / layer["png"]).read_bytes()))
        assert picture.format == "PNG" and picture.mode == "RGB"
        assert set(layer["stats"]) == {"min", "max", "mean", "std", "zeros"}
    assert np.asarray(Image.open(out / "input.png")).shape[2] == 3


def test_forward_mnist_with_a_colormap(tmp_path: Path) -> None:
    image = tmp_path / "seven.png"
    digit().save(image)
    out = tmp_path / "digit"
    args = ["forward", str(image), "--model", "mnist", "--out", str(out), "--colormap", "gray"]
    assert main(args) == 0
    pixels = np.asarray(Image.open(out / "00-conv1.png"))
    assert (pixels[..., 0] == pixels[..., 1]).all()  # gray
    assert len(json.loads((out / "summary.json").read_text())["layers"]) == 12  # 4 conv stages


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        ("missing", "No such file"),
        ("text", "not an image"),
        ("unknown-model", "unknown model"),
    ],
)
def test_forward_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str, words: str
) -> None:
    image = tmp_path / "input"
    if setup != "missing":
        image.write_bytes(b"hello" if setup == "text" else jpeg())
    model_id = "imagenet" if setup == "unknown-model" else "cifar10"
    status = main(["forward", str(image), "--model", model_id, "--out", str(tmp_path / "o")])
    assert status == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_help_shows_forward(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["forward", "--help"])
    out = capsys.readouterr().out
    assert "--model" in out and "--out" in out and "convscope forward cat.jpg" in out
