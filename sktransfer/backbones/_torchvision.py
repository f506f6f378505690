"""torchvision classification models as a backbone source.

Weights resolve through torchvision's enums; downloads go through torch's hub
cache (``$TORCH_HOME/hub/checkpoints``), so a file placed there is used
without network.
"""

from __future__ import annotations

import os
from functools import lru_cache
from urllib.parse import urlparse

from .._preprocessing import Preprocessing, preprocessing_from_torchvision
from ._spec import BackboneSpec, WeightsUnavailableError
from ._weights import weights_identity


@lru_cache(maxsize=1)
def torchvision_model_names():
    """Names of torchvision's classification models (no detection etc.)."""
    import torchvision

    return tuple(sorted(torchvision.models.list_models(module=torchvision.models)))


def torchvision_spec(name):
    """The :class:`BackboneSpec` of torchvision classification model ``name``."""
    return BackboneSpec(
        name=name,
        create=lambda weights: _create(name, weights),
        resolve_weights=lambda weights: _resolve(name, weights),
        preprocessing=lambda weights: _preprocessing(name, weights),
        head=_HEADS.get(name),
        source="torchvision",
        description=f"torchvision.models.{name}",
        weights=_weights_names(name),
        weights_present=_weights_present,
    )


def _weights_names(name):
    """The names of ``name``'s weights enum members, the default first."""
    try:
        enum_cls = _weights_enum(name)
        default = enum_cls.DEFAULT.name
    except (ValueError, AttributeError):  # models without weights
        return ()
    others = [m for m in enum_cls.__members__ if m not in ("DEFAULT", default)]
    return (default, *others)


def _weights_present(member):
    """Whether the weights file of enum member ``member`` is in the hub cache."""
    return os.path.exists(hub_checkpoint_path(member.url))


# Models whose head is not their last nn.Linear: SqueezeNet classifies with a
# 1x1 convolution followed by ReLU and global pooling.
_HEADS = {"squeezenet1_0": "classifier.1", "squeezenet1_1": "classifier.1"}


def _weights_enum(name):
    import torchvision

    return torchvision.models.get_model_weights(name)


def _resolve(name, weights):
    import torchvision

    enum_cls = _weights_enum(name)
    if isinstance(weights, str):
        if weights == "DEFAULT":
            member = enum_cls.DEFAULT
        else:
            short = weights.split(".")[-1]
            prefix = weights.split(".")[0] if "." in weights else enum_cls.__name__
            if prefix != enum_cls.__name__ or short not in enum_cls.__members__:
                allowed = ["DEFAULT"] + [
                    m for m in enum_cls.__members__ if m != "DEFAULT"
                ]
                raise ValueError(
                    f"Backbone {name!r} has no weights {weights!r}; torchvision "
                    f"provides {allowed} ({enum_cls.__name__}). Or pass a "
                    f"checkpoint path, a state dict, or weights=None."
                )
            member = enum_cls[short]
    elif isinstance(weights, torchvision.models.WeightsEnum):
        if type(weights) is not enum_cls:
            raise ValueError(
                f"weights {type(weights).__name__}.{weights.name} belong to "
                f"another architecture than backbone {name!r}; use "
                f"{enum_cls.__name__} members, e.g. {enum_cls.__name__}.DEFAULT."
            )
        member = weights
    else:
        raise TypeError(
            f"Unsupported weights of type {type(weights).__name__} for backbone "
            f"{name!r}."
        )
    return member, weights_identity("torchvision", f"{enum_cls.__name__}.{member.name}")


def _preprocessing(name, member):
    if member is None:
        try:
            member = _weights_enum(name).DEFAULT
        except (ValueError, AttributeError):  # models without weights
            return Preprocessing()
    return preprocessing_from_torchvision(member.transforms())


def hub_checkpoint_path(url):
    """Where torch's hub cache keeps the file downloaded from ``url``."""
    import torch

    return os.path.join(
        torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(url).path)
    )


def _create(name, member):
    import torchvision

    if member is None:
        return torchvision.models.get_model(name, weights=None)
    path = hub_checkpoint_path(member.url)
    described = f"{type(member).__name__}.{member.name} of backbone {name!r}"
    try:
        return torchvision.models.get_model(name, weights=member)
    except Exception as exc:
        if os.path.exists(path):  # the file is there: it does not load
            raise ValueError(
                f"Cannot load the weights {described} from the torch hub cache "
                f"file {path} ({type(exc).__name__}: {exc}). The file may be "
                f"incomplete or hold another model: delete it to download it "
                f"again, or replace it with a good copy."
            ) from exc
        if not isinstance(exc, (OSError, RuntimeError)):  # URLError is an OSError
            raise
        raise WeightsUnavailableError(
            f"Cannot download the weights {described} from "
            f"{member.url} ({exc}). Expected the file at {path} (torch hub "
            f"cache; set TORCH_HOME to move it). Copy the file there from a "
            f"machine with internet, or pass weights='path/to/checkpoint.pth' "
            f"(a state dict file), or weights=None for random initialisation."
        ) from exc
