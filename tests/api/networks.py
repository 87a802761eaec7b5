"""The networks the API tests compare the server against, through the Python API."""

import model

CIFAR_LAYERS = 17  # INPUT, 15 hidden layers, SOFTMAX: the cifar10 spec (model/specs/cifar10.json)


def reference(model_id: str) -> model.Network:
    """The network as the server loads it: trained if shipped, else the same fresh build."""
    try:
        return model.load(model_id)
    except FileNotFoundError:
        return model.build(model_id)
