"""`convscope explain IMAGE --model ID --method M [--target CLASS] --out FILE.png`."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import model
from app import heatmap, imaging
from app.cli import main
from model import attributions
from tests.images import jpeg, photo


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "photo.jpg"
    path.write_bytes(jpeg(photo(60, 40)))
    return path


def test_explain_writes_the_routes_picture_and_names_the_target(
    image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "why.png"
    args = ["explain", str(image), "--model", "cifar10", "--method", "gradcam"]
    assert main([*args, "--target", "dog", "--out", str(out), "--upscale", "4"]) == 0
    printed = capsys.readouterr().out
    net = model.load("cifar10")
    pixels = imaging.prepare(image.read_bytes(), (32, 32, 3), digits=False, max_pixels=10**7)
    x = net.preprocess(pixels[None])[0]
    expected = attributions.gradcam(net, x, 5)
    assert f"dog (class 5), probability {expected.probability:.1%}" in printed
    assert "layer: 14 (pool3)" in printed
    assert out.read_bytes() == heatmap.overlay_png(pixels, expected.values, 0.7, 4)
    assert Image.open(io.BytesIO(out.read_bytes())).size == (128, 128)


def test_explain_integrated_gradients_prints_the_completeness_gap(
    image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ig.png"
    args = ["explain", str(image), "--model", "cifar10", "--method", "integrated-gradients"]
    assert main([*args, "--target", "3", "--steps", "8", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "cat (class 3)" in printed and "completeness gap: " in printed
    assert np.asarray(Image.open(out)).shape == (256, 256, 3)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--model", "cifar10", "--method", "saliency", "--target", "zebra"], "no class 'zebra'"),
        (["--model", "cifar10", "--method", "saliency", "--target", "12"], "no class 12"),
        (["--model", "cifar10", "--method", "gradcam", "--layer", "15"], "is a fc layer"),
        (["--model", "nope", "--method", "saliency"], "nope"),
    ],
)
def test_explain_errors_are_one_line(
    image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra, words
) -> None:
    assert main(["explain", str(image), *extra, "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("convscope explain: ") and words in err
    assert not (tmp_path / "x.png").exists()
