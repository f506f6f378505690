"""Resolve ``backbone=`` and ``weights=`` into a ready ``nn.Module``.

Shared by every estimator: :class:`PretrainedFeatureExtractor` and the
fine-tuning estimators call :func:`load_backbone` in ``fit`` and nowhere else.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .._preprocessing import Preprocessing, resolve_preprocessing
from ._registry import get_backbone_spec, is_builtin_spec
from ._weights import (
    file_identity,
    is_weights_file,
    load_state_dict_checked,
    load_weights_file,
    module_identity,
    state_dict_identity,
    unwrap_state_dict,
    weights_identity,
)


@dataclass
class LoadedBackbone:
    """A backbone with its weights, ready to use.

    Attributes
    ----------
    model : nn.Module
        The full network (with its classification head), a private copy.
    name : str
        Display name ("resnet18", or the class name of a user's module).
    preprocessing : Preprocessing or None
        Eval preprocessing; None means inputs are passed through as tensors.
    weights_id : str
        Stable identity of the weights (for cache keys and reprs).
    head : str or None
        Qualified name of the classification head module, if known.
    """

    model: nn.Module
    name: str
    preprocessing: Preprocessing | None
    weights_id: str
    head: str | None


def load_backbone(
    backbone,
    weights,
    *,
    preprocessing=None,
    seed=0,
    owner="PretrainedFeatureExtractor",
):
    """Build the backbone and load its weights; see the estimators' docs.

    ``seed`` seeds the random initialisation (an int: the estimators derive it
    from ``random_state`` with ``sktransfer._base.init_seed``).
    """
    if isinstance(backbone, nn.Module):
        return _load_module(backbone, weights, preprocessing, owner)
    spec = get_backbone_spec(backbone)
    designation = None
    if weights is None:
        weights_id = weights_identity("random", seed)
    elif isinstance(weights, Mapping) or is_weights_file(weights):
        weights_id = None  # filled in below, once loaded
    else:
        designation, weights_id = spec.weights_for(weights)

    with seeded_torch(seed):
        model = spec.create(designation)
    if weights_id is None:
        state_dict, weights_id = _state_dict_and_id(weights)
        load_state_dict_checked(
            model, state_dict, backbone_name=spec.name, what=_describe(weights)
        )
    head = spec.head or _timm_head(model) or last_linear_name(model)
    return LoadedBackbone(
        model=model.eval(),
        name=spec.name,
        preprocessing=_preprocessing(spec, designation, preprocessing),
        weights_id=weights_id,
        head=head,
    )


@dataclass(frozen=True)
class BackboneRecipe:
    """What :func:`load_backbone` would load, known without building it.

    Attributes
    ----------
    name, preprocessing, weights_id :
        As in :class:`LoadedBackbone`.
    spec : BackboneSpec
        The registry entry it would be built from.
    builtin : bool
        Whether the architecture is determined by the name and the installed
        libraries (torchvision, timm, sktransfer's own backbones), not by a
        user's ``create`` function registered in this process.
    """

    name: str
    preprocessing: Preprocessing | None
    weights_id: str
    spec: object
    builtin: bool


def describe_backbone(backbone, weights, *, preprocessing=None, seed=0):
    """The :class:`BackboneRecipe` of ``load_backbone(backbone, weights, ...)``
    without building the network, or None when it cannot be known without it
    (a user's ``nn.Module``, weights given as a state dict or a file)."""
    if isinstance(backbone, nn.Module) or (
        weights is not None
        and (isinstance(weights, Mapping) or is_weights_file(weights))
    ):
        return None
    spec = get_backbone_spec(backbone)
    if weights is None:
        designation, weights_id = None, weights_identity("random", seed)
    else:
        designation, weights_id = spec.weights_for(weights)
    return BackboneRecipe(
        name=spec.name,
        preprocessing=_preprocessing(spec, designation, preprocessing),
        weights_id=weights_id,
        spec=spec,
        builtin=is_builtin_spec(spec),
    )


def _preprocessing(spec, designation, preprocessing):
    default_pre = spec.preprocessing(designation) if spec.preprocessing else None
    return resolve_preprocessing(default_pre or Preprocessing(), preprocessing)


def _load_module(module, weights, preprocessing, owner):
    model = copy.deepcopy(module)
    name = type(module).__name__
    if weights not in (None, "DEFAULT"):
        if not (isinstance(weights, Mapping) or is_weights_file(weights)):
            raise ValueError(
                f"{owner}: with an nn.Module as backbone, weights must be "
                f"'DEFAULT' or None (use the module's own parameters), a "
                f"checkpoint path or a state dict; got {weights!r}."
            )
        state_dict, _ = _state_dict_and_id(weights)
        load_state_dict_checked(
            model, state_dict, backbone_name=name, what=_describe(weights)
        )
    return LoadedBackbone(
        model=model.eval(),
        name=name,
        preprocessing=resolve_preprocessing(Preprocessing(), preprocessing),
        weights_id=module_identity(model),
        head=_timm_head(model) or last_linear_name(model),
    )


def _state_dict_and_id(weights):
    if isinstance(weights, Mapping):
        state_dict = unwrap_state_dict(weights, "weights")
        return state_dict, state_dict_identity(state_dict)
    return load_weights_file(weights), file_identity(weights)


def _describe(weights):
    if isinstance(weights, Mapping):
        return "The weights (state dict)"
    return f"The weights in {os.fspath(weights)!r}"


@contextlib.contextmanager
def seeded_torch(seed, device=None):
    """Seed torch's generator of ``device`` (default CPU) for the block only.

    The generator's previous state is restored on exit, so the global torch
    state seen by the user is unchanged.
    """
    device = torch.device("cpu" if device is None else device)
    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device] if cuda else []):
        if cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        else:
            torch.random.default_generator.manual_seed(seed)
        yield


def _timm_head(model):
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
    if isinstance(cfg, Mapping) and isinstance(cfg.get("classifier"), str):
        name = cfg["classifier"]
        if name in dict(model.named_modules()):
            return name
    return None


def last_linear_name(model):
    """Qualified name of the last ``nn.Linear`` in definition order, or None."""
    name = None
    for qualified, module in model.named_modules():
        if isinstance(module, nn.Linear):
            name = qualified
    return name


def without_head(model, head):
    """``model`` with its head module replaced by ``nn.Identity``, in place.

    Its output is the pooled pre-classifier representation. ``model`` is the
    private copy :func:`load_backbone` returned (never a user's module), so it
    is modified rather than copied again.
    """
    if head is None:
        return model
    parent_name, _, child = head.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, nn.Identity())
    return model
