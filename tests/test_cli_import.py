"""`convscope import` and the models directory: what is written, re-imports, refusals that
write nothing, broken files that are skipped, and `convscope eval` recording accuracy."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import model
from app.cli import main
from app.models_dir import load_imported
from tests.onnx_graphs import Graph, small_classifier


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "models"
    monkeypatch.setenv("CONVSCOPE_MODELS_DIR", str(directory))
    monkeypatch.setenv("CONVSCOPE_CACHE_DIR", str(tmp_path / "cache"))
    return directory


def onnx_file(tmp_path: Path, graph: Graph, name: str = "net.onnx") -> str:
    path = tmp_path / name
    path.write_bytes(graph.bytes())
    return str(path)


def test_import_writes_weights_and_card(tmp_path, models_dir, capsys):
    graph = small_classifier(seed=1)
    source = onnx_file(tmp_path, graph)
    status = main(
        ["import", source, "--id", "pets", "--classes", "a,b,c,d,e", "--mean", "1", "2", "3"]
        + ["--std", "4", "5", "6"]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert "imported pets: 5 layers (conv relu pool fc softmax), 437 parameters" in out
    assert sorted(p.name for p in models_dir.iterdir()) == ["pets.json", "pets.npz"]
    card = json.loads((models_dir / "pets.json").read_text())
    assert card["source"]["file"] == "net.onnx" and card["source"]["opset"] == 13
    assert card["source"]["producer"] == "tests/onnx_graphs.py"
    assert card["test_accuracy"] is None and card["accuracy"].startswith("not measured")
    assert card["spec"]["normalization"] == {"mean": [1.0, 2.0, 3.0], "std": [4.0, 5.0, 6.0]}
    assert card["spec"]["input_style"] == "photo" and card["classes"] == list("abcde")
    assert card["onnx_nodes"]["pool1"] == ["maxpool3", "flatten4"]
    # PyTorch's layout, the graph's own numbers.
    with np.load(models_dir / "pets.npz") as weights:
        np.testing.assert_array_equal(weights["conv1.weight"], graph.weights["conv1.W"])
        np.testing.assert_array_equal(weights["fc1.weight"], graph.weights["gemm5.W"])
    net = model.load(models_dir / "pets.json")
    assert net.classes == list("abcde") and net.input_shape == (8, 8, 3)


def test_two_imports_and_a_reimport(tmp_path, models_dir, capsys):
    first = onnx_file(tmp_path, small_classifier(seed=1), "a.onnx")
    grey = onnx_file(tmp_path, small_classifier(seed=2, channels=1, side=12), "b.onnx")
    assert main(["import", first, "--id", "one"]) == 0
    assert main(["import", grey, "--id", "two", "--validate"]) == 0
    served = load_imported(models_dir)
    assert list(served) == ["one", "two"]
    assert served["two"].digits and served["two"].network.input_shape == (12, 12, 1)
    assert served["one"].network.classes == ["0", "1", "2", "3", "4"]
    before = served["one"].network.state_dict()["conv1.weight"].copy()
    again = onnx_file(tmp_path, small_classifier(seed=7), "a2.onnx")
    assert main(["import", again, "--id", "one", "--input-style", "digits"]) == 0
    assert "replaced one" in capsys.readouterr().out
    reloaded = load_imported(models_dir)["one"]
    assert reloaded.digits and reloaded.network.card["source"]["file"] == "a2.onnx"
    assert not np.array_equal(reloaded.network.state_dict()["conv1.weight"], before)
    assert sorted(p.name for p in models_dir.iterdir()) == [
        "one.json",
        "one.npz",
        "two.json",
        "two.npz",
    ]


def test_validate_prints_the_difference_to_onnxruntime(tmp_path, models_dir, capsys):
    pytest.importorskip("onnxruntime")
    assert main(["import", onnx_file(tmp_path, small_classifier()), "--id", "v", "--validate"]) == 0
    out = capsys.readouterr().out
    assert "largest difference to ONNX Runtime" in out
    difference = json.loads((models_dir / "v.json").read_text())["validation"]
    assert difference["onnxruntime_max_difference"] < 1e-5


def refused(tmp_path, models_dir, capsys, args) -> str:
    assert main(["import", *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("convscope import: ")
    assert not models_dir.exists() or not any(models_dir.iterdir())  # nothing half-written
    return err


def test_refusals_write_nothing(tmp_path, models_dir, capsys):
    good = onnx_file(tmp_path, small_classifier())
    garbage = tmp_path / "broken.onnx"
    garbage.write_bytes(b"definitely not protobuf \xff\xfe" * 10)
    residual = Graph((1, 3, 8, 8))
    residual.conv(3, 3, pads=1)
    skip = residual.current
    residual.op("Relu")
    from onnx import helper

    residual.nodes.append(helper.make_node("Add", [residual.current, skip], ["s"], "skip_add"))
    residual.current = "s"
    residual_file = onnx_file(tmp_path, residual.op("Flatten").gemm(2), "res.onnx")
    cases = {
        "is not an ONNX model": [str(garbage), "--id", "x"],
        "feeds 2 nodes": [residual_file, "--id", "x"],
        "gives 5 scores, but 2 class names came": [good, "--id", "x", "--classes", "a,b"],
        "--mean needs 3 numbers": [good, "--id", "x", "--mean", "1"],
        "--std must be positive": [good, "--id", "x", "--std", "1", "0", "1"],
        "is a shipped model's id": [good, "--id", "cifar10"],
        "must be 1 to 40 lower-case": [good, "--id", "../escape"],
        "No such file": [str(tmp_path / "missing.onnx"), "--id", "x"],
    }
    for expected, args in cases.items():
        assert expected in refused(tmp_path, models_dir, capsys, args), expected


def test_classes_file(tmp_path, models_dir):
    names = tmp_path / "classes.txt"
    names.write_text("cat\ndog\n\nbird\nfish\nfrog\n")
    source = onnx_file(tmp_path, small_classifier())
    assert main(["import", source, "--id", "f", "--classes-file", str(names)]) == 0
    assert load_imported(models_dir)["f"].network.classes == ["cat", "dog", "bird", "fish", "frog"]


def test_broken_files_in_the_models_dir_are_skipped(tmp_path, models_dir, caplog):
    assert main(["import", onnx_file(tmp_path, small_classifier()), "--id", "good"]) == 0
    assert main(["import", onnx_file(tmp_path, small_classifier(3)), "--id", "lost"]) == 0
    (models_dir / "lost.npz").unlink()  # weights gone
    (models_dir / "garbled.json").write_text("{not json")
    (models_dir / "wrong.json").write_text((models_dir / "good.json").read_text())
    (models_dir / "wrong.npz").write_bytes(b"PK\x03\x04 torn zip")
    (models_dir / "cifar10.json").write_text((models_dir / "good.json").read_text())
    served = load_imported(models_dir, skip=("cifar10", "mnist"))
    assert list(served) == ["good"]
    logged = caplog.text
    for name in ("lost.json", "garbled.json", "wrong.json", "cifar10.json"):
        assert f"{name} skipped" in logged


def test_eval_records_the_accuracy_in_the_card(tmp_path, models_dir, capsys):
    graph = small_classifier(seed=4)
    assert main(["import", onnx_file(tmp_path, graph), "--id", "ev"]) == 0
    net = model.load(models_dir / "ev.json")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (12, 8, 8, 3), np.uint8)
    predicted = net.predict(net.preprocess(pixels)).argmax(1)
    labels = np.arange(12) % 5  # every class has images
    labels[:4] = predicted[:4]  # and some are right
    expected = float((predicted == labels).mean())
    for i, (image, label) in enumerate(zip(pixels, labels, strict=True)):
        folder = tmp_path / "data" / "test" / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i}.png")
    capsys.readouterr()
    assert main(["eval", "--model", "ev", "--data", str(tmp_path / "data"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(expected)
    card = json.loads((models_dir / "ev.json").read_text())
    assert card["test_accuracy"] == pytest.approx(expected)
    assert card["evaluation"]["count"] == 12 and card["evaluation"]["dataset"] == "data"


def test_forward_writes_an_imported_models_layers(tmp_path, models_dir, capsys):
    assert main(["import", onnx_file(tmp_path, small_classifier()), "--id", "fw"]) == 0
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), np.uint8)).save(image)
    out = tmp_path / "layers"
    assert main(["forward", str(image), "--model", "fw", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [layer["kind"] for layer in summary["layers"]] == [
        "conv",
        "relu",
        "pool",
        "fc",
        "softmax",
    ]
    assert len(list(out.glob("*.png"))) == 6  # the input and five layers
