"""The trainer on generated data: it learns, and resuming gives the uninterrupted result."""

import json

import numpy as np
import pytest

import model
from model.optim import SGD, one_cycle
from model.training.datasets import Dataset
from model.training.train import TrainConfig, train

SPEC = {
    "name": "tiny",
    "input": [8, 8, 1],
    "classes": ["dark", "light"],
    "normalization": {"mean": [127.5], "std": [64.0]},
    "layers": [
        {"kind": "conv", "filters": 4, "size": 3, "pad": 1},
        {"kind": "relu"},
        {"kind": "pool", "size": 2},
        {"kind": "fc", "units": 2},
        {"kind": "softmax"},
    ],
}


def make_split(n: int, seed: int) -> Dataset:
    """Images whose class is whether the top half is brighter than the bottom half."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.integers(0, 100, (n, 8, 8, 1))
    images[labels == 1, :4] += 150
    images[labels == 0, 4:] += 150
    return Dataset(images.astype(np.uint8), labels, ["dark", "light"], "generated", "0" * 64)


def config(tmp_path, name: str, epochs: int = 3, workers: int = 2) -> TrainConfig:
    return TrainConfig(
        model="tiny",
        data="generated",
        epochs=epochs,
        batch_size=16,
        lr=0.05,
        augmentation="none",
        out=str(tmp_path / name / "tiny"),
        checkpoint=str(tmp_path / name / "tiny.ckpt.npz"),
        workers=workers,
    )


def run(cfg: TrainConfig, **kwargs):
    return train(
        cfg,
        train_set=make_split(96, 0),
        test_set=make_split(40, 1),
        net=model.build(SPEC, seed=0),
        progress=False,
        **kwargs,
    )


def test_training_learns_and_writes_weights_and_card(tmp_path):
    result = run(config(tmp_path, "full", workers=1))
    losses = [log.loss for log in result.history]
    assert losses[-1] < 0.5 * losses[0]
    assert result.history[-1].test_accuracy >= 0.9
    card = json.loads((tmp_path / "full" / "tiny.json").read_text())
    assert card["epochs"] == 3 and card["test_accuracy"] == result.history[-1].test_accuracy
    assert card["dataset"]["sha256"] == "0" * 64 and card["classes"] == ["dark", "light"]
    assert model.load(result.weights_path).classes == ["dark", "light"]


def interrupt_after(epochs: int):
    """An on_epoch that presses Ctrl-C once `epochs` epochs are done."""

    def on_epoch(log) -> None:
        if log.epoch == epochs:
            raise KeyboardInterrupt

    return on_epoch


@pytest.mark.slow  # training-step worker processes
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    whole = run(config(tmp_path, "whole"))
    with pytest.raises(KeyboardInterrupt):
        run(config(tmp_path, "split"), on_epoch=interrupt_after(1))
    assert not (tmp_path / "split" / "tiny.npz").exists()  # no weights, only the checkpoint
    resumed = run(config(tmp_path, "split"), resume=True)
    assert [log.epoch for log in resumed.history] == [1, 2, 3]
    for name, value in whole.net.state_dict().items():
        np.testing.assert_array_equal(resumed.net.state_dict()[name], value, err_msg=name)


def test_resume_refuses_a_checkpoint_made_with_other_options(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run(config(tmp_path, "a", epochs=2, workers=1), on_epoch=interrupt_after(1))
    with pytest.raises(ValueError, match="epochs=2"):
        run(config(tmp_path, "a", epochs=5), resume=True)


def test_sgd_matches_torch_nesterov_formula():
    p = np.array([1.0, -2.0])
    optimizer = SGD({"p": p}, lr=0.1, momentum=0.9, weight_decay=0.01)
    g1 = np.array([0.5, 0.5])
    optimizer.step({"p": g1})
    # torch: g = grad + wd * p; v = g (first step: mu * 0 + g); p -= lr * (g + mu * v)
    g = g1 + 0.01 * np.array([1.0, -2.0])
    expected = np.array([1.0, -2.0]) - 0.1 * (g + 0.9 * g)
    np.testing.assert_allclose(p, expected)
    v = g
    g2 = g1 + 0.01 * expected
    v = 0.9 * v + g2
    optimizer.step({"p": g1})
    np.testing.assert_allclose(p, expected - 0.1 * (g2 + 0.9 * v))


def test_one_cycle_rises_to_the_peak_then_falls():
    lrs = [one_cycle(step, 100, 0.05) for step in range(101)]
    assert lrs[0] == pytest.approx(0.05 / 25)
    assert max(lrs) == pytest.approx(0.05) and int(np.argmax(lrs)) == 20
    assert lrs[-1] == pytest.approx(0.05 / 1e4)
    assert all(a <= b for a, b in zip(lrs[:20], lrs[1:21], strict=True))
    assert all(a >= b for a, b in zip(lrs[20:-1], lrs[21:], strict=True))


def test_recipe_defaults_follow_design():
    cifar = TrainConfig.for_model("cifar10", "data", epochs=None)
    assert (cifar.epochs, cifar.lr, cifar.batch_size, cifar.weight_decay) == (60, 0.05, 128, 5e-4)
    assert cifar.augmentation == "flip-crop" and cifar.momentum == 0.9
    assert cifar.label_smoothing == 0.1
    assert TrainConfig.for_model("mnist", "data").augmentation == "digits"
    assert TrainConfig.for_model("cs231n", "data").augmentation == "flip-crop"
