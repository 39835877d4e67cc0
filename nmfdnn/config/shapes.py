"""The image shape of a data-set config, where it is known before the data are loaded (read by
validation and by the memory estimate)."""

from __future__ import annotations


# The image shape (c, h, w) of each data set whose shape is known before loading it (idx: after)
IMAGE_SHAPES = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def image_shape(d):
    """``(c, h, w)`` of the samples of data-set config ``d`` when it is known without loading them."""
    if d.name == "cifar10" and d.get("grayscale"):
        return (1, 32, 32)
    if d.name in ("synthetic", "array"):
        return tuple(d.image) if d.get("image") else None
    return IMAGE_SHAPES.get(d.name)
