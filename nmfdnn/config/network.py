"""The run's network from its config, built once (:func:`build_network`): what the trainers hold and
validation, the resume check, ``nmfdnn eval`` and the estimators read."""

from __future__ import annotations

from ..errors import NmfdnnError
from .identity import has_bias


def activation_of(cfg):
    """The run's hidden activation (:func:`nmfdnn.method.activations.named`) from ``activation`` and its
    parameters; a config without the keys (written before them) has the schema's defaults."""
    from ..method.activations import named
    from .schema import TrainConfig

    def key(name):
        return cfg.get(name, getattr(TrainConfig, name))

    return named(str(key("activation")), slope=key("activation_slope"), cap=key("activation_cap"),
                 beta=key("activation_beta"))


def layer_entries(cfg) -> dict:
    """Each layer type's entries in ``cfg`` (:data:`nmfdnn.method.layers.LAYER_TYPES`: ``conv``'s
    mappings, ``hidden``'s widths), as plain lists."""
    from omegaconf import OmegaConf

    from ..method.layers import LAYER_TYPES

    out = {}
    for kind in LAYER_TYPES:
        entries = cfg.get(kind.key) or []
        out[kind.key] = OmegaConf.to_container(entries) if OmegaConf.is_config(entries) else list(entries)
    return out


def build_network(cfg, n_in: int, shape, n_out: int):
    """The :class:`~nmfdnn.method.network.Network` of ``cfg`` on ``n_in`` input features (``shape``: the
    image shape ``(c, h, w)`` of the samples, None for plain vectors) with ``n_out`` classes
    (:func:`nmfdnn.method.layers.build`); one line if a layer does not fit or needs images."""
    from ..method.layers import LAYER_TYPES, build

    entries = layer_entries(cfg)
    imaged = [kind.key for kind in LAYER_TYPES if kind.images and entries[kind.key]]
    if imaged and shape is None:
        raise NmfdnnError(f"{imaged[0]} layers need image data (mnist, fashion_mnist, cifar10, idx images, or "
                          "dataset=synthetic with dataset.image=[c,h,w]); these samples are plain vectors")
    try:
        return build(n_in, n_out, shape, activation_of(cfg), has_bias(cfg),
                     bool(cfg.solver.get("freeze_conv", False)), **entries)
    except ValueError as e:
        raise NmfdnnError(str(e)) from None
