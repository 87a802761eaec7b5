"""model/training/evaluate.py on a hand-set network whose prediction is known: the accuracy,
the confusion matrix (against a loop), the per-class figures and the printed table."""

import json

import numpy as np
import pytest

import model
from model.training.evaluate import Evaluation, evaluate

CLASSES = ["red", "green", "blue"]
# One pixel in, its strongest channel out: fc weight = identity, no normalisation.
SPEC = {
    "name": "strongest",
    "input": [1, 1, 3],
    "classes": CLASSES,
    "normalization": {"mean": [0.0] * 3, "std": [1.0] * 3},
    "layers": [{"kind": "fc", "units": 3}, {"kind": "softmax"}],
}


def strongest_channel_net() -> model.Network:
    net = model.build(SPEC)
    net.load_state_dict({"fc1.weight": np.eye(3, dtype=np.float32), "fc1.bias": np.zeros(3)})
    return net


@pytest.mark.parametrize("workers", [1, 3])
def test_accuracy_and_confusion_match_a_loop(workers: int) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 8, (700, 1, 1, 3)).astype(np.uint8)  # ties too: the first wins
    labels = rng.integers(0, 3, 700)
    result = evaluate(strongest_channel_net(), images, labels, workers=workers)

    confusion = np.zeros((3, 3), int)
    for image, label in zip(images, labels, strict=True):
        channel = image[0, 0]
        predicted = int(np.flatnonzero(channel == channel.max())[0])  # argmax: first maximum
        confusion[label, predicted] += 1
    assert result.count == 700 and result.classes == CLASSES
    assert np.array_equal(result.confusion, confusion)
    assert result.accuracy == pytest.approx(np.trace(confusion) / 700)
    for i, name in enumerate(CLASSES):
        assert result.per_class[name] == pytest.approx(confusion[i, i] / confusion[i].sum())
    as_json = json.loads(json.dumps(result.as_dict()))
    assert as_json["confusion"] == confusion.tolist() and as_json["count"] == 700


def test_table_prints_per_class_accuracy_and_the_confusion_matrix() -> None:
    result = Evaluation(0.75, 4, np.array([[2, 0], [1, 1]]), ["cat", "dog"])
    assert result.table().splitlines() == [
        "accuracy 75.00% on 4 images",
        "",
        "class accuracy",
        "cat   100.00%",
        "dog    50.00%",
        "",
        "confusion (rows: true class, columns: predicted)",
        "      cat   dog",  # each class right-aligned over its column of counts
        "cat     2     0",
        "dog     1     1",
    ]


def test_long_class_names_are_cut_in_the_matrix_header_only() -> None:
    table = Evaluation(1.0, 1, np.array([[1, 0], [0, 0]]), ["airplane", "automobile"]).table()
    lines = table.splitlines()
    assert lines[3].startswith("airplane ") and lines[4].split()[1] == "nan%"
    assert lines[-3].split() == ["airpl", "autom"]
    assert lines[-2].split() == ["airplane", "1", "0"]
