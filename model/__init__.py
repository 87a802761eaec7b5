"""ConvScope's ConvNet in NumPy: layers (layers.py), the network (network.py), the
optimiser (optim.py) and weights I/O (weights.py). Datasets, training and evaluation live
apart, in model/training/.

import model
net = model.load("cifar10")        # shipped, trained weights
net = model.build("cifar10")       # the same architecture, freshly initialised
volumes = net.forward(x)           # x: (N, H, W, D) float32; one volume per layer
"""

from model.layers import ReceptiveField
from model.network import Network
from model.weights import build, load, load_weights, read_spec, save, shipped_models

__all__ = [
    "Network",
    "ReceptiveField",
    "build",
    "load",
    "load_weights",
    "read_spec",
    "save",
    "shipped_models",
]
