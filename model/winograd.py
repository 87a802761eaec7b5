"""3x3 convolutions by Winograd's minimal filtering algorithm F(2x2, 3x3).

Each 2x2 block of output pixels is computed from the 4x4 input tile under it with 16
multiplications per (input channel, filter) pair instead of 36: 2.25x fewer than im2col,
for a few additions to transform input tiles and output tiles (Lavin and Gray, "Fast
Algorithms for Convolutional Neural Networks", 2015). In NumPy the 16 multiplications
become 16 matrix products, (tiles x C) @ (C x F), batched in one np.matmul call.

Used for the training step's 3x3, stride 1, padding 1 convolutions: the forward pass, and
both gradients from the output gradient's tiles: the weight's (16 products with the kept
input tiles) and the input's (16 products with the filters, then the input transform
backwards); see Conv in model/layers.py. The transforms' entries are 0, +-1 and +-1/2, so
the results match im2col to float32 rounding.
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


# A convolution runs a few images at a time: their tiles are transformed, multiplied and
# transformed back while they are still in the cache, instead of each pass reading the
# whole batch's tiles from memory. About CHUNK_BYTES of tiles and products a chunk, but at
# least CHUNK_ROWS tiles, below which the 16 matrix products run slower (BENCHMARKS.md has
# the figures).
CHUNK_BYTES = 2**20
CHUNK_ROWS = 512


def _chunks(n: int, bytes_per_image: int, rows_per_image: int = 1) -> list[slice]:
    """Slices of the batch, each about CHUNK_BYTES, or CHUNK_ROWS rows if that is more."""
    step = max(1, CHUNK_BYTES // bytes_per_image, -(-CHUNK_ROWS // rows_per_image))
    return [slice(start, start + step) for start in range(0, n, step)]


def _input_tiles(x: np.ndarray, tiles: np.ndarray) -> None:
    """B^T d B for every 4x4 tile (stride 2) of x (N, H, W, C) padded by 1, written into
    tiles (16, N, th, tw, C)."""
    n, h, w, c = x.shape
    th, tw = tiles.shape[2:4]
    # The padded input with rows and columns split by parity: padded pixel (2 * k + p) of
    # an axis is at [p, k]. The four strided copies that make it are the only passes here
    # that read every other pixel; tile (ti, tj) reads k = ti, ti + 1 (and tj, tj + 1) of
    # both parities, so every pass below reads whole rows of tiles (about 1.3x faster
    # than reading every other pixel of the padded input).
    split = np.zeros((n, 2, th + 1, 2, tw + 1, c), x.dtype)
    split[:, 0, 1 : h // 2 + 1, 0, 1 : w // 2 + 1] = x[:, 1::2, 1::2]
    split[:, 0, 1 : h // 2 + 1, 1, :tw] = x[:, 1::2, 0::2]
    split[:, 1, :th, 0, 1 : w // 2 + 1] = x[:, 0::2, 1::2]
    split[:, 1, :th, 1, :tw] = x[:, 0::2, 0::2]
    # B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], along columns
    # first, ...
    e = [split[:, :, :, b % 2, b // 2 : b // 2 + tw] for b in range(4)]
    columns = (e[0] - e[2], e[1] + e[2], e[2] - e[1], e[1] - e[3])
    for j, col in enumerate(columns):
        # ... then along rows, written straight into tile position (i, j).
        d = [col[:, a % 2, a // 2 : a // 2 + th] for a in range(4)]
        np.subtract(d[0], d[2], out=tiles[j])
        np.add(d[1], d[2], out=tiles[4 + j])
        np.subtract(d[2], d[1], out=tiles[8 + j])
        np.subtract(d[1], d[3], out=tiles[12 + j])


def _output_blocks(m: np.ndarray, out: np.ndarray) -> None:
    """A^T m A for every tile: m (16, N * th * tw, F) into out (N, 2 * th, 2 * tw, F)."""
    n, th, tw = out.shape[0], out.shape[1] // 2, out.shape[2] // 2
    p = m.reshape(4, 4, n, th, tw, m.shape[-1])
    # A^T = [[1, 1, 1, 0], [0, 1, -1, -1]], along rows, then along columns (the last pass
    # of each written straight into its pixels).
    part = np.empty_like(p[0, 0])
    for i, r in enumerate((p[0] + p[1] + p[2], p[1] - p[2] - p[3])):
        np.add(r[0], r[1], out=part)
        np.add(part, r[2], out=out[:, i::2, 0::2])
        np.subtract(r[1], r[2], out=part)
        np.subtract(part, r[3], out=out[:, i::2, 1::2])


# A's last row is [0, -1]: _output_gradient_tiles leaves that sign out (a pass fewer), and
# the weight gradient puts it back on the 16 summed products, through G^T.
A_SIGNS = np.array([1, 1, 1, -1], np.float32)
TILE_SIGNS = np.kron(A_SIGNS, A_SIGNS)
G_TAPS_SIGNED = G_TAPS.T * TILE_SIGNS


def _output_gradient_tiles(dout: np.ndarray, th: int, tw: int) -> np.ndarray:
    """A dY A^T for every 2x2 block of dout, the gradient of the products that made it,
    but for the sign of A's last row (A_SIGNS): (N, H, W, F) -> (16, N * th * tw, F). The
    transpose of _output_blocks. dout may also come as its parity split
    (N, 2, th, 2, tw, F), [:, i, :, j] = dout[:, i::2, j::2] (see gradients)."""
    if dout.ndim == 4:
        n, h, w, f = dout.shape
        if (h, w) != (2 * th, 2 * tw):  # odd sizes: the cropped row/column had no gradient
            padded = np.zeros((n, 2 * th, 2 * tw, f), dout.dtype)
            padded[:, :h, :w] = dout
            dout = padded
        dout = dout.reshape(n, th, 2, tw, 2, f).transpose(0, 2, 1, 4, 3, 5)  # a view
    n, f = dout.shape[0], dout.shape[-1]
    tiles = np.empty((4, 4, n, th, tw, f), dout.dtype)
    # A = [[1, 0], [1, 1], [1, -1], [0, (-)1]], along rows (for each column j) ...
    rows = []
    for j in range(2):
        y0, y1 = dout[:, 0, :, j], dout[:, 1, :, j]
        rows.append((y0, y0 + y1, y0 - y1, y1))
    # ... then along columns.
    for a in range(4):
        r0, r1 = rows[0][a], rows[1][a]
        tiles[a, 0] = r0
        np.add(r0, r1, out=tiles[a, 1])
        np.subtract(r0, r1, out=tiles[a, 2])
        tiles[a, 3] = r1
    return tiles.reshape(16, n * th * tw, f)


def _tile_counts(x_shape: tuple[int, ...]) -> tuple[int, int]:
    """Tiles down and across; odd sizes compute one row/column more, then crop it."""
    return (x_shape[1] + 1) // 2, (x_shape[2] + 1) // 2


def conv3x3(x: np.ndarray, filters: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Convolve (N, H, W, C) with 3x3 filters, stride 1, zero padding 1: (N, H, W, F),
    plus bias (F,) if given.

    `filters` is transform_filters(weight), so that a layer can transform once per step.
    """
    return _convolve(x, filters, bias, keep_tiles=False)[0]


