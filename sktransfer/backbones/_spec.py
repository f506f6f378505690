"""The description of a backbone source: how to build it and its weights."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class WeightsUnavailableError(OSError):
    """Pretrained weights must be downloaded and cannot be (offline, no file).

    The message says which file is expected where and how else to provide the
    weights. Subclasses ``OSError`` because it is an I/O failure.
    """


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one named backbone.

    Parameters
    ----------
    name : str
        The name users pass as ``backbone=``.
    create : callable
        ``create(weights)`` returns an ``nn.Module`` with those weights loaded.
        ``weights`` is None (random initialisation, the architecture only) or
        a pretrained-weights designation of this source (``"DEFAULT"``, a
        name, or a source object such as a torchvision enum) that
        ``resolve_weights`` returned.
    resolve_weights : callable, optional
        ``resolve_weights(weights)`` maps what the user passed (``"DEFAULT"``,
        a name, an object) to ``(designation, identity)``: what ``create``
        accepts and a stable string naming exactly those weights. Raise
        ``ValueError`` for weights this backbone does not have. Default:
        only ``"DEFAULT"`` is accepted.
    preprocessing : callable, optional
        ``preprocessing(designation)`` returns the
        :class:`~sktransfer.Preprocessing` the weights were trained with
        (``designation`` None means the architecture's default). Must not
        download anything.
    head : str, optional
        Qualified name of the classification head module, dropped to get the
        pooled pre-classifier representation. None: the last ``nn.Linear``.
    source : str
        Where the backbone comes from ("torchvision", "timm", "sktransfer",
        "custom").
    description : str
        One line for ``list_backbones(details=True)``.
    """

    name: str
    create: Callable[[Any], Any]
    resolve_weights: Callable[[Any], tuple[Any, str]] | None = None
    preprocessing: Callable[[Any], Any] | None = None
    head: str | None = None
    source: str = "custom"
    description: str = ""
    extras: dict = field(default_factory=dict)

    def weights_for(self, weights):
        """``(designation, identity)`` for pretrained weights given by name."""
        if self.resolve_weights is not None:
            return self.resolve_weights(weights)
        if weights == "DEFAULT":
            return "DEFAULT", f"{self.source}:{self.name}:DEFAULT"
        raise ValueError(
            f"Backbone {self.name!r} has only weights='DEFAULT' as named "
            f"pretrained weights; got {weights!r}. Pass a checkpoint path or a "
            f"state dict for other weights, or weights=None for random "
            f"initialisation."
        )
