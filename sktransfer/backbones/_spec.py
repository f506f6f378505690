"""The description of a backbone source: how to build it and its weights."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._weights import weights_identity


class WeightsUnavailableError(OSError):
    """Pretrained weights must be downloaded and cannot be (offline, no file).

    The message says which file is expected where and how else to provide the
    weights. Subclasses ``OSError`` because it is an I/O failure.

    Examples
    --------
    >>> from sktransfer import WeightsUnavailableError
    >>> issubclass(WeightsUnavailableError, OSError)
    True
    >>> try:
    ...     raise WeightsUnavailableError("resnet18 weights: put the file at ...")
    ... except OSError as error:
    ...     print(type(error).__name__)
    WeightsUnavailableError
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
        the names in ``weights`` (``"DEFAULT"`` meaning the first), or only
        ``"DEFAULT"`` if ``weights`` is empty.
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
    weights : tuple of str
        Names of the pretrained weights, the default first. Listed by
        ``list_backbones(details=True)``; without ``resolve_weights`` they
        are the names ``weights_for`` accepts, designating themselves.
    extra : str, optional
        The sktransfer extra that installs what ``create`` needs
        (``pip install "sktransfer[<extra>]"``); None: nothing beyond
        sktransfer's own requirements.
    weights_present : callable, optional
        ``weights_present(designation)`` tells, without loading or
        downloading anything, whether those pretrained weights are already on
        this machine (``create`` then needs no network). None: unknown.

    Examples
    --------
    >>> from torch import nn
    >>> from sktransfer import BackboneSpec
    >>> spec = BackboneSpec("two_layers", lambda weights: nn.Sequential(
    ...     nn.Flatten(), nn.Linear(12, 4), nn.ReLU(), nn.Linear(4, 2)))
    >>> spec.weights_for("DEFAULT")[0]
    'DEFAULT'
    >>> spec.create(None)[1]
    Linear(in_features=12, out_features=4, bias=True)
    """

    name: str
    create: Callable[[Any], Any]
    resolve_weights: Callable[[Any], tuple[Any, str]] | None = None
    preprocessing: Callable[[Any], Any] | None = None
    head: str | None = None
    source: str = "custom"
    description: str = ""
    weights: tuple[str, ...] = ()
    extra: str | None = None
    weights_present: Callable[[Any], bool] | None = None

    def weights_for(self, weights):
        """``(designation, identity)`` for pretrained weights given by name.

        Parameters
        ----------
        weights : str or object
            ``"DEFAULT"``, a name from ``weights``, or what
            ``resolve_weights`` accepts.

        Returns
        -------
        designation : object
            What ``create`` accepts.
        identity : str
            A stable string naming exactly those weights (cache keys).
        """
        if self.resolve_weights is not None:
            return self.resolve_weights(weights)
        if self.weights:
            return self._named_weights(weights)
        if weights == "DEFAULT":
            return "DEFAULT", weights_identity(self.source, self.name, "DEFAULT")
        raise ValueError(
            f"Backbone {self.name!r} has only weights='DEFAULT' as named "
            f"pretrained weights; got {weights!r}. Pass a checkpoint path or a "
            f"state dict for other weights, or weights=None for random "
            f"initialisation."
        )

    def _named_weights(self, weights):
        if not isinstance(weights, str):
            raise TypeError(
                f"Backbone {self.name!r} takes named weights as a str, got "
                f"{type(weights).__name__}."
            )
        chosen = self.weights[0] if weights == "DEFAULT" else weights
        if chosen not in self.weights:
            raise ValueError(
                f"Backbone {self.name!r} has no weights {weights!r}; available: "
                f"{['DEFAULT', *self.weights]}. Or pass a checkpoint path, a "
                f"state dict, or weights=None."
            )
        return chosen, weights_identity(self.source, self.name, chosen)