def conv3x3_keeping_tiles(
    x: np.ndarray, filters: np.ndarray, bias: np.ndarray | None = None, relu: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """conv3x3, and the transformed input tiles (16, N * th * tw, C), which filter_gradient
    needs. With relu, the output is max(0, conv3x3), taken a few images at a time while
    they are in the cache."""
    return _convolve(x, filters, bias, keep_tiles=True, relu=relu)


def _convolve(
    x, filters, bias, keep_tiles: bool, relu: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    n, h, w, c = x.shape
    f = filters.shape[2]
    th, tw = _tile_counts(x.shape)
    out = np.empty((n, 2 * th, 2 * tw, f), x.dtype)
    kept = np.empty((16, n, th, tw, c), x.dtype) if keep_tiles else None
    for part in _chunks(n, 16 * th * tw * (c + f) * x.itemsize, th * tw):
        tiles = kept[:, part] if keep_tiles else None
        _convolve_chunk(x[part], filters, bias, out[part], tiles, relu)
    return out[:, :h, :w], None if kept is None else kept.reshape(16, n * th * tw, c)


def _convolve_chunk(x, filters, bias, out, tiles=None, relu: bool = False) -> None:
    """conv3x3 of a few images (then max(0, .) if relu), written into out
    (N, 2 * th, 2 * tw, F), and their input tiles into `tiles` (16, N, th, tw, C) if given:
    transformed, multiplied and transformed back while they are still in the cache."""
    n, _, _, c = x.shape
    th, tw = out.shape[1] // 2, out.shape[2] // 2
    if tiles is None:
        tiles = np.empty((16, n, th, tw, c), x.dtype)
    _input_tiles(x, tiles)
    m = np.matmul(tiles.reshape(16, n * th * tw, c), filters)
    if bias is not None:
        # m[1, 1] reaches every output pixel of its tile with weight 1 (A^T's column 1
        # is all ones): the bias added there is added once to each pixel.
        m[5] += bias
    _output_blocks(m, out)
    if relu:
        np.maximum(out, 0, out=out)


def gradients(
    tiles: np.ndarray, dout: np.ndarray, filters: np.ndarray | None = None
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """The gradients of conv3x3: of its input if `filters` is given (transform_filters of
    its weight, as in the forward pass), else None; of its weight (F, C, 3, 3) and of its
    bias (F,). dout is read only as dout[images] (a slice of the batch), and its shape
    and dtype: any object that computes its chunks on demand will do (the ReLU and max
    pool after a conv, model/layers.py ChunkedGradient); a chunk may come as its parity
    split (N, 2, th, 2, tw, F) (_output_gradient_tiles).

    From the forward pass's kept input tiles and the output gradient dout (N, H, W, F), a
    few images at a time, so that dout is read from memory once. Both gradients start from
    dout's tiles A dY A^T, the gradient of the 16 products: the weight's is 16 products
    (C x tiles) @ (tiles x F), summed over the chunks, then G^T du G back to 3x3; the
    input's is 16 products (tiles x F) @ (F x C) with the transposed filters, then each
    tile's B du B^T added back where the forward pass read it (_input_gradient). This
    takes the place of a whole convolution of dout with the flipped filters: dout's tiles
    are already there, and no input transform of dout is needed."""
    n, h, w, f = dout.shape
    c = tiles.shape[2]
    th, tw = _tile_counts(dout.shape)
    products = np.zeros((16, c, f), np.result_type(tiles.dtype, dout.dtype))
    bias = np.zeros(f, products.dtype)
    dx = back = None
    if filters is not None:
        dx = np.empty((n, 2 * th, 2 * tw, c), dout.dtype)
        # The gradient tiles leave out A's negative sign (A_SIGNS): it goes on the filters.
        back = filters.transpose(0, 2, 1) * TILE_SIGNS[:, None, None]  # (16, F, C)
    per_image = th * tw * (16 * f + (0 if dx is None else 26 * c)) * np.dtype(dout.dtype).itemsize
    for part in _chunks(n, per_image, th * tw):
        rows = slice(part.start * th * tw, min(part.stop, n) * th * tw)
        chunk = dout[part]
        gradient_tiles = _output_gradient_tiles(chunk, th, tw)
        products += np.matmul(tiles[:, rows].transpose(0, 2, 1), gradient_tiles)
        # Tile (1, 1) of each 2x2 block is the block's sum (A's column 1 is all ones); a
        # product with ones, as a sum over the first axis is several times slower.
        bias += np.ones(rows.stop - rows.start, bias.dtype) @ gradient_tiles[5]
        if dx is not None:
            input_tiles = np.matmul(gradient_tiles, back)
            _input_gradient(input_tiles.reshape(16, len(chunk), th, tw, c), dx[part])
    taps = G_TAPS_SIGNED @ products.reshape(16, c * f)  # (9, C * F)
    dweight = np.ascontiguousarray(taps.reshape(3, 3, c, f).transpose(3, 2, 0, 1))
    return None if dx is None else dx[:, :h, :w], dweight, bias


def _input_gradient(dtiles: np.ndarray, dx: np.ndarray) -> None:
    """The transpose of _input_tiles: each tile's B d B^T (dtiles (16, N, th, tw, C)) added
    into the 4x4 pixels it was read from, the padding left out: dx (N, 2 * th, 2 * tw, C).

    Rows, then columns, each in the parity split of _input_tiles: a pixel of odd index
    (in the unpadded input) gets row a = 2 of the tile above-left of it and row a = 0 of
    its own; one of even index gets row a = 1 of its own tile and row a = 3 of the one
    before (B's columns: [1, 0, -1, 0], [0, 1, -1, 1], [0, 1, 1, 0], [0, 0, 0, -1])."""
    _, n, th, tw, c = dtiles.shape
    rows = np.empty((4, n, 2, th, tw, c), dtiles.dtype)  # [j, :, 0]: odd rows, [j, :, 1]: even
    for j in range(4):
        d0, d1, d2, d3 = dtiles[j], dtiles[4 + j], dtiles[8 + j], dtiles[12 + j]
        odd, even = rows[j, :, 0], rows[j, :, 1]
        np.add(d1, d2, out=odd)
        odd -= d0
        odd[:, : th - 1] += d0[:, 1:]
        np.subtract(d1, d2, out=even)
        even += d3
        even[:, 1:] -= d3[:, : th - 1]
    # dx as (N, row parity, th, column parity, tw, C), odd before even as in `rows`.
    split = dx.reshape(n, th, 2, tw, 2, c).transpose(0, 2, 1, 4, 3, 5)[:, ::-1, :, ::-1]
    e0, e1, e2, e3 = rows
    columns = np.add(e1, e2)
    columns -= e0
    columns[..., : tw - 1, :] += e0[..., 1:, :]
    split[:, :, :, 0] = columns
    np.subtract(e1, e2, out=columns)
    columns += e3
    columns[..., 1:, :] -= e3[..., : tw - 1, :]
    split[:, :, :, 1] = columns


def filter_gradient(tiles: np.ndarray, dout: np.ndarray) -> np.ndarray:
    """The gradient of conv3x3's weight (F, C, 3, 3), from its kept input tiles and the
    gradient of its output (N, H, W, F); see gradients."""
    return gradients(tiles, dout)[1]
