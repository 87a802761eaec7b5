"""3x3 convolutions by Winograd's minimal filtering algorithm F(2x2, 3x3).

Each 2x2 block of output pixels is computed from the 4x4 input tile under it with 16
multiplications per (input channel, filter) pair instead of 36: 2.25x fewer than im2col,
for a few additions to transform input tiles and output tiles (Lavin and Gray, "Fast
Algorithms for Convolutional Neural Networks", 2015). In NumPy the 16 multiplications
become 16 matrix products, (tiles x C) @ (C x F), batched in one np.matmul call.

Used for the training step's 3x3, stride 1, padding 1 convolutions (forward, and the input
gradient, which is the same kind of convolution): see Conv in model/layers.py. The
transforms are exact in binary floating point up to rounding (their entries are 0, +-1 and
+-1/2), so the result matches im2col to float32 rounding.
"""

from __future__ import annotations

import numpy as np

# The filter transform G; for a 3x3 filter g it gives the 4x4 tile G g G^T.
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float32)
# The same on the 9 flattened filter taps, as one (16, 9) matrix: one product for all filters.
G_TAPS = np.kron(G, G)


def applies(size: int, stride: int, pad: int) -> bool:
    """Whether a convolution is one this module computes: 3x3, stride 1, padding 1."""
    return size == 3 and stride == 1 and pad == 1


def transform_filters(weight: np.ndarray) -> np.ndarray:
    """(F, C, 3, 3) filters -> (16, C, F): G g G^T for every filter and channel.

    A transposed view of a (16, F, C) array: np.matmul passes it to BLAS as it is."""
    f, c = weight.shape[:2]
    tiles = G_TAPS @ weight.reshape(f * c, 9).T
    return tiles.reshape(16, f, c).transpose(0, 2, 1)


def _input_tiles(x: np.ndarray, th: int, tw: int) -> np.ndarray:
    """B^T d B for every 4x4 tile (stride 2) of x padded by 1: (16, N * th * tw, C)."""
    n, h, w, c = x.shape
    padded = np.zeros((n, 2 * th + 2, 2 * tw + 2, c), x.dtype)
    padded[:, 1 : h + 1, 1 : w + 1] = x
    # B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], along rows ...
    d = [padded[:, a : a + 2 * th : 2] for a in range(4)]
    rows = (d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3])
    tiles = np.empty((16, n, th, tw, c), x.dtype)
    for i, r in enumerate(rows):
        # ... then along columns, written straight into the tile position (i, j).
        e = [r[:, :, b : b + 2 * tw : 2] for b in range(4)]
        np.subtract(e[0], e[2], out=tiles[4 * i])
        np.add(e[1], e[2], out=tiles[4 * i + 1])
        np.subtract(e[2], e[1], out=tiles[4 * i + 2])
        np.subtract(e[1], e[3], out=tiles[4 * i + 3])
    return tiles.reshape(16, n * th * tw, c)


def _output_blocks(m: np.ndarray, n: int, th: int, tw: int) -> np.ndarray:
    """A^T m A for every tile: (16, N * th * tw, F) -> (N, 2 * th, 2 * tw, F)."""
    f = m.shape[-1]
    m = m.reshape(4, 4, n, th, tw, f)
    # A^T = [[1, 1, 1, 0], [0, 1, -1, -1]], along rows, then along columns.
    s = (m[0] + m[1] + m[2], m[1] - m[2] - m[3])
    out = np.empty((n, 2 * th, 2 * tw, f), m.dtype)
    for i, r in enumerate(s):
        out[:, i::2, 0::2] = r[0] + r[1] + r[2]
        out[:, i::2, 1::2] = r[1] - r[2] - r[3]
    return out


def conv3x3(x: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """Convolve (N, H, W, C) with 3x3 filters, stride 1, zero padding 1: (N, H, W, F).

    `filters` is transform_filters(weight), so that a layer can transform once per step.
    """
    n, h, w, _ = x.shape
    th, tw = (h + 1) // 2, (w + 1) // 2  # odd sizes compute one row/column more, then crop
    products = np.matmul(_input_tiles(x, th, tw), filters)
    return _output_blocks(products, n, th, tw)[:, :h, :w]
