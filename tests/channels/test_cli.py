"""`convscope index` and `convscope visualize` on a tiny saved network and image folder."""

import io
import json

from PIL import Image

import model
from app.cli import main
from model.channels import weights_sha256
from model.channels.files import read_index
from tests.channels.tiny import tiny_images, tiny_network


def _folder(root, images) -> None:
    for n, pixels in enumerate(images):
        folder = root / "test" / ("a", "b")[n % 2]
        folder.mkdir(parents=True, exist_ok=True)
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "PNG")
        (folder / f"{n:04d}.png").write_bytes(out.getvalue())


def test_index_then_visualize_write_beside_the_weights(tmp_path, capsys) -> None:
    net = tiny_network()
    weights = model.save(net, tmp_path / "tiny")
    images = tiny_images(10)
    _folder(tmp_path / "data", images)
    common = ["--model", "tiny", "--weights", str(weights)]
    assert main(["index", *common, "--data", str(tmp_path / "data"), "--batch-size", "3"]) == 0
    assert "channels of 5 layers over 10 images" in capsys.readouterr().out
    document = read_index(tmp_path / "tiny.channels")
    assert document["weights_sha256"] == weights_sha256(net)
    assert document["classes"] == ["a", "b"]
    for image in document["images"]:
        assert image["path"].startswith(("test/a/", "test/b/"))
        assert image["path"].split("/")[1] == document["classes"][image["label"]]
    assert (tmp_path / "tiny.channels" / "layer-02-pool1.png").exists()

    assert main(["visualize", *common, "--layers", "0", "--steps", "4"]) == 0
    assert "4 of 4 channels made" in capsys.readouterr().out
    made = sorted((tmp_path / "tiny.channels" / "visualizations").rglob("*.json"))
    assert [p.name for p in made] == [f"00-00{d}.json" for d in range(4)]
    meta = json.loads(made[0].read_text())
    assert meta["steps"] == 4 and meta["weights_sha256"] == weights_sha256(net)
    assert main(["visualize", *common, "--layers", "0", "--steps", "4"]) == 0
    assert "0 of 4 channels made" in capsys.readouterr().out  # already there


def test_index_says_what_is_wrong_with_the_data(tmp_path, capsys) -> None:
    weights = model.save(tiny_network(), tmp_path / "tiny")
    _folder(tmp_path / "data", tiny_images(4, shape=(6, 6, 3)))
    code = main(
        ["index", "--model", "tiny", "--weights", str(weights), "--data", str(tmp_path / "data")]
    )
    assert code == 2
    assert "the images are (6, 6, 3), the model reads (8, 8, 3)" in capsys.readouterr().err


def test_visualize_keeps_a_few_frames_and_a_relu_has_its_own_strip(tmp_path, capsys) -> None:
    weights = model.save(tiny_network(dead=False), tmp_path / "tiny")
    common = ["visualize", "--model", "tiny", "--weights", str(weights), "--steps", "32"]
    assert main([*common, "--layers", "0,1", "--frames", "3"]) == 0
    assert "8 of 8 channels made" in capsys.readouterr().out
    folder = next((tmp_path / "tiny.channels" / "visualizations").glob("*/*"))
    expected = [f"0{i}-00{d}.png" for i in (0, 1) for d in range(4)]
    assert sorted(p.name for p in folder.glob("*.png")) == expected
    for layer in (0, 1):
        meta = json.loads((folder / f"0{layer}-002.json").read_text())
        assert meta["frames"]["steps"] == [0, 16, 32] and meta["strip"] == f"0{layer}-002.png"
    assert main([*common, "--frames", "1"]) == 2
    assert "--frames is 0 (all) or at least 2" in capsys.readouterr().err
