"""The training step in worker processes: the numbers of one process, whichever network
and weights it is given, and failures that say what happened instead of hanging."""

import numpy as np
import pytest

import model
from model.training.workers import GradientWorkers
from tests.model.test_network import TINY_SPEC

pytestmark = pytest.mark.slow  # starts worker processes

OTHER_SPEC = {
    **TINY_SPEC,
    "name": "other",
    "layers": [{"kind": "conv", "filters": 2, "size": 5, "pad": 2}, {"kind": "fc", "units": 3}],
}


def batch(seed: int, n: int = 9) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 8, 8, 2)).astype(np.float32), rng.integers(0, 3, n)


def assert_same_step(workers: GradientWorkers, net: model.Network, seed: int) -> None:
    x, labels = batch(seed)
    loss, grads, scores = net.loss_and_scores(x, labels)
    shard_loss, shard_grads, shard_scores = workers.loss_and_scores(net, x, labels)
    assert shard_loss == pytest.approx(loss, rel=1e-5)
    np.testing.assert_allclose(shard_scores, scores, rtol=1e-5, atol=1e-6)
    assert shard_grads.keys() == grads.keys()
    for name in grads:
        np.testing.assert_allclose(shard_grads[name], grads[name], rtol=1e-4, atol=1e-6)


def test_worker_processes_compute_the_same_loss_and_gradients():
    net = model.build(TINY_SPEC, seed=3)
    with GradientWorkers(2) as workers:
        assert_same_step(workers, net, seed=4)
        net.init_weights(seed=8)  # new weights reach the workers with the next step
        assert_same_step(workers, net, seed=5)
        assert_same_step(workers, model.build(OTHER_SPEC, seed=1), seed=6)  # another network
        assert_same_step(workers, net.astype(np.float64), seed=7)  # and another dtype


def test_more_workers_than_images_leaves_the_extra_ones_idle():
    net = model.build(TINY_SPEC, seed=3)
    with GradientWorkers(3) as workers:
        x, labels = batch(seed=1, n=2)
        _, _, scores = workers.loss_and_scores(net, x, labels)
        assert scores.shape == (2, 3)
        assert_same_step(workers, net, seed=2)


def test_a_worker_error_is_raised_here_and_the_next_step_works():
    net = model.build(TINY_SPEC, seed=3)
    x, labels = batch(seed=4)
    labels[-1] = 7  # no such class
    with GradientWorkers(2) as workers:
        with pytest.raises(IndexError):
            workers.loss_and_scores(net, x, labels)
        assert_same_step(workers, net, seed=5)


def test_a_worker_that_dies_is_a_clear_error_not_a_hang():
    net = model.build(TINY_SPEC, seed=3)
    with GradientWorkers(2) as workers:
        assert_same_step(workers, net, seed=4)
        workers._processes[1].kill()
        workers._processes[1].wait()
        with pytest.raises(RuntimeError, match="worker 1 stopped unexpectedly"):
            workers.loss_and_scores(net, *batch(seed=5))
        assert_same_step(workers, net, seed=6)  # a later step starts fresh workers


def test_workers_run_this_package_whatever_the_current_directory_holds(tmp_path, monkeypatch):
    decoy = tmp_path / "model"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise ImportError('a folder that is not ConvScope')\n")
    monkeypatch.chdir(tmp_path)
    with GradientWorkers(2) as workers:
        assert_same_step(workers, model.build(TINY_SPEC, seed=3), seed=4)
