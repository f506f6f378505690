"""Backbone sources and the registry behind ``backbone=``."""

from ._registry import (
    get_backbone_spec,
    list_backbones,
    register_backbone,
    unregister_backbone,
)
from ._spec import BackboneSpec, WeightsUnavailableError

__all__ = [
    "BackboneSpec",
    "WeightsUnavailableError",
    "get_backbone_spec",
    "list_backbones",
    "register_backbone",
    "unregister_backbone",
]
