"""Batch transforms applied on the fly: random flips and rotations, and the one-hot labels.

Vectorised over the batch, the dates of a sequence and the bands: every pixel's values of
all dates and bands are gathered at once, with reflect padding from look-up tables (bilinear
for the bands, nearest for the labels). Intermediate results go to per-thread buffers
reused from batch to batch.
"""

from __future__ import annotations

import functools
import math
import threading

import numpy as np

MAX_ANGLE = 45.0
"""Largest rotation of the augmentation, in degrees (the original's ``rotation_range``)."""


_WORKSPACE = threading.local()


def scratch(name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """A buffer of this thread, reused from batch to batch, for intermediate results only.

    Fresh multi-megabyte arrays are page-faulted in on every batch (the allocator gives them
    back to the system when freed), which cost more than the arithmetic; reusing them does not.
    """
    buffers = _WORKSPACE.__dict__.setdefault("buffers", {})
    count = math.prod(shape)
    buffer = buffers.get(name)
    if buffer is None or buffer.dtype != dtype or buffer.size < count:
        buffer = np.empty(count, dtype)
        buffers[name] = buffer
    return buffer[:count].reshape(shape)


# ---------------------------------------------------------------------- labels
def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """One-hot encode class ids: class c goes to channel c-1, label 0 to all zeros.

    Args:
        labels: Integer class ids (..., H, W), 0..n_classes.
        n_classes: Number of channels (the largest class id).

    Returns:
        float32 (..., H, W, n_classes).

    Raises:
        ValueError: If a label exceeds ``n_classes``.
    """
    labels = np.asarray(labels)
    if labels.size and int(labels.max()) > n_classes:
        raise ValueError(f"label {int(labels.max())} exceeds the number of classes {n_classes}")
    table = np.zeros((n_classes + 1, n_classes), dtype=np.float32)
    table[1:] = np.eye(n_classes, dtype=np.float32)
    rows = table.view(np.dtype((np.void, table.itemsize * n_classes))).reshape(-1)  # one opaque item per class
    return np.take(rows, labels, mode="clip").view(np.float32).reshape(*labels.shape, n_classes)


# ---------------------------------------------------------------------- augmentation
def _mirror(index: np.ndarray, size: int) -> np.ndarray:
    """Map integer indices into 0..size-1 by reflection about the edge pixels (``d c b | a b c d | c b a``).

    This is skimage's ``mode="reflect"`` (scipy.ndimage's ``"mirror"``): the edge pixel is not repeated.
    """
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    folded = np.abs(index) % period
    return np.minimum(folded, period - folded)


@functools.lru_cache(maxsize=8)
def _mirror_tables(height: int, width: int) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Look-up tables of the mirrored row offsets (``row * width``) and columns, and their paddings.

    A rotation about the tile centre keeps every source coordinate within the circle through
    the corner pixels, so the tables cover that circle plus one pixel for the bilinear
    neighbour (for any angle).
    """
    radius = math.hypot((height - 1) / 2, (width - 1) / 2)
    pad_r = math.ceil(radius - (height - 1) / 2) + 2
    pad_c = math.ceil(radius - (width - 1) / 2) + 2
    rows = _mirror(np.arange(-pad_r, height + pad_r), height) * width
    cols = _mirror(np.arange(-pad_c, width + pad_c), width)
    rows.flags.writeable = False
    cols.flags.writeable = False
    return pad_r, pad_c, rows, cols


def source_coordinates(shape: tuple[int, int], flip_ud: np.ndarray, flip_lr: np.ndarray,
                       angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each output pixel of the augmented tiles is taken from in the input tiles.

    The augmentation is, in this order: up/down flip, left/right flip, rotation by ``angle``
    degrees counter-clockwise about the tile centre ``((W-1)/2, (H-1)/2)`` as in
    ``skimage.transform.rotate``.

    Args:
        shape: Tile (H, W).
        flip_ud: Boolean (B,).
        flip_lr: Boolean (B,).
        angles: Degrees (B,).

    Returns:
        Source rows and columns, float64 (B, H, W).
    """
    height, width = shape
    centre_r, centre_c = height / 2 - 0.5, width / 2 - 0.5
    theta = np.deg2rad(np.asarray(angles, dtype=np.float64))[:, None, None]
    cos, sin = np.cos(theta), np.sin(theta)
    dr = np.arange(height, dtype=np.float64)[:, None] - centre_r
    dc = np.arange(width, dtype=np.float64)[None, :] - centre_c
    rows = sin * dc + cos * dr + centre_r
    cols = cos * dc - sin * dr + centre_c
    # the flips come first, so the rotated image samples the flipped one: map back to the input
    rows = np.where(np.asarray(flip_ud)[:, None, None], height - 1 - rows, rows)
    cols = np.where(np.asarray(flip_lr)[:, None, None], width - 1 - cols, cols)
    return rows, cols


def transform_batch(x: np.ndarray, y: np.ndarray | None, flip_ud: np.ndarray, flip_lr: np.ndarray,
                    angles: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Flip and rotate every sample of a batch with given parameters (reflect padding).

    Bands are interpolated bilinearly, labels by nearest neighbour, so labels keep their
    class ids. Every date of a sequence gets its sample's parameters.

    Args:
        x: float32 (B, H, W, C) or (B, T, H, W, C).
        y: Labels (B, H, W) or None.
        flip_ud: Boolean (B,): flip up/down.
        flip_lr: Boolean (B,): flip left/right.
        angles: Rotation angles in degrees (B,), counter-clockwise.

    Returns:
        The transformed x (float32, same shape) and y (same dtype and shape, or None).
    """
    sequence = x.ndim == 5
    xs = x if sequence else x[:, None]
    batch, steps, height, width, channels = xs.shape
    pixels = height * width
    rows, cols = source_coordinates((height, width), flip_ud, flip_lr, angles)

    # all dates and bands of a pixel side by side, viewed as one opaque item: one cheap gather serves them all
    features = steps * channels
    size = batch * pixels
    item = np.dtype((np.void, 4 * features))
    by_pixel = np.moveaxis(xs, 1, 3)
    if not (by_pixel.flags.c_contiguous and by_pixel.dtype == np.float32):
        buffer = scratch("by_pixel", by_pixel.shape, np.float32)
        np.copyto(buffer, by_pixel)
        by_pixel = buffer
    items = by_pixel.reshape(size, features).view(item).reshape(-1)

    row0 = np.floor(rows)
    col0 = np.floor(cols)
    fr = (rows - row0).astype(np.float32).reshape(size, 1)
    fc = (cols - col0).astype(np.float32).reshape(size, 1)
    pad_r, pad_c, row_lut, col_lut = _mirror_tables(height, width)
    row0 = row0.astype(np.intp).reshape(size) + pad_r
    col0 = col0.astype(np.intp).reshape(size) + pad_c
    offsets = np.repeat(np.arange(batch) * pixels, pixels)
    r_lo = offsets + row_lut[row0]
    r_hi = offsets + row_lut[row0 + 1]
    c_lo, c_hi = col_lut[col0], col_lut[col0 + 1]

    # the output of a plain tile batch is returned as it is; a sequence batch is re-ordered afterwards
    shape = (size, features)
    result = scratch("result", shape, np.float32) if sequence else np.empty(shape, np.float32)
    corner = scratch("corner", shape, np.float32)  # reused buffers: no page faults per batch
    index = scratch("index", (size,), np.intp)
    # mode="clip": the indices are valid by construction, and "raise" would buffer the output
    np.take(items, np.add(r_lo, c_lo, out=index), out=result.view(item).reshape(-1), mode="clip")
    result *= (1 - fr) * (1 - fc)
    for r, c, weight in ((r_lo, c_hi, (1 - fr) * fc), (r_hi, c_lo, fr * (1 - fc)), (r_hi, c_hi, fr * fc)):
        np.take(items, np.add(r, c, out=index), out=corner.view(item).reshape(-1), mode="clip")
        corner *= weight
        result += corner
    if sequence:
        out = np.moveaxis(result.reshape(batch, height, width, steps, channels), 3, 1).copy()
    else:
        out = result.reshape(batch, height, width, channels)

    labels = None
    if y is not None:
        nearest_r = row_lut[np.floor(rows + 0.5).astype(np.intp).reshape(size) + pad_r]
        nearest_c = col_lut[np.floor(cols + 0.5).astype(np.intp).reshape(size) + pad_c]
        source = offsets + nearest_r + nearest_c
        labels = np.take(np.ascontiguousarray(y).reshape(-1), source, mode="clip").reshape(batch, height, width)
    return out, labels



def augmentation_parameters(batch: int, rng: np.random.Generator,
                            max_angle: float = MAX_ANGLE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw per-sample flips (p = 0.5 each) and rotation angles U(-max_angle, max_angle).

    Returns:
        (flip_ud, flip_lr, angles), each (batch,).
    """
    flip_ud = rng.random(batch) < 0.5
    flip_lr = rng.random(batch) < 0.5
    angles = rng.uniform(-max_angle, max_angle, batch)
    return flip_ud, flip_lr, angles


def augment(x: np.ndarray, y: np.ndarray, rng: np.random.Generator,
            max_angle: float = MAX_ANGLE) -> tuple[np.ndarray, np.ndarray]:
    """Random up/down and left/right flips and a rotation, the same for every date of a sample.

    Bands are interpolated bilinearly with reflect padding (as the original's
    ``skimage.transform.rotate(order=1, mode="reflect")``); labels by nearest neighbour
    (the original rotated them bilinearly, which invented class ids at class borders).

    Args:
        x: float32 (B, H, W, C) or (B, T, H, W, C).
        y: Labels (B, H, W).
        rng: The random generator.
        max_angle: Largest rotation in degrees.

    Returns:
        Augmented (x, y).
    """
    flip_ud, flip_lr, angles = augmentation_parameters(x.shape[0], rng, max_angle)
    out, labels = transform_batch(x, y, flip_ud, flip_lr, angles)
    assert labels is not None
    return out, labels
