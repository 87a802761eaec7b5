"""What a channel responds to: the dataset patches that excite it most (index.py, files.py)
and the image that excites it most, made by gradient ascent (visualize.py)."""

from model.channels.index import INDEXED_KINDS, ChannelIndex, build_index, receptive_patch
from model.channels.visualize import VisSettings, Visualization, visualize, weights_sha256

__all__ = [
    "INDEXED_KINDS",
    "ChannelIndex",
    "VisSettings",
    "Visualization",
    "build_index",
    "receptive_patch",
    "visualize",
    "weights_sha256",
]
